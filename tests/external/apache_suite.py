#!/usr/bin/env python3
"""End to end on Debian's Apache 2.4: the product installed exactly as docs/operator.md says,
served by mod_cgi + prefork and by mod_cgid + event, used over HTTP on loopback.

Usage: apache_suite.py RELEASE_DIR   (a directory with bin/, cgi-bin/, crontab.example, …:
the unpacked release tarball, or a tree assembled from target/)
Prints 'N passed, M failed'; exits 1 on any failure. Needs root (Apache runs as a test user).
"""
import base64
import hashlib
import hmac
import http.client
from html import unescape as html_unescape
import json
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import standardwebhooks
import svix.webhooks

from common import free_port, test_database

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RELEASE = os.path.abspath(sys.argv[1])
USER = "qsmtest"
results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f"  {detail}"), flush=True)
    return ok


def ensure_user():
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
    return pwd.getpwnam(USER)


class Receiver:
    """Verifies every delivery with the standardwebhooks and svix libraries."""

    def __init__(self):
        self.deliveries = []
        self.secret = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = dict(self.headers.items())
                verdicts = {}
                for lib, verify in (("standardwebhooks", lambda: standardwebhooks.Webhook(outer.secret).verify(body, headers)),
                                    ("svix", lambda: svix.webhooks.Webhook(outer.secret).verify(body, headers))):
                    try:
                        verify()
                        verdicts[lib] = True
                    except Exception:  # noqa: BLE001
                        verdicts[lib] = False
                outer.deliveries.append((json.loads(body), verdicts))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def install(home):
    """Runs docs/operator.md's sh blocks, as written, for this home directory."""
    guide = open(os.path.join(REPO, "docs/operator.md")).read()
    script = "set -euo pipefail\n" + "".join(re.findall(r"```sh\n(.*?)```", guide, re.S))
    tools = os.path.join(home, "tools")
    os.makedirs(tools)
    with open(os.path.join(tools, "crontab"), "w") as f:
        f.write(f"#!/bin/sh\nif [ \"$1\" = -l ]; then cat {home}/crontab.txt 2>/dev/null || exit 1; else cat > {home}/crontab.txt; fi\n")
    os.chmod(os.path.join(tools, "crontab"), 0o755)
    # The tarball, as the guide expects to find it in the home directory.
    version = re.search(r"^VERSION=(\S+)$", script, re.M).group(1)
    name = f"qsm-webhooks-{version}-x86_64-linux-gnu"
    if not check("the guide's VERSION names this release", os.path.basename(RELEASE.rstrip("/")) == name, f"{name} vs {RELEASE}"):
        raise SystemExit(1)
    subprocess.run(["tar", "-C", os.path.dirname(RELEASE.rstrip("/")), "-czf", f"{home}/{name}.tar.gz", name], check=True)
    env = {"HOME": home, "PATH": tools + ":" + os.environ["PATH"]}
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    if not check("install as docs/operator.md says", out.returncode == 0, out.stderr[-2000:]):
        raise SystemExit(1)
    token = re.search(r"token: (qsm_\S+)", out.stdout).group(1)
    cron = open(os.path.join(home, "crontab.txt")).read()
    cron_cmd = [l for l in cron.splitlines() if "dispatch" in l][0].split(" ", 5)[5]
    return token, cron_cmd


def install_password_option(home):
    """Runs docs/operator.md's `sh password` block, as written, after the install."""
    guide = open(os.path.join(REPO, "docs/operator.md")).read()
    first = re.findall(r"```sh\n(.*?)```", guide, re.S)[0]
    paths = "".join(l + "\n" for l in first.splitlines() if re.match(r"^(VERSION|RELEASE|INSTALL|CGI_DIR)=", l))
    script = "set -euo pipefail\n" + paths + "".join(re.findall(r"```sh password\n(.*?)```", guide, re.S))
    out = subprocess.run(["bash", "-c", script], env={"HOME": home, "PATH": os.environ["PATH"]}, capture_output=True, text=True)
    check("install the password option as docs/operator.md says", out.returncode == 0 and "htaccess-password" in script, out.stderr[-2000:])


