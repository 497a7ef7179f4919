"""Real processes for integration tests: the sandbox broker, Daphne and Celery workers, each in its own
process group with its log in the test's temporary directory, all stopped at the end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """DATABASE_URL of pytest-django's test database, for child processes."""
    from django.db import connection

    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


test_database_url.__test__ = False  # type: ignore[attr-defined]


class ProcessStack:
    """Processes started for one test. ``env`` extras override the common sandbox-mode environment."""

    def __init__(self, tmp_path: Path, *, admin_token: str, **env: str):
        self.tmp = tmp_path
        self.admin_token = admin_token
        self.ports = {
            name: free_port()
            for name in ("web", "real_rest", "paper_rest", "real_ws", "paper_ws", "kiwoom_rest", "kiwoom_ws")
        }
        self.env = dict(os.environ)
        self.env.update(
            DJANGO_SETTINGS_MODULE="config.settings.test",
            CELERY_TASK_ALWAYS_EAGER="false",
            DATABASE_URL=test_database_url(),
            MARKET_BROKER="sandbox",
            KIS_ENV="paper",
            SANDBOX_REAL_REST_PORT=str(self.ports["real_rest"]),
            SANDBOX_PAPER_REST_PORT=str(self.ports["paper_rest"]),
            SANDBOX_REAL_WS_PORT=str(self.ports["real_ws"]),
            SANDBOX_PAPER_WS_PORT=str(self.ports["paper_ws"]),
            SANDBOX_KIWOOM_REST_PORT=str(self.ports["kiwoom_rest"]),
            SANDBOX_KIWOOM_WS_PORT=str(self.ports["kiwoom_ws"]),
            SANDBOX_ADMIN_TOKEN=admin_token,
            LOG_LEVEL="INFO",
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        self.env.update(env)
        self.procs: dict[str, subprocess.Popen] = {}

    # --- processes -------------------------------------------------------------------------------------

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**self.env, "HOGA_PROCESS_ROLE": name},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start_sandbox(self) -> None:
        self.start("sandbox", [sys.executable, "manage.py", "runsandbox"])
        self.wait_port(self.ports["paper_rest"], "sandbox")
        self.wait_port(self.ports["paper_ws"], "sandbox")

    def start_web(self) -> None:
        web = str(self.ports["web"])
        self.start("web", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", web, "config.asgi:application"])
        self.wait_port(self.ports["web"], "web")

    def start_worker(self, name: str, queue: str) -> None:
        """A Celery worker on ``queue`` with the solo pool (its bootsteps hold the feed or the fill engine)."""
        self.start(
            name,
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--queues", queue, "--hostname", f"{name}@%h",
             "--concurrency", "1", "--pool", "solo", "--loglevel", "INFO"],
        )  # fmt: skip

    def wait_port(self, port: int, name: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            if self.procs[name].poll() is not None:
                pytest.fail(f"{name} exited: {self.log(name)[-3000:]}")
            time.sleep(0.1)
        pytest.fail(f"{name} not listening on {port}: {self.log(name)[-3000:]}")

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, tail: int = 2500) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)[-tail:]}" for name in self.procs)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    # --- the sandbox's admin endpoints -----------------------------------------------------------------

    def _admin_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports['paper_rest']}{path}"

    def fault(self, body: dict) -> None:
        response = httpx.post(
            self._admin_url("/sandbox/faults"), json=body, headers={"X-Sandbox-Admin": self.admin_token}
        )
        assert response.status_code == 200, response.text

    def clear_faults(self) -> None:
        httpx.delete(self._admin_url("/sandbox/faults"), headers={"X-Sandbox-Admin": self.admin_token})

    def sandbox_clock(self) -> dict:
        response = httpx.get(self._admin_url("/sandbox/clock"), timeout=5)
        response.raise_for_status()
        return response.json()


def session_cookie(username: str) -> str:
    """Create a user and return a logged-in Django session id for it."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    get_user_model().objects.create_user(username=username, password="pw-123456789")
    client = Client()
    assert client.login(username=username, password="pw-123456789")
    return client.cookies["sessionid"].value
