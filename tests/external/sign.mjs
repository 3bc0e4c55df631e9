// Signs test webhooks offline with the providers' own Node libraries, for
// tests/external/inbound_providers.py; also runs the Cloudflare Email Worker with a stand-in
// message. Usage:
//   node sign.mjs stripe SECRET BODY_FILE TIMESTAMP   → the Stripe-Signature header
//   node sign.mjs github SECRET BODY_FILE             → the X-Hub-Signature-256 header
//   node sign.mjs worker WORKER_FILE URL SECRET MAIL_FILE → runs the Worker's email() handler
import { readFileSync, copyFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import Stripe from "stripe";
import { sign } from "@octokit/webhooks-methods";

const [what, ...args] = process.argv.slice(2);
if (what === "stripe") {
  const [secret, file, timestamp] = args;
  const stripe = new Stripe("sk_test_unused_offline");
  const payload = readFileSync(file, "utf8");
  console.log(stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp: Number(timestamp) }));
} else if (what === "github") {
  const [secret, file] = args;
  console.log(await sign(secret, readFileSync(file, "utf8")));
} else if (what === "worker") {
  const [workerFile, url, secret, mailFile] = args;
  // The Worker is an ES module in a .js file: import a .mjs copy of it.
  const copy = join(mkdtempSync(join(tmpdir(), "worker-")), "worker.mjs");
  copyFileSync(workerFile, copy);
  const worker = (await import(pathToFileURL(copy).href)).default;
  const bytes = readFileSync(mailFile);
  const message = {
    from: "sender@example.net",
    to: "alias@example.com",
    headers: new Headers({ "message-id": "<test@example.net>" }),
    raw: new Blob([bytes]).stream(),
    rawSize: bytes.length,
  };
  try {
    await worker.email(message, { QSM_URL: url, QSM_SECRET: secret }, { waitUntil() {} });
    console.log("delivered");
  } catch (e) {
    console.log("threw: " + e.message);
    process.exitCode = 3;
  }
} else {
  console.error("usage: node sign.mjs stripe|github|worker …");
  process.exitCode = 2;
}
