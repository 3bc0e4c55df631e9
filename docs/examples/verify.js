const crypto = require("crypto");

function verify(secret, headers, rawBody) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const id = headers["x-qsm-id"], ts = headers["x-qsm-timestamp"];
  if (!/^\d+$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false;
  const expected = crypto.createHmac("sha256", key).update(`${id}.${ts}.`).update(rawBody).digest("hex");
  return (headers["x-qsm-signature"] || "").split(" ").some((s) =>
    s.startsWith("v1=") && s.length === 67 &&
    crypto.timingSafeEqual(Buffer.from(s.slice(3)), Buffer.from(expected)));
}
