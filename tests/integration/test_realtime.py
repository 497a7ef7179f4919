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
import time
from datetime import datetime
from pathlib import Path

import pytest
import websockets

from tests.integration.harness import ProcessStack, session_cookie

ADMIN = "realtime-test-admin"
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class Stack(ProcessStack):
    def __init__(self, tmp_path: Path):
        super().__init__(
            tmp_path,
            admin_token=ADMIN,
            SANDBOX_SPEED="20",
            SANDBOX_PAPER_RATE_LIMIT="50",
            SANDBOX_PINGPONG_INTERVAL="1",
            SANDBOX_PINGPONG_TIMEOUT="5",
            FEED_STALL_TIMEOUT="3",
            FEED_SILENCE_TIMEOUT="5",
        )

    def start_all(self) -> None:
        self.start_sandbox()
        self.start_web()
        self.start_worker("feed1", "feed")
        self.start_worker("feed2", "feed")


@pytest.fixture
def stack(tmp_path, clean_redis):
    running = Stack(tmp_path)
    running.start_all()
    yield running
    running.stop()


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
            if message.get("type") == "batch":
                got.extend(message["quotes"].values())
        return got

    async def wait_quote(self, code: str, *, after: float, timeout: float) -> dict:
        """The first quote for ``code`` whose tick reached the feed after wall time ``after``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout=left))
            except TimeoutError:
                break
            quote = message["quotes"].get(code) if message.get("type") == "batch" else None
            # Only a tick the feed received after ``after`` counts (not a snapshot still in flight).
            if quote and datetime.fromisoformat(quote["received_at"]).timestamp() > after:
                return quote
        pytest.fail(f"no quote for {code} within {timeout}s")


def _holder(stack: Stack) -> str:
    for name in ("feed1", "feed2"):
        if "lease acquired" in stack.log(name):
            return name
    return ""


def test_realtime_pipeline_end_to_end(stack):
    from apps.marketdata.models import Stock

    for rank, code in enumerate(("005930", "000660"), start=1):  # only universe stocks can be subscribed
        Stock.objects.get_or_create(code=code, defaults={"name": code, "market": "KOSPI", "rank": rank})
    cookie_a, cookie_b = session_cookie("alice"), session_cookie("bob")

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
