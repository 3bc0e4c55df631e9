// A Cloudflare Email Worker that hands every mail it receives to a QSM Webhooks inbound source
// of provider `standard` (docs/inbound/cloudflare-email.md).
//
// It posts the raw message (message.raw, RFC 822, byte for byte) as `message/rfc822`, signed the
// Standard Webhooks way with the source's secret: HMAC-SHA256 over `{id}.{timestamp}.{body}`,
// sent as webhook-id, webhook-timestamp and webhook-signature. The id is derived from the
// message itself, so a mail that Cloudflare hands over again is recognised as a duplicate.
// Any answer but 2xx throws: the mail is then not accepted, and Cloudflare retries it.
//
// Settings (Workers → Settings → Variables; keep the secret encrypted):
//   QSM_URL     the source's address, e.g. https://example.com/cgi-bin/webhooks.cgi/in/in_…
//   QSM_SECRET  the source's secret, whsec_…
// Mail can be large: give the source a size limit to match (`webhooks source update mail
// --max-body 25MiB`).

export default {
  async email(message, env, ctx) {
    const raw = new Uint8Array(await new Response(message.raw).arrayBuffer());
    const id = "msg_" + hex(await crypto.subtle.digest("SHA-256", raw)).slice(0, 32);
    const timestamp = Math.floor(Date.now() / 1000).toString();
    const signature = await sign(env.QSM_SECRET, id, timestamp, raw);
    const response = await fetch(env.QSM_URL, {
      method: "POST",
      headers: {
        "content-type": "message/rfc822",
        "webhook-id": id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + signature,
      },
      body: raw,
    });
    if (!response.ok) {
      throw new Error(`QSM Webhooks answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
    }
  },
};

/** base64 of HMAC-SHA256(secret, `${id}.${timestamp}.` + body), the secret being whsec_ + base64. */
async function sign(secret, id, timestamp, body) {
  const keyBytes = Uint8Array.from(atob(secret.replace(/^whsec_/, "")), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const prefix = new TextEncoder().encode(`${id}.${timestamp}.`);
  const signed = new Uint8Array(prefix.length + body.length);
  signed.set(prefix);
  signed.set(body, prefix.length);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, signed));
  let text = "";
  for (const b of mac) text += String.fromCharCode(b);
  return btoa(text);
}

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
