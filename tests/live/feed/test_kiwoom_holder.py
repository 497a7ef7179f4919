"""MARKET_FEED=kiwoom: the same holder (lease, demand, publisher, status) on the Kiwoom WebSocket of the
sandbox over real sockets, real Redis and the real Channels layer; the enabled real-time conditions are
subscribed and every alert reaches the condition sink from a thread (a failing sink is counted)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from channels.layers import get_channel_layer

from apps.brokers.base import ConditionAlert
from apps.core import groups
from apps.live.feed.holder import FeedHolder, feed_configs
from apps.live.realtime import keys

from .conftest import sandbox_codes
from .test_holder import FAST, eventually, receive_on

pytestmark = [pytest.mark.django_db(transaction=True)]


def kiwoom_connections(box) -> list[tuple[int, int]]:
    hub = box.server.core.kiwoom_hub
    return box.call(lambda: [(len(c.pairs()), len(c.cond_subs)) for c in hub.connections if c.token is not None])


@pytest.mark.asyncio
async def test_kiwoom_ticks_reach_quote_hash_and_groups_and_alerts_reach_the_sink(
    feedbox, kiwoom_feed_config, aredis, shared_keys
) -> None:
    viewed, listed, *_ = sandbox_codes(feedbox, 3)
    recorded: list[ConditionAlert] = []
    threads: set[str] = set()
    calls = {"n": 0}

    def enabled_seqs() -> list[str]:
        return ["2"]

    def record(alert: ConditionAlert) -> None:
        threads.add(threading.current_thread().name)
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("sink down")  # the holder logs, counts and carries on
        recorded.append(alert)

    async def fixed() -> list[str]:
        return [listed]

    async def market_open() -> bool:
        return True

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(groups.quote_group(viewed), channel)
    await aredis.zadd(keys.VIEWERS_ZSET, {f"{viewed}|conn-1": time.time()})
    holder = FeedHolder(
        kiwoom_feed_config,
        redis=aredis,
        channel_layer=layer,
        settings=FAST,
        watchlist=fixed,
        market_open=market_open,
        bar_store=None,
        condition_hooks=(enabled_seqs, record),
    )
    assert holder.per_connection == kiwoom_feed_config.ws_max_stocks
    stop = asyncio.Event()
    task = asyncio.create_task(holder.run(stop))
    try:
        batch = await receive_on(layer, channel, lambda m: m["type"] == "quote.batch" and viewed in m["quotes"], 15)
        tick = {"quote": json.loads(batch["quotes"][viewed])}
        assert tick["quote"]["code"] == viewed and tick["quote"]["source"] == "ws" and tick["quote"]["price"] > 0
        batch = await receive_on(layer, channel, lambda m: m["type"] == "quote.batch" and viewed in m["books"], 10)
        book = {"book": json.loads(batch["books"][viewed])}
        assert book["book"]["code"] == viewed and len(book["book"]["asks"]) == 10
        await eventually(lambda: aredis.hexists(keys.QUOTES_HASH, listed), 10, "watchlist code in QUOTES_HASH")
        snapshot = json.loads(await aredis.hget(keys.QUOTES_HASH, viewed))
        assert snapshot["code"] == viewed and snapshot["cum_value"] > 0
        assert holder.codes == sorted([viewed, listed])
        await eventually(lambda: holder.status == "connected", 5, "connected")
        await eventually(lambda: kiwoom_connections(feedbox) == [(4, 1)], 10, "2 stocks x (0B, 0D) and 1 condition")
        detail = json.loads(await aredis.get(keys.FEED_STATUS_DETAIL_KEY))
        assert detail["source"] == "kiwoom" and detail["key_id"] == kiwoom_feed_config.key_id
        assert kiwoom_feed_config.app_key not in json.dumps(detail)
        # the sink appends before the holder counts it (after the sink's thread returns): wait for both
        await eventually(
            lambda: len(recorded) >= 1 and holder.counters.alerts_recorded == len(recorded), 30, "alerts recorded"
        )
        assert holder.counters.alert_errors == 1
        assert all(a.seq == "2" and a.kind in ("IN", "OUT") for a in recorded)
        assert "MainThread" not in threads  # the sink runs in worker threads, never on the event loop
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await layer.group_discard(groups.quote_group(viewed), channel)
        await layer.flush()
    assert await aredis.get(keys.FEED_STATUS_KEY) == b"stopped"
    assert kiwoom_connections(feedbox) == []


def test_market_feed_setting_picks_the_source(settings) -> None:
    from apps.brokers.kis.config import ImproperlyConfiguredBroker, KisConfig
    from apps.brokers.kiwoom.config import KiwoomConfig
    from apps.live.feed.koa import KoaConfig

    settings.MARKET_BROKER = "sandbox"
    settings.FEED_EXTRA_APP_KEYS = []
    settings.MARKET_FEED = "kis"
    assert [type(c) for c in feed_configs()] == [KisConfig]
    settings.MARKET_FEED = "kiwoom"
    [kiwoom] = feed_configs()
    assert isinstance(kiwoom, KiwoomConfig) and kiwoom.env == "mock"
    settings.MARKET_FEED = "koa"
    settings.KOA_CHANNEL_PREFIX = "bridge1"
    [koa] = feed_configs()
    assert isinstance(koa, KoaConfig) and koa.prefix == "bridge1" and koa.scope == "koa:bridge1"
    settings.MARKET_FEED = "ebest"
    with pytest.raises(ImproperlyConfiguredBroker):
        feed_configs()
