"""Helpers shared by the external suites (run as `python3 tests/external/<suite>.py`, so this
folder is on the import path)."""

import socket


def free_port():
    """A loopback port that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
