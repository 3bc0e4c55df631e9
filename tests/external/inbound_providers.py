#!/usr/bin/env python3
"""Inbound sources against the providers' own libraries: each provider's test webhook is signed
offline by that provider's library (npm `stripe` and `@octokit/webhooks-methods` through
sign.mjs; PyPI `slack_sdk`, `standardwebhooks`, `svix`; `cryptography` with this suite's own
P-256 key and a loopback key server for Circle; Shopify by the standard library, exactly as its
documented example computes it), posted over HTTP to `webhooks serve`, and relayed by
`webhooks dispatch` to a loopback receiver, where `standardwebhooks` verifies the relay.
The Cloudflare Email Worker (docs/examples/cloudflare-email-worker.js) runs under Node with a
stand-in message and must be accepted by a `standard` source.

Usage: inbound_providers.py BIN_DIR   — prints one line per check, exits non-zero on any failure.
"""
import base64
import datetime
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import standardwebhooks
import svix.webhooks
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from slack_sdk.signature import SignatureVerifier

from common import free_port, start_serve, test_database

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.abspath(sys.argv[1])
results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ' ' + str(detail)}", flush=True)


class Recorder(BaseHTTPRequestHandler):
    """The forward destination (records relays) and Circle's key server (counts key fetches)."""
    relayed = []
    key_requests = []
    circle_keys = {}

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Recorder.relayed.append((self.path, self.headers, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        key_id = self.path.rsplit("/", 1)[-1]
        Recorder.key_requests.append(key_id)
        key = Recorder.circle_keys.get(key_id)
        if key is None or self.headers.get("Authorization") != "Bearer TEST_API_KEY:suite":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        out = json.dumps({"data": {"id": key_id, "algorithm": "ECDSA_SHA_256", "publicKey": key,
                                   "createdDate": "2026-01-01T00:00:00Z"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *_):
        pass


def node(*args):
    out = subprocess.run(["node", os.path.join(HERE, "sign.mjs"), *args], capture_output=True, text=True, cwd=HERE)
    if out.returncode not in (0, 3):
        raise RuntimeError(f"node sign.mjs {args[0]} failed: {out.stderr}")
    return out.stdout.strip()


def body_file(body):
    f = tempfile.NamedTemporaryFile(delete=False, suffix=".body")
    f.write(body)
    f.close()
    return f.name


def post(url, headers, body):
    """POSTs; returns (status, JSON answer or None)."""
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, None


def at_a_fresh_second():
    """Unix seconds just after a second began, so that a request signed 301 s ahead reaches the
    server before its clock turns (else 301 s could shrink to 300)."""
    time.sleep(1 - (time.time() % 1))
    return int(time.time())


def flip(body):
    b = bytearray(body)
    b[len(b) // 2] ^= 0x01
    return bytes(b)


def main():
    recorder = HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    rport = recorder.server_address[1]
    work = tempfile.mkdtemp(prefix="qsm-inbound-")
    env_file = os.path.join(work, ".env")
    with open(env_file, "w") as f:
        f.write("WEBHOOKS_ALLOWED_NETWORKS=127.0.0.1/32\nWEBHOOKS_REQUEST_TIMEOUT=3s\n")
        database = test_database()
        if database:
            f.write(f"WEBHOOKS_DATABASE={database}\n")
    env = {"PATH": os.environ["PATH"], "WEBHOOKS_ENV": env_file}

    def webhooks(*args):
        out = subprocess.run([os.path.join(BIN, "webhooks"), *args], env=env, cwd=work, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"webhooks {args}: {out.stderr}")
        return json.loads(out.stdout) if "--json" in args else out.stdout

    webhooks("init")
    server, base = start_serve(BIN, env, work)
    try:
        run(webhooks, base, rport)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"{results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)


CREATED = {}


def source(webhooks, base, rport, name, provider, *extra):
    s = webhooks("source", "add", "--name", name, "--provider", provider, "--forward-url",
                 f"http://127.0.0.1:{rport}/relay/{name}", "--base", base, *extra, "--json")
    CREATED[name] = s
    return s


def provider_cases(name, url, sign, body, wrong_sign, stale=None, body_signed=True):
    """The four cases every provider gets, and the timestamp cases where one is signed.
    Postmark signs nothing (its credentials authenticate the sender, not the body): there a
    request without credentials takes the place of the altered body."""
    status, answer = post(url, sign(body), body)
    check(f"{name}: valid → 200 accepted", status == 200 and answer["status"] == "accepted", (status, answer))
    status, answer = post(url, sign(body), body)
    check(f"{name}: the same again → 200 duplicate", status == 200 and answer["status"] == "duplicate", (status, answer))
    if body_signed:
        status, answer = post(url, sign(body), flip(body))
        check(f"{name}: one flipped body byte → 401", status == 401, (status, answer))
    else:
        status, answer = post(url, {"Content-Type": "application/json"}, body)
        check(f"{name}: no credentials → 401 E_AUTH", status == 401 and answer["code"] == "E_AUTH", (status, answer))
    status, answer = post(url, wrong_sign(body), body)
    check(f"{name}: wrong secret → 401", status == 401, (status, answer))
    if stale:
        for off in (301, -301):
            status, answer = post(url, stale(body, off), body)
            check(f"{name}: timestamp {off:+d} s → 401 E_TIMESTAMP",
                  status == 401 and answer["code"] == "E_TIMESTAMP", (status, answer))


def run(webhooks, base, rport):
    now = int(time.time())
    bodies = {}

    # Stripe: npm stripe's generateTestHeaderString.
    secret = "whsec_stripe_suite_0123456789abcdef"
    s = source(webhooks, base, rport, "stripe", "stripe", "--secret", secret)
    body = json.dumps({"id": "evt_suite_1", "object": "event", "type": "payment_intent.succeeded",
                       "data": {"object": {"amount": 2000}}}, indent=2).encode()
    bodies["stripe"] = body
    stripe_sig = lambda b, sec=secret, t=None: {"Content-Type": "application/json; charset=utf-8",
                                                 "Stripe-Signature": node("stripe", sec, body_file(b), str(t or int(time.time())))}
    provider_cases("stripe", s["url"], stripe_sig, body, lambda b: stripe_sig(b, "whsec_wrong"),
                   stale=lambda b, off: stripe_sig(b, t=at_a_fresh_second() + off))

    # GitHub: npm @octokit/webhooks-methods' sign; the delivery id is not signed.
    s = source(webhooks, base, rport, "github", "github", "--secret", "gh-suite-secret")
    body = json.dumps({"action": "opened", "number": 1, "zen": "Keep it logically awesome."}).encode()
    bodies["github"] = body
    gh = lambda b, sec="gh-suite-secret", delivery="d-1": {"Content-Type": "application/json", "X-GitHub-Event": "pull_request",
                                                            "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": node("github", sec, body_file(b))}
    provider_cases("github", s["url"], gh, body, lambda b: gh(b, "wrong"))
    status, answer = post(s["url"], gh(body, delivery="d-2"), body)
    listed = webhooks("inbound", "--source", "github", "--outcome", "accepted", "--json")
    flagged = [r for r in listed if r.get("replay_of")]
    check("github: the same body under a new unsigned delivery id is accepted but flagged",
          status == 200 and answer["status"] == "accepted" and len(flagged) == 1 and flagged[0]["dedupe_key"] == "d-2", listed)

    # Shopify: the standard library, exactly as Shopify's documented example computes it
    # (base64 of HMAC-SHA256 of the raw body with the app's client secret).
    s = source(webhooks, base, rport, "shopify", "shopify", "--secret", "hush")
    body = b'{"id":820982911946154508,"email":"jon@example.com","total_price":"254.98"}'
    shop = lambda b, sec="hush": {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
                                   "X-Shopify-Hmac-Sha256": base64.b64encode(hmac.new(sec.encode("utf-8"), b, hashlib.sha256).digest()).decode()}
    provider_cases("shopify", s["url"], shop, body, lambda b: shop(b, "not-hush"))

    # Slack: slack_sdk's SignatureVerifier.generate_signature.
    slack_secret = "8f742231b10e8888abcd99yyyzzz85a5"
    s = source(webhooks, base, rport, "slack", "slack", "--secret", slack_secret)
    body = json.dumps({"token": "x", "team_id": "T1", "event_id": "Ev08MFMKH6", "type": "event_callback",
                       "event": {"type": "app_mention", "text": "hi"}}).encode()

    def slack(b, sec=slack_secret, ts=None):
        ts = str(ts or int(time.time()))
        sig = SignatureVerifier(sec).generate_signature(timestamp=ts, body=b.decode())
        return {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}
    provider_cases("slack", s["url"], slack, body, lambda b: slack(b, "wrong-secret"),
                   stale=lambda b, off: slack(b, ts=at_a_fresh_second() + off))

    # Standard Webhooks: both libraries, both header families.
    s = source(webhooks, base, rport, "standard", "standard")
    std_secret = s["secret"]
    body = json.dumps({"type": "invoice.paid", "data": {"n": 1}}).encode()

    def standard(b, sec=std_secret, msg="msg_suite_1", off=0):
        ts = datetime.datetime.fromtimestamp((at_a_fresh_second() if off else int(time.time())) + off, tz=datetime.timezone.utc)
        sig = standardwebhooks.webhooks.Webhook(sec).sign(msg, ts, b.decode())
        return {"Content-Type": "application/json", "webhook-id": msg, "webhook-timestamp": str(int(ts.timestamp())), "webhook-signature": sig}
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    provider_cases("standard (webhook-*)", s["url"], standard, body, lambda b: standard(b, other),
                   stale=lambda b, off: standard(b, off=off))

    def svix_headers(b, sec=std_secret, msg="msg_suite_svix", off=0):
        ts = datetime.datetime.fromtimestamp((at_a_fresh_second() if off else int(time.time())) + off, tz=datetime.timezone.utc)
        sig = svix.webhooks.Webhook(sec).sign(msg, ts, b.decode())
        return {"Content-Type": "application/json", "svix-id": msg, "svix-timestamp": str(int(ts.timestamp())), "svix-signature": sig}
    provider_cases("standard (svix-*)", s["url"], svix_headers, body, lambda b: svix_headers(b, other),
                   stale=lambda b, off: svix_headers(b, off=off))

    # Rotation: both secrets verify while the old one is in its grace period.
    rot = webhooks("source", "rotate-secret", "standard", "--json")
    new_secret = rot["secret"]
    st, a = post(s["url"], standard(body, std_secret, "msg_rot_old"), body)
    st2, a2 = post(s["url"], standard(body, new_secret, "msg_rot_new"), body)
    check("rotation: the old and the new secret are both accepted", (st, st2) == (200, 200) and
          a["status"] == a2["status"] == "accepted", (st, a, st2, a2))

    # Postmark: HTTP Basic credentials in the URL given to Postmark.
    s = source(webhooks, base, rport, "postmark", "postmark", "--max-body", "4KiB")
    provider_url = s["provider_url"]
    creds, rest = provider_url.split("//", 1)[1].split("@", 1)
    url = "http://" + rest
    body = json.dumps({"MessageID": "22c74902-a0c1-4511-804f-341342852c90", "From": "a@example.net", "Subject": "Hi"}).encode()
    auth = lambda user_pass: {"Content-Type": "application/json", "Authorization": "Basic " + base64.b64encode(user_pass.encode()).decode()}
    provider_cases("postmark", url, lambda b: auth(urllib.request.unquote(creds)), body, lambda b: auth("postmark:wrong"),
                   body_signed=False)
    status, answer = post(url, auth(urllib.request.unquote(creds)), b"x" * 5000)
    rejects = webhooks("inbound", "--source", "postmark", "--outcome", "rejected", "--json")
    check("postmark: an oversized body → 413 and a logged reject",
          status == 413 and any(r["reason"] == "body_too_large" and r["body_size"] == 5000 for r in rejects), (status, answer))

    # Circle: cryptography's ECDSA P-256 with the suite's own key; the key server is asked once.
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    key_id = "f2b4c8a0-1d3e-4f5a-9b6c-7d8e9fa0b1c2"
    Recorder.circle_keys[key_id] = base64.b64encode(der).decode()
    s = source(webhooks, base, rport, "circle", "circle", "--key-url", f"http://127.0.0.1:{rport}/v2/notifications/publicKey",
               "--api-key", "TEST_API_KEY:suite")

    def circle(b, k=key, kid=key_id):
        return {"Content-Type": "application/json", "X-Circle-Key-Id": kid,
                "X-Circle-Signature": base64.b64encode(k.sign(b, ec.ECDSA(hashes.SHA256()))).decode()}
    body = json.dumps({"subscriptionId": "s-1", "notificationId": "n-suite-1", "notificationType": "transfers",
                       "notification": {"id": "t-1"}}).encode()
    bodies["circle"] = body
    provider_cases("circle", s["url"], circle, body, lambda b: circle(b, ec.generate_private_key(ec.SECP256R1())))
    check("circle: the key server was asked once for the requests", Recorder.key_requests.count(key_id) == 1,
          Recorder.key_requests)
    unknown = "00000000-0000-4000-8000-000000000000"
    status, answer = post(s["url"], circle(body, kid=unknown), body)
    check("circle: an unknown key id the key server does not know → 401", status == 401, (status, answer))
    recorder_down = source(webhooks, base, rport, "circle-down", "circle", "--key-url", f"http://127.0.0.1:{free_port()}/k")
    status, answer = post(recorder_down["url"], circle(body), body)
    check("circle: a key server that is down → 503 with Retry-After (Circle retries)", status == 503, (status, answer))
    for method in ("GET", "HEAD"):
        with urllib.request.urlopen(urllib.request.Request(s["url"], method=method), timeout=5) as r:
            check(f"circle: {method} on the address → 200", r.status == 200)

    # The generic hmac provider: sha512, base64, a prefix, the id from a JSON pointer.
    s = source(webhooks, base, rport, "generic", "hmac", "--secret", "generic-secret", "--header", "X-Signature",
               "--algorithm", "sha512", "--encoding", "base64", "--prefix", "sha512=", "--id-pointer", "/event/id")
    body = json.dumps({"event": {"id": 77, "kind": "created"}}).encode()
    gen = lambda b, sec="generic-secret": {"Content-Type": "application/json",
                                           "X-Signature": "sha512=" + base64.b64encode(hmac.new(sec.encode(), b, hashlib.sha512).digest()).decode()}
    provider_cases("hmac", s["url"], gen, body, lambda b: gen(b, "wrong"))

    # The Cloudflare Email Worker under Node, against a standard source for mail.
    mail = webhooks("source", "add", "--name", "mail", "--provider", "standard", "--max-body", "25MiB", "--forward-url",
                    f"http://127.0.0.1:{rport}/relay/mail", "--base", base, "--json")
    raw = (b"From: Sender <sender@example.net>\r\nTo: alias@example.com\r\nSubject: caf\xc3\xa9\r\n"
           b"Message-ID: <test@example.net>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello \xe2\x80\x94 8-bit body.\r\n")
    bodies["mail"] = raw
    CREATED["mail"] = mail
    worker = os.path.join(ROOT, "docs", "examples", "cloudflare-email-worker.js")
    out = node("worker", worker, mail["url"], mail["secret"], body_file(raw))
    check("worker: posts the message and the standard source accepts it", out == "delivered", out)
    out = node("worker", worker, mail["url"], mail["secret"], body_file(raw))
    dup = webhooks("inbound", "--source", "mail", "--outcome", "duplicate", "--json")
    check("worker: the same mail again is a duplicate (its id comes from the message)", out == "delivered" and len(dup) == 1, (out, dup))
    out = node("worker", worker, mail["url"], "whsec_" + base64.b64encode(b"y" * 32).decode(), body_file(raw))
    check("worker: a non-2xx answer makes it throw (the mail is retried)", out.startswith("threw: QSM Webhooks answered 401"), out)

    # Relays: one per accepted event, byte for byte, verified by standardwebhooks.
    webhooks("dispatch")
    # Each forward destination's secret was printed once, when its source was added.
    secrets = {name: CREATED[name]["forwards"][0]["secret"] for name in ("stripe", "github", "circle", "mail")}
    for name in ("stripe", "github", "circle", "mail"):
        got = [(h, b) for p, h, b in Recorder.relayed if p == f"/relay/{name}"]
        expected = {"github": 2}.get(name, 1)
        check(f"relay {name}: {expected} relayed request(s) for {expected} accepted event(s)", len(got) == expected, len(got))
        if not got:
            continue
        headers, body = got[0]
        check(f"relay {name}: the provider's body byte for byte", body == bodies[name])
        wh = standardwebhooks.webhooks.Webhook(secrets[name])
        lower = {k.lower(): v for k, v in headers.items()}
        try:
            if headers["Content-Type"].startswith("application/json"):
                wh.verify(body, lower)
                ok = True
            else:
                # verify() parses the payload as JSON once it has checked it; for a mail the
                # library's own signer must produce the signature the relay carries.
                ts = datetime.datetime.fromtimestamp(int(lower["webhook-timestamp"]), tz=datetime.timezone.utc)
                ok = wh.sign(lower["webhook-id"], ts, body.decode("utf-8")) in lower["webhook-signature"].split(" ")
        except Exception as e:  # noqa: BLE001 - the library's own failure is the detail
            ok = e
        check(f"relay {name}: standardwebhooks verifies the relay with the destination's secret", ok is True, ok)
        check(f"relay {name}: names its source and provider, verified",
              headers["X-QSM-Source"] == name and headers["X-QSM-Provider"] == CREATED[name]["provider"] and headers["X-QSM-Verified"] == "true",
              dict(headers))
    mail_headers = [h for p, h, b in Recorder.relayed if p == "/relay/mail"][0]
    check("relay mail: sent as message/rfc822", mail_headers["Content-Type"] == "message/rfc822", mail_headers["Content-Type"])


if __name__ == "__main__":
    main()
