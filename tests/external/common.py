"""Helpers shared by the external suites (run as `python3 tests/external/<suite>.py`, so this
folder is on the import path)."""

import os
import socket
import sqlite3
import subprocess
import time
import urllib.parse
import urllib.request


def free_port():
    """A loopback port that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_serve(bin_dir, env, cwd, stderr=subprocess.DEVNULL):
    """Starts `webhooks serve` on a free loopback port with the dispatcher left to the test (it
    runs hourly), and waits until it answers; returns (process, base URL)."""
    port = free_port()
    server = subprocess.Popen([os.path.join(bin_dir, "webhooks"), "serve", "--addr", f"127.0.0.1:{port}",
                               "--dispatch-every", "1h"], env=env, cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/api/v1/event-types", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    return server, base


def test_database():
    """`WEBHOOKS_DATABASE` for a suite's installation: a new PostgreSQL database when
    `WEBHOOKS_TEST_STORE=postgres` (`WEBHOOKS_TEST_POSTGRES` names a role that may create
    databases; `.ci/postgres start DIR` prints it), else None: SQLite, the default."""
    if os.environ.get("WEBHOOKS_TEST_STORE") != "postgres":
        return None
    admin = os.environ.get("WEBHOOKS_TEST_POSTGRES")
    if not admin:
        raise SystemExit("WEBHOOKS_TEST_STORE=postgres needs WEBHOOKS_TEST_POSTGRES (.ci/postgres start DIR prints it)")
    name = f"ext_{os.getpid()}_{free_port()}"
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", admin, "-c", f"CREATE DATABASE {name}"], check=True)
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(admin)._replace(path="/" + name))


def store_label():
    return "PostgreSQL" if os.environ.get("WEBHOOKS_TEST_STORE") == "postgres" else "SQLite"


def execute(database, statement):
    """Runs one SQL statement (in the dialect both stores read) against an installation's
    database: a PostgreSQL URL, or the SQLite file at `database`."""
    if database.startswith(("postgres://", "postgresql://")):
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", database, "-c", statement], check=True,
                       stdout=subprocess.DEVNULL)
        return
    db = sqlite3.connect(database)
    db.execute(statement)
    db.commit()
    db.close()