def apache_conf(home, port, module, mpm, pass_auth=True):
    mods = "/usr/lib/apache2/modules"
    cgi_dir = f"{home}/public_html/cgi-bin"
    if not pass_auth:
        path = f"{cgi_dir}/.htaccess"
        text = open(path).read().replace("CGIPassAuth On", "# CGIPassAuth On (removed by the test)")
        open(path, "w").write(text)
    return f"""
ServerRoot "{home}/apache"
DefaultRuntimeDir "{home}/apache/run"
PidFile "{home}/apache/run/httpd.pid"
Mutex file:{home}/apache/run default
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
User {USER}
Group {USER}
ErrorLog "{home}/apache/error.log"
LogLevel warn
LoadModule mpm_{mpm}_module {mods}/mod_mpm_{mpm}.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule authz_user_module {mods}/mod_authz_user.so
LoadModule authn_core_module {mods}/mod_authn_core.so
LoadModule authn_file_module {mods}/mod_authn_file.so
LoadModule auth_basic_module {mods}/mod_auth_basic.so
LoadModule mime_module {mods}/mod_mime.so
LoadModule {module}_module {mods}/mod_{module}.so
{f'ScriptSock "{home}/apache/run/cgid.sock"' if module == "cgid" else ""}
TypesConfig /dev/null
DocumentRoot "{home}/public_html"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
# As on a shared host: everything below the web root is decided by the shipped .htaccess.
<Directory "{home}/public_html">
    AllowOverride All
    Require all granted
</Directory>
"""


