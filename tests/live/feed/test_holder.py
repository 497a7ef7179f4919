"""The holder in-process against the sandbox broker over real sockets, real Redis and the real Redis
PubSub channel layer: demand-driven subscriptions, fan-out to groups and hashes, the fill stream,
recovery from a dropped connection, and status publication."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable

import pytest
from channels.layers import get_channel_layer

from apps.brokers.kis.config import KisConfig
from apps.core import groups
from apps.live.feed.holder import FeedHolder, FeedSettings
from apps.live.realtime import keys

from .conftest import open_sandbox_connections, sandbox_codes

FAST = FeedSettings(status_interval=0.5, demand_interval=0.2, stall_timeout=3.0, backoff_base=0.05, backoff_max=0.4)


async def eventually(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


@contextlib.asynccontextmanager
async def running(config: KisConfig, aredis, watchlist: list[str]) -> AsyncIterator[FeedHolder]:
    async def fixed() -> list[str]:
        return watchlist

    async def market_open() -> bool:
        return True

    holder = FeedHolder(
        config,
        redis=aredis,
        channel_layer=get_channel_layer(),
        settings=FAST,
        watchlist=fixed,
        market_open=market_open,
        bar_store=None,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(holder.run(stop))
    try:
        yield holder
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await get_channel_layer().flush()


async def receive_on(layer, channel: str, want: Callable[[dict], bool], timeout: float) -> dict:
    async def loop() -> dict:
        while True:
            message = await layer.receive(channel)
            if want(message):
                return message

    return await asyncio.wait_for(loop(), timeout)


@pytest.mark.asyncio
async def test_viewer_and_watchlist_codes_reach_groups_hashes_and_status(
    feedbox, feed_config, aredis, shared_keys
) -> None:
    viewed, listed, *_ = sandbox_codes(feedbox, 3)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(groups.quote_group(viewed), channel)
    await aredis.zadd(keys.VIEWERS_ZSET, {f"{viewed}|conn-1": time.time()})
    async with running(feed_config, aredis, [listed]) as holder:
        batch = await receive_on(layer, channel, lambda m: m["type"] == "quote.batch" and viewed in m["quotes"], 10)
        tick = {"quote": json.loads(batch["quotes"][viewed])}
        assert tick["quote"]["code"] == viewed and tick["quote"]["source"] == "ws"
        batch = await receive_on(layer, channel, lambda m: m["type"] == "quote.batch" and viewed in m["books"], 10)
        book = {"book": json.loads(batch["books"][viewed])}
        assert book["book"]["code"] == viewed and len(book["book"]["asks"]) == 10
        await eventually(lambda: aredis.hexists(keys.QUOTES_HASH, listed), 10, "watchlist code in QUOTES_HASH")
        assert holder.codes == sorted([viewed, listed])
        assert open_sandbox_connections(feedbox) == [4]  # 2 stocks x (trades + book)
        snapshot = json.loads(await aredis.hget(keys.QUOTES_HASH, viewed))
        assert snapshot["code"] == viewed and snapshot["price"] > 0
        await eventually(lambda: holder.status == "connected", 5, "status connected")
        await eventually(lambda: _get(aredis, keys.FEED_STATUS_KEY, b"connected"), 5, "connected status published")
        detail = json.loads(await aredis.get(keys.FEED_STATUS_DETAIL_KEY))
        assert detail["holder"] == holder.lease.token and detail["key_id"] == feed_config.key_id
        assert feed_config.app_key not in json.dumps(detail)
        assert await aredis.ttl(keys.FEED_STATUS_KEY) <= 30
    assert await aredis.get(keys.FEED_STATUS_KEY) == b"stopped"
    assert await aredis.exists(holder.lease.key) == 0  # released on stop
    await layer.group_discard(groups.quote_group(viewed), channel)


async def _get(aredis, key: str, expected: bytes) -> bool:
    return await aredis.get(key) == expected


@pytest.mark.asyncio
async def test_order_codes_feed_the_fill_stream_and_demand_changes_apply(feedbox, feed_config, aredis, shared_keys):
    ordered, other = sandbox_codes(feedbox, 2)
    async with running(feed_config, aredis, []) as holder:
        await eventually(lambda: holder.status == "connected", 10, "connected")
        assert holder.codes == []
        await aredis.sadd(keys.ORDERS_SET, ordered)
        await eventually(lambda: aredis.xlen(keys.FILL_TICKS_STREAM), 10, "fill ticks of the order code")
        entries = await aredis.xrange(keys.FILL_TICKS_STREAM, count=5)
        assert {fields[b"code"] for _id, fields in entries} == {ordered.encode()}
        # A viewer arrives and leaves: subscribed, then unsubscribed after the grace period only.
        await aredis.zadd(keys.VIEWERS_ZSET, {f"{other}|c": time.time()})
        await eventually(lambda: other in holder.codes, 5, "viewer code subscribed")
        await aredis.zrem(keys.VIEWERS_ZSET, f"{other}|c")
        await asyncio.sleep(1.0)
        assert other in holder.codes  # still within FEED_VIEWER_GRACE (30 s)
        await aredis.hset("hoga:feed:demand:recent", other, repr(time.time() - 31))  # grace elapsed
        await eventually(lambda: holder.codes == [ordered], 5, "viewer code unsubscribed after grace")
        assert open_sandbox_connections(feedbox) == [2]


@pytest.mark.asyncio
async def test_ws_drop_restores_subscriptions_and_ticks_resume(
    feedbox, feed_config, feed_admin, aredis, shared_keys
) -> None:
    wanted = sandbox_codes(feedbox, 3)
    async with running(feed_config, aredis, wanted) as holder:
        await eventually(lambda: holder.counters.ticks > 0 and len(holder.codes) == 3, 10, "ticks flowing")
        resp = await asyncio.to_thread(feed_admin.post, "/sandbox/faults", json={"fault": "ws_drop"})
        assert resp.status_code == 200 and resp.json()["dropped"] >= 1
        dropped_at = time.monotonic()
        session = holder.session
        assert session is not None
        await eventually(
            lambda: (
                session.stats.reconnects >= 1
                and session.status == "connected"
                and session.active_registrations == session.registrations
            ),
            5,
            "reconnected with every registration restored",
        )
        assert len(session.registrations) == 6
        assert open_sandbox_connections(feedbox) == [6]
        ticks, published = holder.counters.ticks, holder.counters.published
        await eventually(
            lambda: holder.counters.ticks > ticks + 5 and holder.counters.published > published + 5, 5, "ticks resume"
        )
        assert time.monotonic() - dropped_at < 8
        assert holder.counters.dropped == 0 and holder.counters.publish_errors == 0
        # every received tick is counted for /metrics too (hoga_feed_ticks_received_total)
        from prometheus_client import REGISTRY

        assert REGISTRY.get_sample_value("hoga_feed_ticks_received_total", {"source": "kis"}) >= holder.counters.ticks
