#!/usr/bin/env python3
"""Independent verification: real deliveries from `webhooks dispatch` are verified by the
Standard Webhooks and Svix Python libraries (webhook-* headers) and by the stdlib snippet in
docs/examples/receiver.py (X-QSM-* headers) — before and during a secret rotation — and a
tampered copy of each is rejected by all three.

Usage: verify_with_libraries.py TARGET_DIR   (the directory holding the built binaries)
Prints 'N passed, M failed' and exits non-zero on any failure.
"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import standardwebhooks
import svix.webhooks

from common import test_database

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location("receiver", os.path.join(ROOT, "docs/examples/receiver.py"))
receiver = importlib.util.module_from_spec(spec)
spec.loader.exec_module(receiver)

BIN = os.path.abspath(sys.argv[1])
received = []
results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    if ok:
        results["passed"] += 1
        print(f"ok   {name}")
    else:
        results["failed"] += 1
        print(f"FAIL {name} {detail}")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        received.append((self.headers, body))  # case-insensitive, as a receiver sees them
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


def main():
    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    with tempfile.TemporaryDirectory() as d:
        env_file = os.path.join(d, ".env")
        with open(env_file, "w") as f:
            f.write("WEBHOOKS_ALLOWED_NETWORKS=127.0.0.1/32\n")
            database = test_database()
            if database:
                f.write(f"WEBHOOKS_DATABASE={database}\n")
        env = {"PATH": os.environ["PATH"], "WEBHOOKS_ENV": env_file}

        def webhooks(*args):
            out = subprocess.run([os.path.join(BIN, "webhooks"), *args], env=env, cwd=d,
                                 capture_output=True, text=True, check=True)
            return json.loads(out.stdout) if "--json" in args else out.stdout

        webhooks("init")
        ep = webhooks("endpoint", "add", "--user", "alice", "--url", f"http://127.0.0.1:{port}/hook", "--json")
        secrets = [ep["secret"]]
        data = {"alias": "a@x.example", "message_id": "<1@x>", "destinations": ["b@y.example"], "size_bytes": 42}
        webhooks("emit", "--user", "alice", "--type", "email.forwarded", "--data", json.dumps(data), "--json")
        webhooks("dispatch")
        rot = webhooks("endpoint", "rotate-secret", ep["id"], "--json")
        secrets.append(rot["secret"])
        webhooks("emit", "--user", "alice", "--type", "email.forwarded", "--data", json.dumps(data), "--json")
        webhooks("dispatch")

    check("two deliveries received", len(received) == 2, str(len(received)))
    for i, (headers, body) in enumerate(received):
        usable = secrets[:1] if i == 0 else secrets
        for s in usable:
            label = f"delivery {i + 1} with secret {secrets.index(s) + 1}"
            for lib, verify in (("standardwebhooks", lambda s, h, b: standardwebhooks.Webhook(s).verify(b, dict(h.items()))),
                                ("svix", lambda s, h, b: svix.webhooks.Webhook(s).verify(b, dict(h.items())) or json.loads(b))):
                try:
                    payload = verify(s, headers, body)
                    check(f"{lib} verifies {label}", payload["type"] == "email.forwarded")
                except Exception as e:  # noqa: BLE001
                    check(f"{lib} verifies {label}", False, repr(e))
                tampered = body.replace(b"42", b"43")
                try:
                    verify(s, headers, tampered)
                    check(f"{lib} rejects tampered {label}", False, "accepted")
                except Exception:  # noqa: BLE001
                    check(f"{lib} rejects tampered {label}", True)
            check(f"receiver.py verifies X-QSM on {label}", receiver.verify(s, headers, body) is None)
            check(f"receiver.py rejects tampered {label}", receiver.verify(s, headers, body + b" ") is not None)
        sigs = headers["webhook-signature"].split()
        check(f"delivery {i + 1} carries {len(usable)} signature(s)", len(sigs) == len(usable), str(sigs))

    print(f"{results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
