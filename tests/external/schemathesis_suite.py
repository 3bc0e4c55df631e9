#!/usr/bin/env python3
"""schemathesis (PyPI) against docs/openapi.json and the real CGI, served on loopback by
`webhooks serve`: generated and hostile requests to every operation, with every check —
no 5xx, status codes, content types, headers and bodies as the document says.

Usage: schemathesis_suite.py BIN_DIR [MAX_SECONDS]
"""
import os
import re
import subprocess
import sys
import tempfile
import time
import json

from common import start_serve, test_database

BIN = os.path.abspath(sys.argv[1])
MAX_SECONDS = sys.argv[2] if len(sys.argv) > 2 else "240"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def main():
    work = tempfile.mkdtemp(prefix="qsm-schemathesis-")
    env_file = os.path.join(work, ".env")
    with open(env_file, "w") as f:
        f.write(f"WEBHOOKS_SECRET_KEY={KEY}\nWEBHOOKS_DATABASE={test_database() or 'var/webhooks.db'}\n"
                # Endpoints on loopback are allowed, so a generated test send gets a quick
                # connection refused instead of a timeout; nothing else listens there.
                "WEBHOOKS_ALLOWED_NETWORKS=127.0.0.1/32\nWEBHOOKS_TEST_TIMEOUT=1s\n"
                "WEBHOOKS_REQUEST_TIMEOUT=1s\nWEBHOOKS_MAX_ENDPOINTS_PER_USER=1000\n")
    os.makedirs(os.path.join(work, "var"))
    env = {"PATH": os.environ["PATH"], "WEBHOOKS_ENV": env_file}

    def cli(*args):
        out = subprocess.run([os.path.join(BIN, "webhooks"), *args], env=env, cwd=work,
                             capture_output=True, text=True, check=True)
        return out.stdout

    cli("init")
    endpoint = json.loads(cli("endpoint", "add", "--user", "alice", "--url", "http://127.0.0.1:9/hook", "--json"))
    cli("emit", "--user", "alice", "--type", "email.received",
        "--data", '{"alias":"a@x","message_id":"<1@x>","size_bytes":1}')
    cli("dispatch")
    # A user token: what a user's own scripts hold. (With an application token, `user` is
    # required in bodies, which the document can only say in words.)
    token = json.loads(cli("token", "create", "--user", "alice", "--json"))["token"]
    app = json.loads(cli("token", "create", "--app", "--json"))["token"]
    # An inbound source with a logged reject, so that the inbound routes have something to show.
    source = json.loads(cli("source", "add", "--name", "seed", "--provider", "github", "--secret", "s", "--json"))
    cgi_env = dict(env, REQUEST_METHOD="POST", PATH_INFO=source["url"].split("8080", 1)[1], CONTENT_LENGTH="2",
                   REMOTE_ADDR="127.0.0.1", HTTP_X_HUB_SIGNATURE_256="sha256=00")
    subprocess.run([os.path.join(BIN, "webhooks-cgi")], env=cgi_env, cwd=work, input="{}", capture_output=True, text=True, check=True)

    server, base = start_serve(BIN, env, work, stderr=subprocess.PIPE)
    try:
        report = os.path.join(work, "report")
        code = 0
        # Two passes over the document: a user token over the user's API (the admin-only
        # inbound routes would only answer 403 to it), and an application token over the
        # inbound sources and their request log.
        passes = [
            ("user token", token, ["--exclude-path-regex", "^/api/v1/(tokens/|sources|inbound)"], int(MAX_SECONDS) * 2 // 3),
            ("application token", app, ["--include-path-regex", "^/api/v1/(sources|inbound)"], int(MAX_SECONDS) // 3),
        ]
        for name, credential, paths, seconds in passes:
            cmd = [
                "schemathesis", "--config-file", os.path.join(ROOT, "tests", "external", "schemathesis.toml"),
                "run", os.path.join(ROOT, "docs", "openapi.json"),
                "--url", base,
                "--header", f"Authorization: Bearer {credential}",
                # Revoking a token is left out: the run would revoke its own credential (listed by
                # GET /api/v1/tokens) and see nothing but 401 after; tests/suite/api.rs covers revocation.
                *paths,
                "--max-time", str(seconds),
                # One worker: with two, hypothesis describes strategies from two threads at once,
                # and CPython 3.11's ast module then fails now and then with "AST constructor
                # recursion depth mismatch" (python/cpython#106905), an error of the runner, not
                # of this program (seen in 2 of about 8 runs on this suite).
                "--workers", "1",
                "--report", "junit", "--report-dir", os.path.join(report, name.replace(" ", "-")),
                "--seed", str(int(time.time())),
            ]
            print(f"$ ({name})", " ".join(c if "Bearer" not in c else "Authorization: Bearer …" for c in cmd), flush=True)
            result = subprocess.run(cmd, cwd=work)
            code = code or result.returncode
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
    panics = [l for l in err.splitlines() if "panic" in l or "internal error" in l]
    if panics:
        print("the CGI logged internal errors:\n" + "\n".join(panics[:20]), file=sys.stderr)
        code = code or 1
    sys.exit(code)


if __name__ == "__main__":
    main()
