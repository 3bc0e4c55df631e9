"""Helpers shared by the external suites (run as `python3 tests/external/<suite>.py`, so this
folder is on the import path)."""

import os
import socket
import subprocess
import time
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
