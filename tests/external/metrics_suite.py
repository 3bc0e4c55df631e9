#!/usr/bin/env python3
"""The metrics against Debian's own Prometheus tools: `promtool check metrics` on the CLI's and
the API's output; a real Prometheus (started here on loopback from a temp config) scraping the
API with a bearer token file and node_exporter's textfile collector (the file `webhooks metrics
--output` writes), and PromQL through Prometheus' HTTP API returning the counts this test
caused (3 succeeded, 3 dead, 1 held); the documented alert rules checked and unit-tested
(`promtool check rules`, `promtool test rules`), and the Grafana dashboard's queries run.

Usage: metrics_suite.py BIN_DIR
Prints 'N passed, M failed'; exits 1 on any failure.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from common import free_port, store_label, test_database

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(sys.argv[1])
results = {"passed": 0, "failed": 0}
MAIL = {"alias": "a@x.example", "message_id": "<1@x>", "size_bytes": 3}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f"  {detail}"), flush=True)
    return ok


def receiver(status):
    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hook"


def wait_ready(url, proc, what):
    """Until `url` answers 200 (Prometheus answers 503 while its storage starts)."""
    for _ in range(600):
        try:
            if urllib.request.urlopen(url, timeout=0.5).status == 200:
                return
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} was not ready in 30 s")


def promtool_check(text, what, tag):
    out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    check(f"{tag} promtool check metrics accepts the {what}", out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(),
          out.stdout + out.stderr)


def query(prom, expr):
    url = f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    return json.load(urllib.request.urlopen(url, timeout=5))


def value(prom, expr):
    r = query(prom, expr)
    res = r["data"]["result"]
    return float(res[0]["value"][1]) if res else None


def main():
    tag = f"[{store_label()}]"
    work = tempfile.mkdtemp(prefix="qsm-metrics-")
    procs = []
    try:
        env = {"PATH": os.environ["PATH"], "WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.1/32", "WEBHOOKS_MAX_ATTEMPTS": "1",
               "WEBHOOKS_METRICS_USERS": "alice"}
        database = test_database()
        if database:
            env["WEBHOOKS_DATABASE"] = database
        cli = lambda *a: subprocess.run([f"{BIN}/webhooks", *a], cwd=work, env=env, capture_output=True, text=True, check=True).stdout
        cli("init")
        token = json.loads(cli("token", "create", "--app", "--json"))["token"]
        # What the test causes: 3 succeeded (alice); 3 dead: bob's two 500s (one attempt
        # allowed) and carol's 410, which disables her endpoint; 1 held: carol's next event.
        cli("endpoint", "add", "--user", "alice", "--url", receiver(200))
        cli("endpoint", "add", "--user", "bob", "--url", receiver(500))
        cli("endpoint", "add", "--user", "carol", "--url", receiver(410))
        for user, n in (("alice", 3), ("bob", 2), ("carol", 1)):
            for _ in range(n):
                cli("emit", "--user", user, "--type", "email.received", "--data", json.dumps(MAIL))
        cli("dispatch")
        cli("emit", "--user", "carol", "--type", "email.received", "--data", json.dumps(MAIL))

        text = cli("metrics")
        promtool_check(text, "CLI's output", tag)

        port = free_port()
        serve = subprocess.Popen([f"{BIN}/webhooks", "serve", "--addr", f"127.0.0.1:{port}", "--dispatch-every", "3600s"],
                                 cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(serve)
        wait_ready(f"http://127.0.0.1:{port}/api/v1/event-types", serve, "webhooks serve")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/metrics", headers={"Authorization": f"Bearer {token}"})
        api_text = urllib.request.urlopen(req, timeout=10).read().decode()
        promtool_check(api_text, "API's output", tag)

        # node_exporter's textfile collector reads what `metrics --output` writes.
        textfile = os.path.join(work, "textfile")
        os.makedirs(textfile)
        cli("metrics", "--output", os.path.join(textfile, "qsm_webhooks.prom"))
        node_port = free_port()
        node = subprocess.Popen(["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{node_port}", "--collector.disable-defaults",
                                 "--collector.textfile", f"--collector.textfile.directory={textfile}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(node)
        wait_ready(f"http://127.0.0.1:{node_port}/metrics", node, "node_exporter")

        # A real Prometheus scraping both, every second.
        token_file = os.path.join(work, "token")
        with open(token_file, "w") as f:
            f.write(token)
        os.chmod(token_file, 0o600)
        prom_port = free_port()
        config = os.path.join(work, "prometheus.yml")
        with open(config, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {REPO}/docs/examples/prometheus/alerts.yml
scrape_configs:
  - job_name: qsm-webhooks
    metrics_path: /api/v1/metrics
    authorization:
      type: Bearer
      credentials_file: {token_file}
    static_configs:
      - targets: ["127.0.0.1:{port}"]
  - job_name: node
    static_configs:
      - targets: ["127.0.0.1:{node_port}"]
""")
        prom = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={work}/tsdb",
                                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(prom)
        wait_ready(f"http://127.0.0.1:{prom_port}/-/ready", prom, "prometheus")
        want = {"succeeded": 3.0, "dead": 3.0, "held": 1.0}
        got = {}
        for _ in range(60):
            got = {job: {o: value(prom_port, f'qsm_webhooks_deliveries_total{{job="{job}",outcome="{o}"}}') for o in want}
                   for job in ("qsm-webhooks", "node")}
            if all(got[j] == want for j in got):
                break
            time.sleep(0.5)
        check(f"{tag} Prometheus scraped the API (bearer token file): PromQL gives 3 succeeded, 3 dead, 1 held", got.get("qsm-webhooks") == want, str(got))
        check(f"{tag} Prometheus scraped node_exporter's textfile collector: the same counts", got.get("node") == want, str(got))
        up = value(prom_port, 'up{job="qsm-webhooks"}')
        check(f"{tag} the API target is up", up == 1.0, str(up))
        failures = value(prom_port, 'sum(qsm_webhooks_attempt_failures_total{job="qsm-webhooks"})')
        check(f"{tag} PromQL: 3 failed attempts by code", failures == 3.0, str(failures))
        alice = value(prom_port, 'qsm_webhooks_user_deliveries_total{job="qsm-webhooks",user="alice",outcome="succeeded"}')
        check(f"{tag} PromQL: alice's own series (WEBHOOKS_METRICS_USERS)", alice == 3.0, str(alice))
        disabled = value(prom_port, 'sum(qsm_webhooks_endpoints_disabled{job="qsm-webhooks",reason="gone"})')
        check(f"{tag} PromQL: one endpoint disabled by a 410", disabled == 1.0, str(disabled))
        # The documented rules, loaded by this Prometheus: the 410s make one fire.
        alerts = []
        for _ in range(40):
            alerts = json.load(urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/alerts", timeout=5))["data"]["alerts"]
            if any(a["labels"]["alertname"] == "QsmWebhooksEndpointDisabled" and a["state"] == "firing" for a in alerts):
                break
            time.sleep(0.5)
        check(f"{tag} the loaded rules fire QsmWebhooksEndpointDisabled for the 410s, and nothing else",
              sorted({a["labels"]["alertname"] for a in alerts}) == ["QsmWebhooksEndpointDisabled"], str(alerts))
        # Every query of the Grafana dashboard runs.
        dash = json.load(open(os.path.join(REPO, "docs/examples/grafana-dashboard.json")))
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        bad = [e for e in exprs if query(prom_port, e)["status"] != "success"]
        names = set(re.findall(r"qsm_webhooks_[a-z_]+", " ".join(exprs)))
        exported = set(re.findall(r"^# TYPE (\S+)", api_text, re.M))
        unknown = [n for n in names if not any(n == e or n.startswith(e + "_") for e in exported)]
        check(f"{tag} the Grafana dashboard's {len(exprs)} queries run, on metrics that exist", not bad and not unknown, f"{bad} {unknown}")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)

    rules = os.path.join(REPO, "docs/examples/prometheus")
    out = subprocess.run(["promtool", "check", "rules", "alerts.yml"], cwd=rules, capture_output=True, text=True)
    check("promtool check rules accepts the documented alert rules (5)", out.returncode == 0 and "5 rules found" in out.stdout, out.stdout + out.stderr)
    out = subprocess.run(["promtool", "test", "rules", "alerts_test.yml"], cwd=rules, capture_output=True, text=True)
    check("promtool test rules: each alert fires on its series and stays quiet on the other", out.returncode == 0 and "SUCCESS" in out.stdout,
          out.stdout + out.stderr)
    print(f"{results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
