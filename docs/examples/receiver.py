#!/usr/bin/env python3
"""A minimal webhook receiver for trying QSM Webhooks locally (standard library only).

Verifies the X-QSM-Signature header of every delivery with the endpoint secret, prints the
event, and answers 204 (or 400 when the signature does not verify).

    python3 docs/examples/receiver.py --secret whsec_... --port 9000
"""
import argparse
import base64
import hashlib
import hmac
import json
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

TOLERANCE = 300  # seconds, like WEBHOOKS_SKEW_TOLERANCE


def verify(secret, headers, body, prefix="X-QSM"):
    """Returns None when valid, else the reason."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id = headers.get(prefix + "-Id")
    ts = headers.get(prefix + "-Timestamp")
    sigs = (headers.get(prefix + "-Signature") or "").split()
    if not (msg_id and ts and sigs):
        return "missing signature headers"
    if not ts.isdigit() or abs(time.time() - int(ts)) > TOLERANCE:
        return "timestamp outside the tolerance"
    signed = msg_id.encode() + b"." + ts.encode() + b"." + body
    expected = hmac.new(key, signed, hashlib.sha256).hexdigest()
    for sig in sigs:
        if sig.startswith("v1=") and hmac.compare_digest(sig[3:], expected):
            return None
    return "no signature matches"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret", required=True)
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            problem = verify(args.secret, self.headers, body)
            if problem:
                print("REJECTED:", problem, flush=True)
                self.send_response(400)
            else:
                event = json.loads(body)
                print("VERIFIED", event["id"], event["type"], json.dumps(event["data"]), flush=True)
                self.send_response(204)
            self.end_headers()

        def log_message(self, *_):
            pass

    print(f"listening on http://127.0.0.1:{args.port}/", flush=True)
    HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
