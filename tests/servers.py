"""Starting real servers in tests: a free port, and waiting until ``quipu serve`` answers."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port nothing listens on right now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_serving(client: httpx.Client, server: subprocess.Popen[bytes], log: Path | None = None) -> None:
    """Return once the server answers ``/openapi.json`` (up to a minute on a loaded CI machine); fail with what it
    printed if it exits or never answers."""
    for _ in range(600):
        if server.poll() is not None:
            break
        try:
            if client.get("/openapi.json").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    if log is not None:
        said = log.read_text(errors="replace")
    elif server.poll() is not None and server.stderr is not None:
        said = server.stderr.read().decode(errors="replace")
    else:
        said = "(still running; its output is a pipe this test reads later)"
    raise AssertionError(f"quipu serve did not start (exit status {server.poll()}): {said[-2000:]}")
