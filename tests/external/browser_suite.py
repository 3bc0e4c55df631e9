#!/usr/bin/env python3
"""The pages in a real browser: Debian's Chromium, headless, driven by chromedriver through
Selenium (no browser is downloaded). The flows — create, edit, filter, test button, rotate a
secret, retry a dead delivery — run twice: with JavaScript enabled and disabled. A screenshot of
every page goes to SCREENSHOT_DIR (CI keeps it as an artifact).

Usage: browser_suite.py BIN_DIR SCREENSHOT_DIR
Prints 'N passed, M failed'; exits 1 on any failure.
"""
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from common import execute, free_port, test_database

BIN = os.path.abspath(sys.argv[1])
SHOTS = os.path.abspath(sys.argv[2])
os.makedirs(SHOTS, exist_ok=True)
results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f"  {detail}"), flush=True)
    return ok


class Receiver:
    def __init__(self):
        self.status = 200
        self.count = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.count += 1
                self.send_response(outer.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def browser(js):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
              "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--window-size=1100,1400", f"--user-data-dir={tempfile.mkdtemp()}"):
        opts.add_argument(a)
    if not js:
        opts.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def run_flows(js):
    tag = "[js on]" if js else "[js off]"
    work = tempfile.mkdtemp(prefix="qsm-browser-")
    env = {"PATH": os.environ["PATH"], "WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.1/32", "WEBHOOKS_MAX_ATTEMPTS": "1"}
    database = test_database()
    if database:
        env["WEBHOOKS_DATABASE"] = database
    database = database or os.path.join(work, "var/webhooks.db")
    cli = lambda *a: subprocess.run([f"{BIN}/webhooks", *a], cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    port = free_port()
    serve = subprocess.Popen([f"{BIN}/webhooks", "serve", "--addr", f"127.0.0.1:{port}", "--user", "alice", "--dispatch-every", "3600s"],
                             cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in serve.stdout:
        if "development) at" in line:
            break
    threading.Thread(target=lambda: [None for _ in serve.stdout], daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    good, bad = Receiver(), Receiver()
    bad.status = 500
    d = browser(js)
    n = [0]

    def shot(name):
        n[0] += 1
        d.save_screenshot(os.path.join(SHOTS, f"{'js' if js else 'nojs'}-{n[0]:02d}-{name}.png"))

    def page_has(text):
        return text in d.page_source

    try:
        d.get("data:text/html,<noscript>scripts are off</noscript><script>document.write('scripts are on')</script>")
        body = d.find_element(By.TAG_NAME, "body").text
        check(f"{tag} the browser really runs with JavaScript {'enabled' if js else 'disabled'}",
              body == ("scripts are on" if js else "scripts are off"), body)
        d.get(base + "/")
        shot("dashboard")
        check(f"{tag} dashboard", page_has("<h1>Dashboard</h1>") and page_has("<svg class=\"chart\""))

        # Create.
        d.find_element(By.LINK_TEXT, "Endpoints").click()
        shot("endpoints-empty")
        d.find_element(By.LINK_TEXT, "New endpoint").click()
        shot("endpoint-new")
        d.find_element(By.ID, "url").send_keys("ftp://nope")
        d.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        shot("endpoint-new-invalid")
        check(f"{tag} a bad URL is explained beside the field", page_has('id="url-error"') and page_has("must start with https://"))
        url = d.find_element(By.ID, "url")
        url.clear()
        url.send_keys(f"http://127.0.0.1:{good.port}/hook")
        d.find_element(By.ID, "description").send_keys("CRM sync")
        d.find_element(By.CSS_SELECTOR, "input[value='*']").click()  # untick "all"
        d.find_element(By.CSS_SELECTOR, "input[value='email.received']").click()
        d.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        shot("endpoint-created")
        secret = d.find_element(By.CSS_SELECTOR, ".secret pre.copy").text
        check(f"{tag} endpoint created, secret shown once", secret.startswith("whsec_"), secret)
        check(f"{tag} after creating, the address is the endpoint's own (post/redirect/get)",
              re.search(r"/endpoints/ep_[0-9A-Z]+\?notice=created$", d.current_url) is not None, d.current_url)
        d.refresh()
        check(f"{tag} a reload does not show the secret again", secret not in d.page_source and page_has("Reveal secret"))

        # Edit.
        desc = d.find_element(By.ID, "description")
        desc.clear()
        desc.send_keys("CRM sync (edited)")
        d.find_element(By.XPATH, "//button[text()='Save']").click()
        shot("endpoint-saved")
        check(f"{tag} edit saved", page_has("Saved.") and page_has('value="CRM sync (edited)"'))

        # Test button.
        d.find_element(By.XPATH, "//button[text()='Send a test event']").click()
        shot("endpoint-tested")
        check(f"{tag} test button shows the result inline", page_has("Test delivery succeeded") and good.count == 1)

        # Rotate.
        Select(d.find_element(By.ID, "grace")).select_by_value("3600")
        d.find_element(By.XPATH, "//button[text()='Rotate secret']").click()
        shot("endpoint-rotated")
        new_secret = d.find_element(By.CSS_SELECTOR, ".secret pre.copy").text
        check(f"{tag} rotation shows the new secret and when the old stops",
              new_secret.startswith("whsec_") and new_secret != secret and page_has("keeps signing until"))

        # A failing endpoint whose delivery dies, then is retried from the page.
        cli("endpoint", "add", "--user", "alice", "--url", f"http://127.0.0.1:{bad.port}/x", "--description", "flaky")
        for i in range(3):
            cli("emit", "--user", "alice", "--type", "email.received", "--data", json.dumps({"alias": "a@x", "message_id": f"<{i}>", "size_bytes": 1}))
        cli("dispatch")
        d.get(base + "/deliveries")
        shot("deliveries")
        Select(d.find_element(By.ID, "f-status")).select_by_value("dead")
        d.find_element(By.XPATH, "//button[text()='Filter']").click()
        shot("deliveries-dead")
        rows = d.find_elements(By.CSS_SELECTOR, "table.list tbody tr")
        check(f"{tag} filter by status", len(rows) == 3 and "status=dead" in d.current_url, f"{len(rows)} {d.current_url}")
        rows[0].find_element(By.TAG_NAME, "a").click()
        shot("delivery-dead")
        d.find_element(By.XPATH, "//button[text()='Retry now']").click()
        shot("delivery-retried")
        check(f"{tag} retry a dead delivery", page_has("will be sent again"))
        bad.status = 200
        cli("dispatch")
        d.refresh()
        shot("delivery-succeeded")
        check(f"{tag} the retried delivery succeeded, and the notice says so",
              page_has('class="status succeeded"') and page_has("It was sent again and delivered") and not page_has("will be sent again"))

        # A typo in the host: saved, with a warning.
        d.get(base + "/endpoints/new")
        d.find_element(By.ID, "url").send_keys("https://exmaple.invalid/hook")
        d.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        shot("endpoint-created-unresolvable")
        check(f"{tag} a host that does not resolve is saved with a warning", page_has("exmaple.invalid does not resolve"))
        d.get(base + "/no-such-page")
        shot("not-found")
        check(f"{tag} the 404 page keeps the navigation", page_has('<nav aria-label="Main">') and page_has("Go to the dashboard"))

        # Endpoint health: one endpoint failing (its delivery went dead), one disabled by a 410
        # with deliveries held; the banner, the list's marks, and re-enabling from its page.
        endpoint_id = lambda part: [l.split()[0] for l in cli("endpoint", "list").splitlines() if part in l][0]
        cli("endpoint", "delete", endpoint_id("exmaple.invalid"))  # its host never resolves: it would fail too
        gone, failing = Receiver(), Receiver()
        gone.status, failing.status = 410, 500
        cli("endpoint", "add", "--user", "alice", "--url", f"http://127.0.0.1:{gone.port}/gone", "--description", "retired")
        cli("endpoint", "add", "--user", "alice", "--url", f"http://127.0.0.1:{failing.port}/down", "--description", "down")
        event = lambda i: cli("emit", "--user", "alice", "--type", "email.received", "--data",
                              json.dumps({"alias": "a@x", "message_id": f"<h{i}>", "size_bytes": 1}))
        event(1)
        cli("dispatch")
        event(2)
        event(3)
        d.get(base + "/endpoints")
        shot("endpoints-failing-disabled")
        check(f"{tag} the banner names a failing and a disabled endpoint",
              page_has('class="banner"') and page_has("1 endpoint disabled</strong> after failing, 2 deliveries held")
              and page_has("1 endpoint failing</strong>"), d.page_source[:3000])
        check(f"{tag} the list marks them", page_has('class="state failing"') and page_has('class="state disabled"')
              and page_has("2 held"))
        d.find_element(By.PARTIAL_LINK_TEXT, f"127.0.0.1:{failing.port}").click()
        shot("endpoint-failing")
        check(f"{tag} a failing endpoint says since when and until when", page_has("Failing since")
              and page_has("unless a delivery succeeds"))
        d.get(base + "/endpoints")
        d.find_element(By.PARTIAL_LINK_TEXT, f"127.0.0.1:{gone.port}").click()
        shot("endpoint-disabled")
        check(f"{tag} a disabled endpoint offers both choices",
              page_has("the receiver answered 410 Gone") and page_has("<strong>2 held</strong>")
              and page_has("Re-enable and send 2 held deliveries") and page_has("Re-enable and discard"))
        gone.status = 200
        d.find_element(By.XPATH, "//button[starts-with(text(), 'Re-enable and send')]").click()
        shot("endpoint-re-enabled")
        check(f"{tag} re-enabled, with what will be sent",
              page_has("3 held or dead deliveries will be sent again, in order") and page_has('class="state ok"'), d.current_url)
        cli("dispatch")
        check(f"{tag} the held deliveries and the dead one went out", gone.count == 4, str(gone.count))
        d.get(base + "/")
        shot("dashboard-failing")
        check(f"{tag} the dashboard keeps the banner while one is failing",
              page_has("1 endpoint failing</strong>") and not page_has("endpoint disabled"))
        cli("endpoint", "delete", endpoint_id(f":{failing.port}/"))

        # The rest of the pages, for the record.
        for path, name in (("/endpoints", "endpoints"), ("/tokens", "tokens"), ("/docs/verify", "docs-verify"), ("/", "dashboard-after")):
            d.get(base + path)
            shot(name)
        d.get(base + "/endpoints")
        ep = re.search(r'/endpoints/(ep_[0-9A-Z]+)"', d.page_source).group(1)
        d.get(f"{base}/endpoints/{ep}/delete")
        shot("endpoint-delete-confirm")
        d.find_element(By.XPATH, "//button[text()='Delete endpoint']").click()
        shot("endpoint-deleted")
        check(f"{tag} delete with confirmation", page_has("The endpoint was deleted."))

        # Cron stopped: the user is told deliveries are delayed; an admin gets the crontab line.
        execute(database, "UPDATE runs SET started_at = started_at - 600000")
        d.get(base + "/")
        shot("dashboard-delayed-user")
        check(f"{tag} a user sees 'deliveries are delayed', not a crontab line",
              page_has("Deliveries are delayed") and "crontab" not in d.page_source)
        admin_port = free_port()
        admin = subprocess.Popen([f"{BIN}/webhooks", "serve", "--addr", f"127.0.0.1:{admin_port}", "--user", "root", "--dispatch-every", "3600s"],
                                 cwd=work, env={**env, "WEBHOOKS_ADMINS": "root", "WEBHOOKS_TIME_BUDGET": "0s"},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            for line in admin.stdout:
                if "development) at" in line:
                    break
            threading.Thread(target=lambda: [None for _ in admin.stdout], daemon=True).start()
            for _ in range(3):  # after this server's own first dispatcher run, whenever it ends
                time.sleep(0.5)
                stale = int(time.time() * 1000) - 600000
                execute(database, f"UPDATE runs SET started_at = CASE WHEN started_at < {stale} THEN started_at ELSE {stale} END")
                d.get(f"http://127.0.0.1:{admin_port}/")
                if page_has("Deliveries are not being sent"):
                    break
            shot("dashboard-stale-admin")
            check(f"{tag} an admin sees this installation's crontab line",
                  page_has(f"* * * * * cd {work} &amp;&amp; bin/webhooks dispatch"), d.page_source[:2000])

            # Inbound sources (admins): create one, see a reject with its reason, paste the
            # provider's secret, re-check the stored request.
            d.find_element(By.LINK_TEXT, "Sources").click()
            d.find_element(By.LINK_TEXT, "New source").click()
            d.find_element(By.ID, "name").send_keys("github")
            Select(d.find_element(By.ID, "provider")).select_by_value("github")
            d.find_element(By.ID, "forward_url").send_keys(f"http://127.0.0.1:{good.port}/relay")
            d.find_element(By.XPATH, "//button[text()='Create source']").click()
            shot("source-created")
            address = d.find_element(By.CSS_SELECTOR, "pre.copy.url").text
            check(f"{tag} a source is created, its secret shown once with its address",
                  page_has("Give it to the provider now") and "/in/in_" in address, address)
            body = b'{"zen":"Half measures are as bad as nothing at all."}'
            sig = "sha256=" + hmac.new(b"the-provider-secret", body, hashlib.sha256).hexdigest()
            req = urllib.request.Request(address, data=body, method="POST", headers={
                "Content-Type": "application/json", "X-Hub-Signature-256": sig, "X-GitHub-Delivery": "browser-1"})
            try:
                status = urllib.request.urlopen(req, timeout=10).status
            except urllib.error.HTTPError as e:
                status = e.code
            check(f"{tag} a request signed with another secret is refused (401)", status == 401, str(status))
            d.find_element(By.LINK_TEXT, "Sources").click()
            d.find_element(By.LINK_TEXT, "github").click()
            shot("source-with-reject")
            check(f"{tag} the source's page counts the reject and says why",
                  page_has("<strong>1</strong> rejected") and page_has("<code>signature_mismatch</code>"))
            d.find_element(By.CSS_SELECTOR, "a[href*='/inbound/inb_']").click()
            shot("inbound-request")
            check(f"{tag} the request's page shows its headers, body and reason",
                  page_has("x-github-delivery: browser-1") and page_has("Half measures") and page_has("no active secret produces the signature"))
            request_page = d.current_url
            d.back()
            d.find_element(By.ID, "new-secret").send_keys("the-provider-secret")
            d.find_element(By.XPATH, "//button[text()='Rotate secret']").click()
            shot("source-rotated")
            check(f"{tag} the provider's secret pasted, the old one still verifying", page_has("New secret") and page_has("keeps verifying until"))
            d.get(request_page)
            d.find_element(By.XPATH, "//button[text()='Re-check with the current secrets']").click()
            shot("inbound-rechecked")
            check(f"{tag} re-checked: accepted and relayed", page_has("It verifies now: accepted, and relayed to 1 destination"))
        finally:
            admin.terminate()
            admin.wait(timeout=10)
    except Exception as e:  # noqa: BLE001
        shot("failure")
        check(f"{tag} flows ran to the end", False, repr(e))
    finally:
        d.quit()
        serve.terminate()
        serve.wait(timeout=10)


def main():
    run_flows(js=True)
    run_flows(js=False)
    print(f"screenshots in {SHOTS}: {len(os.listdir(SHOTS))}")
    print(f"{results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
