//! The "Verifying deliveries" page: receiver code in PHP, Python and Node with this installation's
//! header prefix.

use super::layout::{context, render};
use crate::web::cgi::Response;
use crate::web::context::Ctx;
use crate::web::error::HttpError;

const PHP: &str = r#"<?php
$secret = base64_decode(substr(getenv('WEBHOOK_SECRET'), strlen('whsec_')));
$body = file_get_contents('php://input');
$id = $_SERVER['HTTP_{P}_ID'] ?? '';
$ts = $_SERVER['HTTP_{P}_TIMESTAMP'] ?? '';
if (!ctype_digit($ts) || abs(time() - (int)$ts) > 300) { http_response_code(400); exit; }
$expected = hash_hmac('sha256', "$id.$ts.$body", $secret);
$ok = false;
foreach (explode(' ', $_SERVER['HTTP_{P}_SIGNATURE'] ?? '') as $sig) {
    if (str_starts_with($sig, 'v1=') && hash_equals($expected, substr($sig, 3))) { $ok = true; }
}
if (!$ok) { http_response_code(400); exit; }
$event = json_decode($body, true);
http_response_code(204);"#;

const PYTHON: &str = r#"import base64, hashlib, hmac, time

def verify(secret: str, headers, body: bytes) -> bool:
    """headers: case-insensitive, like Flask's or Django's request.headers; body: the raw bytes."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, ts = headers["{H}-Id"], headers["{H}-Timestamp"]
    if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
        return False
    expected = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return any(s.startswith("v1=") and hmac.compare_digest(s[3:], expected)
               for s in headers["{H}-Signature"].split())"#;

const NODE: &str = r#"const crypto = require("crypto");

function verify(secret, headers, rawBody) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const id = headers["{h}-id"], ts = headers["{h}-timestamp"];
  if (!/^\d+$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false;
  const expected = crypto.createHmac("sha256", key).update(`${id}.${ts}.`).update(rawBody).digest("hex");
  return (headers["{h}-signature"] || "").split(" ").some((s) =>
    s.startsWith("v1=") && s.length === 67 &&
    crypto.timingSafeEqual(Buffer.from(s.slice(3)), Buffer.from(expected)));
}"#;

/// The verification snippets with this installation's header prefix filled in.
pub fn snippets(prefix: &str) -> [(&'static str, String); 3] {
    [
        ("php", PHP.replace("{P}", &prefix.to_ascii_uppercase().replace('-', "_"))),
        ("python", PYTHON.replace("{H}", prefix)),
        ("node", NODE.replace("{h}", &prefix.to_ascii_lowercase())),
    ]
}

pub fn show(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let mut c = context(ctx, "Verifying deliveries", "docs");
    for (name, code) in snippets(&ctx.cfg.header_prefix) {
        c.insert(name, &code);
    }
    render(200, "docs_verify.html", &c)
}