class Apache:
    def __init__(self, home, module, mpm, pass_auth=True):
        self.port = free_port()
        os.makedirs(f"{home}/apache/run", exist_ok=True)
        subprocess.run(["chown", "-R", f"{USER}:{USER}", home], check=True)
        conf = f"{home}/apache/httpd-{module}.conf"
        open(conf, "w").write(apache_conf(home, self.port, module, mpm, pass_auth))
        self.home = home
        # Its own session: on shutdown Apache signals its whole process group.
        self.proc = subprocess.Popen(["apache2", "-f", conf, "-DFOREGROUND"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("apache did not start: " + self.proc.stderr.read().decode()[-2000:])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def request(self, method, path, body=None, headers=None, chunked=False):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = dict(headers or {})
        if chunked:
            conn.putrequest(method, path)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for i in range(0, len(body), 7):
                piece = body[i:i + 7]
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            conn.send(b"0\r\n\r\n")
        else:
            conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        headers = {}
        for k, v in r.getheaders():  # repeated headers (Set-Cookie) one per line
            headers[k] = headers[k] + "\n" + v if k in headers else v
        return r.status, headers, r.read().decode("utf-8", "replace")


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def as_user(args, home):
    """Runs a program as the test user, the way cron and suexec would."""
    return subprocess.run(["su", "-s", "/bin/sh", USER, "-c", " ".join(shlex.quote(a) for a in args)],
                          env={"PATH": "/usr/bin:/bin", "HOME": home}, capture_output=True, text=True)


def sign_in_by_link(apache, home, install_root, base, user):
    """Opens a portal link from `webhooks portal-link`; returns (status, session cookie)."""
    out = as_user([f"{install_root}/bin/webhooks", "portal-link", "--user", user, "--base", base, "--json"], home)
    url = json.loads(out.stdout)["url"]
    status, headers, _ = apache.request("GET", url)
    return status, headers.get("Set-Cookie", "").split(";")[0]


def move_to_test_database(home, install_root, tag):
    """Under WEBHOOKS_TEST_STORE=postgres: the installation made as the guide says, then moved as
    docs/postgres.md says (migrate-store points its .env at a new database)."""
    database = test_database()
    if database:
        out = subprocess.run([f"{install_root}/bin/webhooks", "migrate-store", "--to", database], cwd=install_root,
                             env={"HOME": home, "PATH": os.environ["PATH"]}, capture_output=True, text=True)
        if not check(f"{tag} migrate-store to PostgreSQL", out.returncode == 0, out.stderr[-2000:]):
            raise SystemExit(1)


def run_mode(module, mpm):
    tag = f"[mod_{module} + {mpm}]"
    home = tempfile.mkdtemp(prefix=f"qsm-apache-{module}-")
    os.chmod(home, 0o755)
    token, cron_cmd = install(home)
    install_root = f"{home}/webhooks"
    with open(f"{install_root}/.env", "a") as f:
        f.write("WEBHOOKS_ALLOWED_NETWORKS=127.0.0.1/32\n")
    move_to_test_database(home, install_root, tag)
    base = "/cgi-bin/webhooks.cgi"
    alice = basic("alice", "correct horse")

    # The shipped .htaccess: no password anywhere; the program decides.
    apache = Apache(home, module, mpm)
    try:
        status, headers, html = apache.request("GET", f"{base}/endpoints")
        check(f"{tag} .htaccess: no session, the program answers 401 (Apache asks nothing)",
              status == 401 and "You are not signed in" in html and "WWW-Authenticate" not in headers, f"{status} {headers}")
        status, _, html = apache.request("GET", f"{base}/endpoints", headers=alice)
        check(f"{tag} .htaccess: a password Apache did not check is named, with the fix",
              status == 401 and "did not check them" in html and ".htaccess-password" in html, f"{status} {html[:300]}")
        status, cookie = sign_in_by_link(apache, home, install_root, base, "carol")
        check(f"{tag} .htaccess: a login link starts a session", status == 303 and cookie.startswith("qsm_session="), f"{status} {cookie}")
        status, _, html = apache.request("GET", f"{base}/endpoints", headers={"Cookie": cookie})
        check(f"{tag} .htaccess: the session shows the pages", status == 200 and "<span>carol</span>" in html, f"{status} {html[:300]}")
        status, _, body = apache.request("GET", f"{base}/api/v1/endpoints", headers={"Authorization": f"Bearer {token}"})
        check(f"{tag} .htaccess: the API takes its Bearer token", status == 200, f"{status} {body[:200]}")
    finally:
        apache.stop()

    # The password option, installed as the guide says, with a password file.
    install_password_option(home)
    subprocess.run(["htpasswd", "-cbB", f"{home}/.htpasswd-webhooks", "alice", "correct horse"], check=True, capture_output=True)
    rx = Receiver()
    apache = Apache(home, module, mpm)
    try:
        # A user creates an endpoint through the pages.
        status, headers, html = apache.request("GET", f"{base}/endpoints/new", headers=alice)
        check(f"{tag} the new-endpoint page", status == 200 and 'name="csrf"' in html and "<span>alice</span>" in html, f"{status} {html[:300]}")
        csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
        cookie = headers.get("Set-Cookie", "").split(";")[0]
        form = urllib.parse.urlencode([("csrf", csrf), ("url", f"http://127.0.0.1:{rx.port}/hook"), ("description", "CRM"), ("event_types", "*"), ("active", "on")])
        status, headers, html = apache.request("POST", f"{base}/endpoints/new", body=form, headers={**alice, "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
        # Post/Redirect/Get: the endpoint's page shows the new secret, named by a short-lived cookie.
        location = headers.get("Location", "")
        flash = [c.split(";")[0] for c in headers.get("Set-Cookie", "").splitlines() if c.startswith("qsm_new_secret=")]
        check(f"{tag} creating redirects to the endpoint's page", status == 303 and "/endpoints/ep_" in location and flash, f"{status} {headers}")
        status, _, html = apache.request("GET", location, headers={**alice, "Cookie": "; ".join([cookie] + flash)})
        secret = re.search(r"(whsec_[A-Za-z0-9+/=]+)", html_unescape(html))
        check(f"{tag} endpoint created on the page, secret shown once", status == 200 and secret is not None, f"{status} {html[:500]}")
        rx.secret = secret.group(1)

        # The host application posts events through the API: no password asked.
        api = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        event = {"type": "email.forwarded", "user": "alice", "data": {"alias": "a@x.example", "message_id": "<1@x>", "destinations": ["b@y.example"], "size_bytes": 42}}
        status, _, body = apache.request("POST", f"{base}/api/v1/events", body=json.dumps([event] * 3), headers=api)
        check(f"{tag} a batch of events posted through the API (202)", status == 202 and json.loads(body)["deliveries"] == 3, f"{status} {body}")
        status, _, body = apache.request("POST", f"{base}/api/v1/events", body=json.dumps(event).encode(), headers=api, chunked=True)
        check(f"{tag} a chunked request body (no Content-Length) is read", status == 202, f"{status} {body}")
        big = json.dumps([event] * 3000)
        status, _, body = apache.request("POST", f"{base}/api/v1/events", body=big, headers=api)
        check(f"{tag} a body over WEBHOOKS_MAX_BODY answers 413", status == 413 and "payload_too_large" in body, f"{status} {body[:200]}")
        status, _, body = apache.request("GET", f"{base}/api/v1/event-types")
        check(f"{tag} public API documents need no password", status == 200, f"{status}")

        # The dispatcher runs the way cron would: the installed line, a few times.
        for _ in range(3):
            subprocess.run(["su", "-s", "/bin/sh", USER, "-c", cron_cmd], check=True, env={"PATH": "/usr/bin:/bin", "HOME": home})
            if len(rx.deliveries) >= 4:
                break
            time.sleep(1)
        check(f"{tag} every event delivered", len(rx.deliveries) == 4, str(len(rx.deliveries)))
        check(f"{tag} every delivery verified by standardwebhooks and svix",
              rx.deliveries and all(v["standardwebhooks"] and v["svix"] for _, v in rx.deliveries), str([v for _, v in rx.deliveries]))

        # The deliveries appear in the log pages.
        status, _, html = apache.request("GET", f"{base}/deliveries?status=succeeded", headers=alice)
        check(f"{tag} the delivery log page lists them", status == 200 and html.count('class="status succeeded"') == 4, f"{status}")
        dlv = re.search(r'/deliveries/(dlv_[0-9A-Z]+)"', html)
        status, _, html = apache.request("GET", f"{base}/deliveries/{dlv.group(1)}", headers=alice)
        check(f"{tag} a delivery's page shows its attempt", status == 200 and '<td data-label="Status">200</td>' in html, f"{status}")

        status, headers, _ = apache.request("GET", f"{base}/endpoints", headers=basic("alice", "wrong"))
        check(f"{tag} a wrong password is refused by Apache (401)", status == 401 and "WWW-Authenticate" in headers, f"{status} {headers}")
        status, headers, _ = apache.request("GET", f"{base}/endpoints")
        check(f"{tag} no password, no pages: Apache asks for one (401)", status == 401 and headers.get("WWW-Authenticate", "").startswith("Basic"), f"{status} {headers}")

        # Login links still work: the link and the session it starts pass without a password.
        status, cookie = sign_in_by_link(apache, home, install_root, base, "bob")
        check(f"{tag} a login link passes without a password", status == 303 and cookie.startswith("qsm_session="), f"{status} {cookie}")
        status, _, html = apache.request("GET", f"{base}/", headers={"Cookie": cookie})
        check(f"{tag} its session shows bob's pages without a password", status == 200 and "<span>bob</span>" in html, f"{status} {html[:300]}")
        status, headers, html = apache.request("GET", f"{base}/", headers={"Cookie": "qsm_session=bob.1.x.forged"})
        check(f"{tag} a forged session is refused by the program and cleared",
              status == 401 and any(c.startswith("qsm_session=;") and "Max-Age=0" in c for c in headers.get("Set-Cookie", "").splitlines()), f"{status} {headers}")

        # A framed sign-in in a browser that keeps no cookies in frames: its check and its
        # handoff to a new tab pass without the password (docs/embedding.md); nothing else does.
        with open(f"{install_root}/.env", "a") as f:
            f.write("WEBHOOKS_EMBED_ORIGINS=https://shop.example\n")
        out = as_user([f"{install_root}/bin/webhooks", "portal-link", "--user", "dora", "--embed", "--base", base, "--json"], home)
        frame = {"Sec-Fetch-Dest": "iframe"}
        status, headers, _ = apache.request("GET", json.loads(out.stdout)["url"], headers=frame)
        check_url = headers.get("Location", "")
        status, _, html = apache.request("GET", check_url, headers=frame)
        html = html_unescape(html)
        check(f"{tag} a framed sign-in without its cookie: the check offers a new tab, without a password",
              status == 200 and "/login/continue?" in html, f"{status} {check_url} {html[:300]}")
        continue_url = re.search(r'href="([^"]*/login/continue\?[^"]*)"', html).group(1)
        status, headers, _ = apache.request("GET", continue_url, headers={"Sec-Fetch-Dest": "document"})
        cookie = headers.get("Set-Cookie", "").split(";")[0]
        status2, _, html = apache.request("GET", f"{base}/endpoints", headers={"Cookie": cookie})
        check(f"{tag} the new tab takes over the session, without a password",
              status == 303 and status2 == 200 and "<span>dora</span>" in html, f"{status} {status2}")
        status, headers, _ = apache.request("GET", f"{base}/login/other")
        check(f"{tag} only the portal's own paths are exempt (Apache asks for /login/other)",
              status == 401 and headers.get("WWW-Authenticate", "").startswith("Basic"), f"{status} {headers}")

        # Inbound sources through Apache: the providers' addresses pass without the site password,
        # Postmark's own Basic credentials reach the program (CGIPassAuth On), chunked bodies are
        # read, and the dispatcher relays each accepted event once, signed for its destination.
        relay_pm, relay_gh = Receiver(), Receiver()
        public = f"http://127.0.0.1:{apache.port}{base}"
        added = []
        for name, provider, relay, extra in (("postmark", "postmark", relay_pm, ["--max-body", "4KiB"]),
                                             ("github", "github", relay_gh, ["--secret", "gh-apache-secret"])):
            out = as_user([f"{install_root}/bin/webhooks", "source", "add", "--name", name, "--provider", provider,
                           "--forward-url", f"http://127.0.0.1:{relay.port}/{name}", "--base", public, *extra, "--json"], home)
            check(f"{tag} inbound: source {name} added", out.returncode == 0, out.stderr)
            added.append(json.loads(out.stdout))
            relay.secret = added[-1]["forwards"][0]["secret"]
        pm, gh = added
        pm_path, gh_path = urllib.parse.urlparse(pm["url"]).path, urllib.parse.urlparse(gh["url"]).path
        password = urllib.parse.unquote(urllib.parse.urlparse(pm["provider_url"]).password)
        status, headers, body = apache.request("HEAD", pm_path)
        check(f"{tag} inbound: HEAD on a source's address answers 200 without the site password", status == 200, f"{status} {headers}")
        mail = json.dumps({"MessageID": "0f5a6c1e-apache", "From": "a@example.net", "Subject": "Hi"})
        pm_headers = {"Content-Type": "application/json", **basic("postmark", password)}
        status, headers, body = apache.request("POST", pm_path, body=mail, headers=pm_headers)
        check(f"{tag} inbound: Postmark's Basic credentials reach the program, accepted", status == 200 and json.loads(body)["status"] == "accepted", f"{status} {body}")
        status, headers, body = apache.request("POST", pm_path, body=mail, headers=pm_headers)
        check(f"{tag} inbound: Postmark's retry is a duplicate", status == 200 and json.loads(body)["status"] == "duplicate", f"{status} {body}")
        status, headers, body = apache.request("POST", pm_path, body=mail, headers={"Content-Type": "application/json", **basic("postmark", "wrong")})
        check(f"{tag} inbound: wrong credentials → the program's 401 E_AUTH, not Apache's",
              status == 401 and json.loads(body)["code"] == "E_AUTH" and "WWW-Authenticate" not in headers, f"{status} {headers} {body}")
        status, _, body = apache.request("POST", pm_path, body="x" * 5000, headers=pm_headers)
        check(f"{tag} inbound: a body over the source's limit → 413", status == 413 and json.loads(body)["code"] == "E_TOO_LARGE", f"{status} {body}")
        push = json.dumps({"ref": "refs/heads/main", "zen": "Anything added dilutes everything else."}).encode()
        sig = "sha256=" + hmac.new(b"gh-apache-secret", push, hashlib.sha256).hexdigest()
        gh_headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sig, "X-GitHub-Delivery": "apache-1", "X-GitHub-Event": "push"}
        status, _, body = apache.request("POST", gh_path, body=push, headers=gh_headers, chunked=True)
        check(f"{tag} inbound: a chunked GitHub request verifies and is accepted", status == 200 and json.loads(body)["status"] == "accepted", f"{status} {body}")
        status, _, body = apache.request("POST", gh_path, body=push[:-1] + b" ", headers=gh_headers)
        check(f"{tag} inbound: an altered body → 401 E_SIGNATURE", status == 401 and json.loads(body)["code"] == "E_SIGNATURE", f"{status} {body}")
        for _ in range(3):
            subprocess.run(["su", "-s", "/bin/sh", USER, "-c", cron_cmd], check=True, env={"PATH": "/usr/bin:/bin", "HOME": home})
            if relay_pm.deliveries and relay_gh.deliveries:
                break
            time.sleep(1)
        check(f"{tag} inbound: each accepted event relayed once",
              [len(relay_pm.deliveries), len(relay_gh.deliveries)] == [1, 1], f"{len(relay_pm.deliveries)} {len(relay_gh.deliveries)}")
        check(f"{tag} inbound: the relays verify with standardwebhooks and svix, bodies as sent",
              all(v["standardwebhooks"] and v["svix"] for r in (relay_pm, relay_gh) for _, v in r.deliveries)
              and relay_gh.deliveries and relay_gh.deliveries[0][0] == json.loads(push),
              str([r.deliveries for r in (relay_pm, relay_gh)]))
        status, _, html = apache.request("GET", f"{base}/sources", headers=alice)
        check(f"{tag} inbound: the sources page is for admins only (403 to alice)", status == 403, f"{status}")

        status, _, body = apache.request("GET", f"{base}/.htaccess")
        status2, _, _ = apache.request("GET", f"/cgi-bin/.htaccess")
        check(f"{tag} nothing in cgi-bin but the CGI is served", status2 in (403, 404), str(status2))
    finally:
        apache.stop()

    # The same server without CGIPassAuth: the API says exactly what to add.
    apache = Apache(home, module, mpm, pass_auth=False)
    try:
        for _ in range(3):  # a host application's requests, every one losing its header
            status, _, body = apache.request("GET", f"{base}/api/v1/endpoints", headers={"Authorization": f"Bearer {token}"})
        check(f"{tag} without CGIPassAuth the API answers 401 naming the fix",
              status == 401 and "CGIPassAuth On" in body, f"{status} {body[:300]}")
        status, headers, body = apache.request("POST", pm_path, body=mail.replace("apache", "apache-2"), headers=pm_headers)
        check(f"{tag} without CGIPassAuth a Postmark request is refused as credentials_missing",
              status == 401 and json.loads(body)["reason"] == "credentials_missing" and "CGIPassAuth On" in body, f"{status} {body[:300]}")
        out = as_user([f"{install_root}/bin/webhooks", "doctor"], home)
        check(f"{tag} webhooks doctor reports the missing CGIPassAuth",
              out.returncode == 1 and "PROBLEM  the last 3 API requests" in out.stdout and "CGIPassAuth On" in out.stdout, out.stdout)
    finally:
        apache.stop()
        log = open(f"{home}/apache/error.log").read()
        if results["failed"]:
            print(log[-3000:])
        shutil.rmtree(home, ignore_errors=True)


def main():
    ensure_user()
    for module, mpm in (("cgi", "prefork"), ("cgid", "event")):
        run_mode(module, mpm)
    print(f"{results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
