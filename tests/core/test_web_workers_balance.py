"""The web role's gunicorn: every worker listens on a socket of its own in the shared socket's SO_REUSEPORT group,
so a burst of connections is spread over the workers by the kernel instead of going to whichever worker is awake;
a second server on a port in use refuses to start instead of silently sharing it. Real gunicorn processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.integration.harness import free_port

ROOT = Path(__file__).resolve().parents[2]


def _start(port: int, **extra: str) -> subprocess.Popen:
    env = {**os.environ, "HOGA_PORT": str(port), "WEB_CONCURRENCY": "2", "LOG_LEVEL": "WARNING", **extra}
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "config/gunicorn.py", "config.asgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.terminate()
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=5)
    return out or ""


def _workers_up(proc: subprocess.Popen, port: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        workers = psutil.Process(proc.pid).children()
        if len(workers) == 2 and _listening(workers, port) == [2, 2]:  # the shared socket and the worker's own
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return workers
            except OSError:
                pass
        time.sleep(0.3)
    raise AssertionError("gunicorn workers did not come up")


def _listening(workers: list[psutil.Process], port: int) -> list[int]:
    return [
        sum(1 for c in w.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port)
        for w in workers
    ]


def _held(workers: list[psutil.Process], port: int) -> list[int]:
    return [
        sum(1 for c in w.net_connections("tcp") if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port)
        for w in workers
    ]


@pytest.mark.integration
def test_a_burst_of_connections_is_spread_over_the_workers_and_a_port_in_use_is_refused():
    port = free_port()
    proc = _start(port)
    try:
        workers = _workers_up(proc, port)
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(60)]
        try:
            deadline = time.monotonic() + 10
            while sum(held := _held(workers, port)) < 60 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert sum(held) == 60 and min(held) >= 10, held  # each worker's own socket alone gets ~1/3 of them
        finally:
            for c in clients:
                c.close()

        second = _start(port)
        out = _stop(second) if second.wait(timeout=30) is not None else ""
        assert second.returncode != 0 and f"127.0.0.1:{port} is in use by another server" in out, out
        assert proc.poll() is None  # the first server is untouched
    finally:
        _stop(proc)
