"""The real-time pipeline end to end, every part a real process: the sandbox broker, two Celery feed
workers, Daphne, Redis and PostgreSQL, with browsers as plain WebSocket clients holding a session.

Covers: ticks reach a browser for its stocks only; dropping every broker connection resumes the stream
with subscriptions restored; a silent stall is detected and replaced; `kill -9` of the holding feed
worker hands over to the other; a browser that never reads does not delay one that does.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import websockets

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "realtime-test-admin"
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _test_database_url() -> str:
    from django.db import connection

    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


class Stack:
    """Processes started for one test; every one is stopped (and checked stopped) at the end."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.ports = {name: _free_port() for name in ("web", "real_rest", "paper_rest", "real_ws", "paper_ws")}
        self.env = dict(os.environ)
        self.env.update(
            DJANGO_SETTINGS_MODULE="config.settings.test",
            CELERY_TASK_ALWAYS_EAGER="false",
            DATABASE_URL=_test_database_url(),
            MARKET_BROKER="sandbox",
            KIS_ENV="paper",
            SANDBOX_REAL_REST_PORT=str(self.ports["real_rest"]),
            SANDBOX_PAPER_REST_PORT=str(self.ports["paper_rest"]),
            SANDBOX_REAL_WS_PORT=str(self.ports["real_ws"]),
            SANDBOX_PAPER_WS_PORT=str(self.ports["paper_ws"]),
            SANDBOX_SPEED="20",
            SANDBOX_PAPER_RATE_LIMIT="50",
            SANDBOX_PINGPONG_INTERVAL="1",
            SANDBOX_PINGPONG_TIMEOUT="5",
            SANDBOX_ADMIN_TOKEN=ADMIN,
            FEED_STALL_TIMEOUT="3",
            FEED_SILENCE_TIMEOUT="5",
            LOG_LEVEL="INFO",
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        self.procs: dict[str, subprocess.Popen] = {}

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

    def start_all(self) -> None:
        py = sys.executable
        self.start("sandbox", [py, "manage.py", "runsandbox"])
        web = str(self.ports["web"])
        self.start("web", [py, "-m", "daphne", "-b", "127.0.0.1", "-p", web, "config.asgi:application"])
        for name in ("feed1", "feed2"):
            self.start(
                name,
                [py, "-m", "celery", "-A", "config", "worker", "--queues", "feed", "--hostname", f"{name}@%h",
                 "--concurrency", "1", "--pool", "solo", "--loglevel", "INFO"],
            )  # fmt: skip
        self.wait_port(self.ports["paper_rest"], "sandbox")
        self.wait_port(self.ports["web"], "web")

    def wait_port(self, port: int, name: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            if self.procs[name].poll() is not None:
                pytest.fail(f"{name} exited: {self.log(name)[-3000:]}")
            time.sleep(0.2)
        pytest.fail(f"{name} not listening on {port}: {self.log(name)[-3000:]}")

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def fault(self, body: dict) -> None:
        response = httpx.post(
            f"http://127.0.0.1:{self.ports['paper_rest']}/sandbox/faults", json=body, headers={"X-Sandbox-Admin": ADMIN}
        )
        assert response.status_code == 200, response.text

    def clear_faults(self) -> None:
        httpx.delete(f"http://127.0.0.1:{self.ports['paper_rest']}/sandbox/faults", headers={"X-Sandbox-Admin": ADMIN})

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


@pytest.fixture
def stack(tmp_path, clean_redis):
    running = Stack(tmp_path)
    running.start_all()
    yield running
    running.stop()


def _session_cookie(username: str) -> str:
    from django.contrib.auth import get_user_model
    from django.test import Client

    get_user_model().objects.create_user(username=username, password="pw-123456789")
    client = Client()
    assert client.login(username=username, password="pw-123456789")
    return client.cookies["sessionid"].value


class Browser:
    def __init__(self, stack: Stack, cookie: str):
        self.url = f"ws://127.0.0.1:{stack.ports['web']}/ws/market/"
        self.headers = {"Cookie": f"sessionid={cookie}", "Origin": f"http://127.0.0.1:{stack.ports['web']}"}
        self.ws = None

    async def open(self, codes: list[str]) -> None:
        self.ws = await websockets.connect(self.url, additional_headers=self.headers, max_size=2**22)
        await self.ws.send(json.dumps({"type": "subscribe", "codes": codes}))

    async def quotes(self, seconds: float) -> list[dict]:
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout=left))
            except TimeoutError:
                break
            if message.get("type") == "quote":
                got.append(message["quote"])
        return got

    async def wait_quote(self, code: str, *, after: float, timeout: float) -> dict:
        """The first quote for ``code`` whose tick reached the feed after wall time ``after``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout=left))
            except TimeoutError:
                break
            quote = message.get("quote") if message.get("type") == "quote" else None
            # Only a tick the feed received after ``after`` counts (not a snapshot still in flight).
            if quote and quote["code"] == code and datetime.fromisoformat(quote["received_at"]).timestamp() > after:
                return quote
        pytest.fail(f"no quote for {code} within {timeout}s")


def _holder(stack: Stack) -> str:
    for name in ("feed1", "feed2"):
        if "lease acquired" in stack.log(name):
            return name
    return ""


def test_realtime_pipeline_end_to_end(stack):
    cookie_a, cookie_b = _session_cookie("alice"), _session_cookie("bob")

    async def scenario():
        fast, slow = Browser(stack, cookie_a), Browser(stack, cookie_b)
        await fast.open(["005930", "000660"])
        await slow.open(["005930", "000660"])  # never reads from here on

        # Ticks for the subscribed stocks only.
        first = await fast.quotes(8)
        feed_logs = stack.log("feed1")[-2000:] + stack.log("feed2")[-2000:]
        assert first, f"no ticks reached the browser; feed logs:\n{feed_logs}"
        assert {q["code"] for q in first} == {"005930", "000660"}
        holder = _holder(stack)
        assert holder in ("feed1", "feed2")

        # Every broker connection dropped: the stream resumes with both subscriptions restored.
        dropped_at = time.time()
        stack.fault({"fault": "ws_drop"})
        for code in ("005930", "000660"):
            await fast.wait_quote(code, after=dropped_at, timeout=15)

        # A silent stall (open but no frames) is detected and the connection replaced.
        stack.fault({"fault": "ws_stall"})
        await asyncio.sleep(4)
        stack.clear_faults()
        stalled_at = time.time()
        await fast.wait_quote("005930", after=stalled_at, timeout=20)
        assert "stall" in stack.log(holder).lower()

        # kill -9 of the holding feed worker: the other one takes over within 10 s.
        os.killpg(stack.procs[holder].pid, signal.SIGKILL)
        killed_at = time.time()
        quote = await fast.wait_quote("005930", after=killed_at, timeout=25)
        other = "feed2" if holder == "feed1" else "feed1"
        assert "feed lease acquired" in stack.log(other)
        # The stand-by took the lease and was streaming again within 10 s of the kill.
        assert datetime.fromisoformat(quote["received_at"]).timestamp() - killed_at < 10

        # The slow browser (reading nothing all along) did not hold the fast one back: the fast one's
        # latest quote is fresh.
        latest = (await fast.quotes(2))[-1]
        assert time.time() - datetime.fromisoformat(latest["received_at"]).timestamp() < 2
        await fast.ws.close()
        await slow.ws.close()

    asyncio.run(scenario())
