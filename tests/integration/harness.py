"""Real processes for integration tests: the sandbox broker, Daphne and Celery workers, each in its own
process group with its log in the test's temporary directory, all stopped at the end; and browsers as
WebSocket clients holding a session."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import websockets

ROOT = Path(__file__).resolve().parents[2]


_PORT_BLOCK = 2_000  # ports per process below the kernel's ephemeral range (one block per pytest-xdist worker)
_port_cursor: list[int] = []  # this process's next candidate, once its block is known


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port() -> int:
    """A port for a child server to listen on. Port 0's answer is drawn from the kernel's ephemeral range, where
    every outgoing connection on the box (another worker's clients, the database's) also draws its local port, so
    it could be taken between this check and the child's bind (seen as a sandbox's "address already in use").
    Ports come instead from a block below that range of this pytest-xdist worker's own (benchmarks and plain
    runs use the block after the workers'), in turn from an offset of this process's, each checked free by
    binding it; port 0 when the range leaves no room below it."""
    low = _ephemeral_low()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 8
    top = low - index * _PORT_BLOCK
    bottom = top - _PORT_BLOCK
    if bottom < 10_000:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    if not _port_cursor:
        _port_cursor.append(bottom + os.getpid() % _PORT_BLOCK)
    for _ in range(_PORT_BLOCK):
        port = _port_cursor[0]
        _port_cursor[0] = bottom + (port + 1 - bottom) % _PORT_BLOCK
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {bottom}-{top - 1}")


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
            # These tests load exactly the history they assert on; the start-up fill a worker runs when `make run`
            # starts the stack is covered by tests/integration/test_stack.py.
            MARKETDATA_BOOTSTRAP="false",
            SANDBOX_TAPE_DENSITY="light",  # the tests' tape (README: the sandbox broker)
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

    def start_app(self) -> None:
        """Daphne, the feed worker and a default-queue worker (its bootstep runs the fill engine), as
        ``make run`` starts them."""
        self.start_web()
        self.start_worker("feed", "feed")
        self.start_worker("fills", "default")

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

    def set_clock(self, body: dict) -> dict:
        """Move or re-pace the replay: ``{"time": "HH:MM:SS"}``, ``{"speed": x}`` or ``{"action": "restart"}``."""
        response = httpx.post(
            self._admin_url("/sandbox/clock"), json=body, headers={"X-Sandbox-Admin": self.admin_token}, timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()


@contextlib.contextmanager
def stopped_after(stack: ProcessStack, request, *, tail: int = 2500) -> Iterator[ProcessStack]:
    """Stop ``stack``'s processes when the block ends; when a test failed meanwhile, print what they logged
    (to the terminal: fixture output is not captured)."""
    failed_before = request.session.testsfailed
    try:
        yield stack
    finally:
        stack.stop()
        if request.session.testsfailed > failed_before:
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            reporter.write_line(f"\nprocess logs ({stack.tmp}):\n{stack.logs(tail)}")


def poll(
    fetch: Callable[[], Any],
    done: Callable[[Any], bool],
    *,
    timeout: float,
    what: str,
    logs: Callable[[], str] | None = None,
    interval: float = 0.2,
) -> Any:
    """``fetch()`` until ``done`` accepts its result (returned); a test failure after ``timeout`` names
    ``what``, the last result and, with ``logs``, what the processes said."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fetch()
        if done(last):
            return last
        time.sleep(interval)
    pytest.fail(f"{what} within {timeout}s; last: {str(last)[-2000:]}" + (f"\n{logs()}" if logs else ""))


def api_client(stack: ProcessStack, username: str, *, timeout: float = 10) -> httpx.Client:
    """A new user's REST client on the stack's Daphne, logged in like a browser: a session cookie and a CSRF
    cookie + header."""
    csrf = secrets.token_hex(16)  # 32 characters: an unmasked CSRF secret, valid as cookie and header
    return httpx.Client(
        base_url=f"http://127.0.0.1:{stack.ports['web']}",
        cookies={"sessionid": session_cookie(username), "csrftoken": csrf},
        headers={"X-CSRFToken": csrf},
        timeout=timeout,
    )


# --- prices on the KRX tick grid -----------------------------------------------------------------------


def ticks_up(price: int, ticks: int, day: date, market: str = "KOSPI") -> int:
    from apps.core.krx.rules import DEFAULT_TICKS

    for _ in range(ticks):
        price += DEFAULT_TICKS.tick_size(price, day, market)
        while not DEFAULT_TICKS.on_grid(price, day, market):
            price += 1
    return price


def grid_floor(price: int, day: date, market: str = "KOSPI") -> int:
    from apps.core.krx.rules import DEFAULT_TICKS

    while not DEFAULT_TICKS.on_grid(price, day, market):
        price -= 1
    return price


def price_limits(base: int, day: date, market: str = "KOSPI") -> tuple[int, int]:
    from apps.core.krx.rules import DEFAULT_TICKS

    return DEFAULT_TICKS.price_limits(base, day, market)


def session_cookie(username: str) -> str:
    """Create a user and return a logged-in Django session id for it."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_user(username=username, password="pw-123456789")
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


class BrowserSocket:
    """A browser's WebSocket on Daphne (session cookie) read by its own event loop in a thread, so a
    synchronous test can use the ORM and wait on conditions while every message is collected.

    ``messages`` grows in arrival order; ``wait_for`` polls it with a timeout.
    """

    def __init__(self, web_port: int, path: str, cookie: str):
        self.url = f"ws://127.0.0.1:{web_port}{path}"
        self.headers = {"Cookie": f"sessionid={cookie}", "Origin": f"http://127.0.0.1:{web_port}"}
        self.messages: list[dict] = []
        self.closed_reason = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"browser {path}", daemon=True)
        self._thread.start()
        self._ws = None
        self._reader = None

    def _call(self, coro, timeout: float = 15):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def open(self, first: dict | None = None) -> BrowserSocket:
        async def go():
            self._ws = await websockets.connect(self.url, additional_headers=self.headers, max_size=2**22)
            if first is not None:
                await self._ws.send(json.dumps(first))
            self._reader = asyncio.create_task(self._read())

        self._call(go())
        return self

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                self.messages.append(json.loads(raw))
        except websockets.ConnectionClosed as exc:
            self.closed_reason = str(exc)
        else:
            self.closed_reason = "closed"

    def wait_for(self, done, *, timeout: float, what: str, logs=None) -> list[dict]:
        """Until ``done(messages)`` is true; fails with the last messages (and ``logs()``) after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            snapshot = list(self.messages)
            if done(snapshot):
                return snapshot
            if self.closed_reason:
                pytest.fail(f"{self.url} closed ({self.closed_reason}) while waiting for {what}")
            time.sleep(0.1)
        pytest.fail(f"{what} within {timeout}s on {self.url}; last: {self.messages[-3:]}\n{logs() if logs else ''}")

    def close(self) -> None:
        async def go():
            if self._ws is not None:
                await self._ws.close()
            if self._reader is not None:
                await asyncio.wait_for(self._reader, 5)

        try:
            self._call(go())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()
