"""The real path: a browser-like `websockets` client with a Django session cookie -> Daphne -> Channels
-> MarketConsumer, fed by QuotePublisher through Redis."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.brokers.conftest import test_database_url
from tests.integration.harness import free_port

from .conftest import make_tick

ROOT = Path(__file__).resolve().parents[3]


def _wait_listening(proc: subprocess.Popen, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"daphne exited: {proc.stderr.read()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("daphne did not start listening")


@pytest.fixture
def daphne_server(transactional_db, realtime_redis):
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": test_database_url(),
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_listening(proc, port)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_browser_client_through_daphne_receives_its_ticks(daphne_server, publisher_factory):
    from django.contrib.auth import get_user_model
    from django.test import Client

    from apps.marketdata.models import Stock

    Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    user = get_user_model().objects.create_user(username="browser", password="pw-browser-123")
    client = Client()
    client.force_login(user)
    session_id = client.cookies["sessionid"].value
    port = daphne_server

    async def scenario() -> tuple[list[dict], dict]:
        import websockets

        url = f"ws://127.0.0.1:{port}/ws/market/"
        origin = f"http://127.0.0.1:{port}"
        with pytest.raises(websockets.InvalidStatus):  # no session: refused at the handshake (4401 before accept)
            async with websockets.connect(url, origin=origin):
                pass
        headers = {"Cookie": f"sessionid={session_id}"}
        async with websockets.connect(url, origin=origin, additional_headers=headers) as ws:
            status = json.loads(await asyncio.wait_for(ws.recv(), 5))
            await ws.send(json.dumps({"type": "subscribe", "codes": ["005930"]}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "subscribed", "codes": ["005930"]}
            await asyncio.sleep(0.3)  # the server's SUBSCRIBE reaches Redis
            publisher, close = await publisher_factory()
            try:
                await publisher.publish_tick(make_tick("000660", 0, price=201_000), now=0.0)
                sent = [await publisher.publish_tick(make_tick("005930", seq), now=0.0) for seq in range(20)]
            finally:
                await close()
            received = [json.loads(await asyncio.wait_for(ws.recv(), 5))]
            while received[-1]["quotes"]["005930"] != sent[-1]:
                received.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.3)
            return received, {"status": status, "sent": sent}

    received, context = asyncio.run(scenario())

    assert context["status"] == {"type": "status", "status": "unknown"}
    # Batch frames numbered from 1, only the subscribed stock, each snapshot one that was published, in order,
    # the last one the last tick (the ones in between may be conflated away).
    sent = context["sent"]
    assert [frame["seq"] for frame in received] == list(range(1, len(received) + 1))
    assert all(frame["type"] == "batch" and list(frame["quotes"]) == ["005930"] for frame in received)
    positions = [sent.index(frame["quotes"]["005930"]) for frame in received]
    assert positions == sorted(positions) and positions[-1] == len(sent) - 1


@pytest.fixture
def publisher_factory(realtime_redis):
    """A QuotePublisher made inside the test's own event loop (Redis pools are loop-bound)."""

    async def make():
        import redis.asyncio as aioredis
        from channels.layers import get_channel_layer
        from django.conf import settings

        from apps.live.realtime.publisher import QuotePublisher

        client = aioredis.Redis.from_url(settings.REDIS_URL)
        layer = get_channel_layer()

        async def close() -> None:
            await client.aclose()

        return QuotePublisher(redis=client, channel_layer=layer), close

    return make
