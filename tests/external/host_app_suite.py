#!/usr/bin/env python3
"""The host application's side, end to end: the release installed as docs/operator.md says and
served by Apache (mod_cgid + event); a PHP host application (Debian's php-cli and php -S) that
uses the release's own PHP client (clients/php) to record events, mint portal links and frame
the pages; its receiver verifying deliveries with Webhook::verify; the client's PHPUnit tests
against the same Apache; and headless Chromium framing the portal from the host's origin (an
allowed origin shows the pages with the host's theme and its forms post; another is refused).

Usage: host_app_suite.py RELEASE_DIR [SCREENSHOT_DIR]
Prints 'N passed, M failed' and the figures of issue 27 (events/s from PHP and from curl through
Apache; a portal page's time, framed and not); exits 1 on any failure. Needs root.
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

import apache_suite as A
from common import free_port, store_label
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

REPO = A.REPO
SHOTS = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
check = A.check
USER = "shop-7"
ACCENT = "rgb(123, 31, 162)"


def php_server(port, script, env):
    """`php -S` on loopback serving one script (a router), in its own session."""
    proc = subprocess.Popen(["php", "-S", f"127.0.0.1:{port}", script], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(100):
        try:
            A.socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"php -S {script} did not start")


def chromium():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--window-size=1100,1300", f"--user-data-dir={tempfile.mkdtemp()}"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def median_ms(fn, n=15):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main():
    A.ensure_user()
    tag = f"[{store_label()}]"
    home = tempfile.mkdtemp(prefix="qsm-host-")
    os.chmod(home, 0o755)
    token, cron_cmd = A.install(home)
    install_root = f"{home}/webhooks"
    client_dir = os.path.join(A.RELEASE, "clients/php")
    check(f"{tag} the release carries the PHP client", os.path.isfile(f"{client_dir}/src/Client.php")
          and os.path.isfile(f"{client_dir}/examples/receiver.php"), client_dir)
    host_port, other_port, rx_port = free_port(), free_port(), free_port()
    with open(f"{install_root}/theme.css", "w") as f:
        f.write(f":root {{ --qsm-accent: {ACCENT}; --qsm-radius: 10px; }}\n")
    A.move_to_test_database(home, install_root, tag)
    work = tempfile.mkdtemp(prefix="qsm-host-work-")
    os.chmod(work, 0o777)
    procs = []
    apache = A.Apache(home, "cgid", "event")
    try:
        # The portal on "localhost", the host application on "127.0.0.1": two sites.
        base_url = f"http://localhost:{apache.port}/cgi-bin/webhooks.cgi"
        with open(f"{install_root}/.env", "a") as f:
            f.write("WEBHOOKS_ALLOWED_NETWORKS=127.0.0.1/32\n")
            f.write(f"WEBHOOKS_PUBLIC_URL={base_url}\n")
            f.write(f"WEBHOOKS_EMBED_ORIGINS=http://127.0.0.1:{host_port}\n")
            f.write("WEBHOOKS_THEME_CSS=theme.css\n")
        env = {"CLIENT_DIR": client_dir, "QSM_URL": base_url, "QSM_TOKEN": token, "QSM_USER": USER}
        secret_file, rx_log = f"{work}/secret", f"{work}/received.jsonl"
        procs.append(php_server(rx_port, os.path.join(client_dir, "examples/receiver.php"),
                                {"QSM_WEBHOOK_SECRET_FILE": secret_file, "QSM_WEBHOOK_LOG": rx_log}))
        host_page = os.path.join(REPO, "tests/external/php/host_page.php")
        procs.append(php_server(host_port, host_page, env))
        procs.append(php_server(other_port, host_page, env))

        # 1. The host application's script, run by PHP as the application would.
        out = subprocess.run(["php", os.path.join(REPO, "tests/external/php/host_app.php")], capture_output=True, text=True,
                             env={**os.environ, **env, "RECEIVER_URL": f"http://127.0.0.1:{rx_port}/hooks/qsm", "SECRET_FILE": secret_file})
        if not check(f"{tag} PHP: the host application's script runs", out.returncode == 0, out.stderr[-2000:] + out.stdout[-500:]):
            raise SystemExit(1)
        app = json.loads(out.stdout)
        check(f"{tag} PHP: 3 events recorded, 3 deliveries queued", len(app["events"]) == 3 and app["deliveries"] == 3, str(app))
        check(f"{tag} PHP: the same idempotency key again is the same event", app["duplicate"] is True, str(app))
        check(f"{tag} PHP: an invalid event is an ApiException 422 naming the field",
              app["invalid"][:2] == [422, "invalid"] and "$.data.message_id" in app["invalid"][2], str(app["invalid"]))
        check(f"{tag} PHP: a portal link for the user", app["portal"]["url"].startswith(f"{base_url}/login?user={USER}&"), str(app["portal"]))

        # 2. The dispatcher, as cron runs it; the PHP receiver verifies each delivery.
        received = []
        for _ in range(5):
            subprocess.run(["su", "-s", "/bin/sh", A.USER, "-c", cron_cmd], check=True, env={"PATH": "/usr/bin:/bin", "HOME": home})
            received = [json.loads(l) for l in open(rx_log)] if os.path.exists(rx_log) else []
            if len(received) >= 3:
                break
            time.sleep(1)
        check(f"{tag} PHP: the receiver verified every delivery with Webhook::verify (X-QSM headers)",
              sorted(r["id"] for r in received) == sorted(app["events"]) and all(r["family"] == "qsm" and r["user"] == USER for r in received),
              str(received))
        check(f"{tag} PHP: the events' types came through",
              sorted(r["type"] for r in received) == ["email.forwarded", "email.received", "usage.threshold"], str(received))

        # 3. The portal link opens the pages once.
        path = app["portal"]["url"][len(f"http://localhost:{apache.port}"):]
        status, headers, _ = apache.request("GET", path)
        cookie = headers.get("Set-Cookie", "").split(";")[0]
        check(f"{tag} portal link: 303 to its page with a session", status == 303 and headers.get("Location", "").endswith("/endpoints")
              and cookie.startswith("qsm_session="), f"{status} {headers}")
        status, _, html = apache.request("GET", "/cgi-bin/webhooks.cgi/endpoints", headers={"Cookie": cookie})
        check(f"{tag} portal link: the user's endpoint on the page", status == 200 and "shop receiver" in html and f"<span>{USER}</span>" in html, f"{status}")
        status, _, _ = apache.request("GET", path)
        check(f"{tag} portal link: used once", status == 403, str(status))

        # A link the application signs itself, with docs/pages.md's PHP function as written.
        snippet = re.search(r"```php\n<\?php\n(function qsm_webhooks_login_link.*?\n})\n", open(os.path.join(REPO, "docs/pages.md")).read(), re.S)
        secret_key = re.search(r"^WEBHOOKS_SECRET_KEY=(\S+)$", open(f"{install_root}/.env").read(), re.M).group(1)
        out = subprocess.run(["php", "-r", snippet.group(1) + f"\necho qsm_webhooks_login_link('/cgi-bin/webhooks.cgi', '{secret_key}', '{USER}');"],
                             capture_output=True, text=True)
        status, headers, _ = apache.request("GET", out.stdout.strip())
        check(f"{tag} docs/pages.md's PHP function signs a link that signs in", status == 303 and "qsm_session=" in headers.get("Set-Cookie", ""),
              f"{out.stdout} {out.stderr} {status}")

        # 4. The client's own tests against this Apache.
        out = subprocess.run(["phpunit", "-c", os.path.join(REPO, "clients/php/phpunit.xml.dist")], capture_output=True, text=True,
                             cwd=os.path.join(REPO, "clients/php"),
                             env={**os.environ, "QSM_WEBHOOKS_TEST_URL": f"http://127.0.0.1:{apache.port}/cgi-bin/webhooks.cgi",
                                  "QSM_WEBHOOKS_TEST_TOKEN": token, "CI": "true"})
        summary = (re.findall(r"^(OK \(.*\)|Tests: .*)$", out.stdout, re.M) or ["?"])[-1]
        check(f"{tag} PHPUnit against Apache: {summary}", out.returncode == 0 and "Skipped" not in out.stdout, out.stdout[-3000:])

        # 5. Headless Chromium: the host's page frames the portal.
        driver = chromium()
        try:
            driver.get(f"http://127.0.0.1:{host_port}/?page=/endpoints")
            driver.switch_to.frame("webhooks")
            WebDriverWait(driver, 10).until(lambda d: "shop receiver" in d.page_source)
            framed = driver.execute_script("return [document.body.className, !!document.querySelector('header.top'), location.href]")
            check(f"{tag} Chromium: an allowed origin frames the pages, signed in, without their header",
                  framed[0] == "embed" and framed[1] is False and framed[2].startswith(f"{base_url}/endpoints"), str(framed))
            style = driver.execute_script(
                "const b = document.querySelector('a.button, button'); const s = getComputedStyle(b);"
                "return [s.backgroundColor, s.borderTopLeftRadius];")
            check(f"{tag} Chromium: the host's theme is applied (computed style)", style == [ACCENT, "10px"], str(style))
            if SHOTS:
                os.makedirs(SHOTS, exist_ok=True)
                driver.switch_to.default_content()
                driver.save_screenshot(os.path.join(SHOTS, f"embedded-{tag.strip('[]').lower()}.png"))
            # A form inside the frame: a token created (CSRF token and cookies intact).
            driver.get(f"http://127.0.0.1:{host_port}/?page=/tokens")
            driver.switch_to.frame("webhooks")
            WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.NAME, "label"))
            driver.find_element(By.NAME, "label").send_keys("made in the frame")
            driver.find_element(By.CSS_SELECTOR, "form[action$='/tokens'] button[type=submit]").click()
            WebDriverWait(driver, 10).until(lambda d: "made in the frame" in d.page_source)
            shown = re.search(r"qsm_[A-Za-z0-9_-]{43}", driver.page_source)
            check(f"{tag} Chromium: a form posts inside the frame (CSRF intact), its answer stays framed",
                  shown is not None and driver.execute_script("return document.body.className") == "embed", driver.page_source[:500])
            # An origin not listed: the browser refuses the frame.
            driver.switch_to.default_content()
            driver.get(f"http://127.0.0.1:{other_port}/?page=/endpoints")
            driver.switch_to.frame("webhooks")
            # The frame ends on the browser's error page (or, were it allowed, on ours).
            WebDriverWait(driver, 10).until(lambda d: d.execute_script("return location.href").startswith(("chrome-error:", base_url)))
            refused = driver.execute_script("return location.href")
            check(f"{tag} Chromium: an origin not in WEBHOOKS_EMBED_ORIGINS is refused by the browser",
                  refused.startswith("chrome-error:") and "shop receiver" not in driver.page_source, refused)
        finally:
            driver.quit()

        # 6. Figures: 1,000 events in batches of 100 from PHP and from curl through Apache; a
        # portal page's time through Apache, framed and not.
        out = subprocess.run(["php", os.path.join(REPO, "tests/external/php/send_batch.php"), "1000", "100"], capture_output=True, text=True,
                             env={**os.environ, **env, "QSM_URL": f"http://127.0.0.1:{apache.port}/cgi-bin/webhooks.cgi", "QSM_USER": "bench-php"})
        php = json.loads(out.stdout) if out.returncode == 0 else {}
        check(f"{tag} PHP: 1,000 events in 10 requests", php.get("events") == 1000 and php.get("requests") == 10, out.stdout + out.stderr[-500:])
        files = []
        for b in range(10):
            batch = [{"type": "email.received", "user": "bench-curl", "data": {"alias": f"a{i}@shop.example", "message_id": f"<c{b}-{i}@m>", "size_bytes": i}} for i in range(100)]
            files.append(f"{work}/batch{b}.json")
            open(files[-1], "w").write(json.dumps(batch))
        t = time.perf_counter()
        codes = []
        for path_ in files:
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Authorization: Bearer {token}",
                                "-H", "Content-Type: application/json", "--data-binary", f"@{path_}",
                                f"http://127.0.0.1:{apache.port}/cgi-bin/webhooks.cgi/api/v1/events"], capture_output=True, text=True)
            codes.append(r.stdout)
        curl_s = time.perf_counter() - t
        check(f"{tag} curl: 1,000 events in 10 requests", codes == ["202"] * 10, str(codes))
        print(f"figure {tag}: 1,000 events in batches of 100 through Apache: PHP client {php.get('per_second', 0):.0f}/s "
              f"({php.get('seconds', 0):.2f} s), curl {1000 / curl_s:.0f}/s ({curl_s:.2f} s)", flush=True)
        page = lambda q: apache.request("GET", f"/cgi-bin/webhooks.cgi/endpoints{q}", headers={"Cookie": cookie})
        status, _, html = page("?embed=1")
        check(f"{tag} the framed page through Apache drops the header", status == 200 and 'class="embed"' in html and "header class=\"top\"" not in html, str(status))
        whole, framed_ms = median_ms(lambda: page("")), median_ms(lambda: page("?embed=1"))
        print(f"figure {tag}: a portal page (/endpoints) through Apache, median of 15: whole {whole:.1f} ms, framed {framed_ms:.1f} ms", flush=True)
    finally:
        for p in procs:
            p.terminate()
        apache.stop()
        if A.results["failed"]:
            print(open(f"{home}/apache/error.log").read()[-3000:])
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{A.results['passed']} passed, {A.results['failed']} failed")
    sys.exit(1 if A.results["failed"] else 0)


if __name__ == "__main__":
    main()
