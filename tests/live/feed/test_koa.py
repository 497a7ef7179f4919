"""MARKET_FEED=koa: the holder consumes the OpenAPI+ bridge protocol (docs/koa-bridge.md) over the real Redis.

A fake bridge speaks the protocol: it reads what Hoga wants (``<p>:want`` / ``<p>:control``), beats on
``<p>:heartbeat``, publishes ticks, books and a condition alert, and malformed messages, which are logged,
counted and skipped without stopping the feed. When the heartbeat stops, the status turns stale."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

import pytest
from channels.layers import get_channel_layer
from django.conf import settings

from apps.brokers.base import ConditionAlert
from apps.core import groups
from apps.live.feed.holder import FeedHolder
from apps.live.feed.koa import KoaConfig
from apps.live.realtime import keys

from .test_holder import FAST, eventually, receive_on

CODE = "005930"
OTHER = "000660"


def tick_fids(price: int, hhmmss: str) -> dict[str, str]:
    """FIDs of 주식체결 as GetCommRealData returns them (signed strings, kiwoom-api.md §B3)."""
    return {"20": hhmmss, "10": f"+{price}", "11": "+500", "12": "+0.70", "27": f"+{price + 100}",
            "28": f"+{price}", "15": "-7", "13": "120000", "14": "8500", "16": "-70800", "17": f"+{price}",
            "18": "-70500", "25": "2", "290": "2"}  # fmt: skip


def book_fids(price: int) -> dict[str, str]:
    fids = {"21": "100001", "121": "3000", "125": "4000", "13": "120000"}
    for i in range(1, 11):
        fids[str(40 + i)] = f"+{price + 100 * i}"
        fids[str(50 + i)] = f"+{price - 100 * (i - 1)}"
        fids[str(60 + i)] = str(10 * i)
        fids[str(70 + i)] = str(20 * i)
    return fids


class FakeBridge:
    """The Windows side, reduced to the protocol: ``want`` in, heartbeats and data out."""

    def __init__(self, redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.beating = True
        self.wanted: dict = {}
        self._task: asyncio.Task | None = None

    async def publish(self, channel: str, message: object) -> None:
        text = message if isinstance(message, str | bytes) else json.dumps(message)
        await self.redis.publish(f"{self.prefix}:{channel}", text)

    async def _beat(self) -> None:
        while True:
            raw = await self.redis.get(f"{self.prefix}:want")
            if raw:
                self.wanted = json.loads(raw)
            if self.beating:
                await self.publish("heartbeat", {"v": 1, "type": "heartbeat", "connected": True,
                                                 "codes": self.wanted.get("codes", []),
                                                 "conditions": self.wanted.get("conditions", [])})  # fmt: skip
            await asyncio.sleep(0.2)

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.mark.asyncio
async def test_koa_bridge_feeds_the_same_publisher_and_survives_malformed_messages(aredis, shared_keys) -> None:
    prefix = f"hoga-test-koa-{uuid.uuid4().hex[:8]}"
    config = KoaConfig(redis_url=settings.REDIS_URL, prefix=prefix, heartbeat_timeout=3.0, control_interval=0.3)
    alerts: list[ConditionAlert] = []

    async def fixed() -> list[str]:
        return [OTHER]

    async def market_open() -> bool:
        return True

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(groups.quote_group(CODE), channel)
    await aredis.zadd(keys.VIEWERS_ZSET, {f"{CODE}|conn-1": time.time()})
    holder = FeedHolder(config, redis=aredis, channel_layer=layer, settings=FAST, watchlist=fixed,
                        market_open=market_open, bar_store=None,
                        condition_hooks=(lambda: ["3"], alerts.append))  # fmt: skip
    bridge = FakeBridge(aredis, prefix)
    stop = asyncio.Event()
    task = asyncio.create_task(holder.run(stop))
    bridge.start()
    try:
        await eventually(lambda: set(bridge.wanted.get("codes", [])) == {CODE, OTHER}, 10, "want message")
        assert bridge.wanted["v"] == 1 and bridge.wanted["conditions"] == ["3"]
        await eventually(lambda: holder.status == "connected", 10, "connected by heartbeat")
        errors_before = holder.session.stats.protocol_errors
        malformed = [
            ("tick:005930", "not json"),
            ("tick:005930", b"\xff\xfe"),
            ("tick:005930", {"v": 2, "type": "tick", "code": CODE, "fids": tick_fids(71000, "100000")}),
            ("tick:005930", {"v": 1, "type": "tick", "code": CODE, "fids": {"20": "100000", "10": "abc"}}),
            ("tick:005930", {"v": 1, "type": "tick", "code": OTHER, "fids": tick_fids(71000, "100000")}),
            ("tick:005930", {"v": 1, "type": "tick", "code": CODE, "fids": ["10", "71000"]}),
            ("book:005930", {"v": 1, "type": "book", "code": CODE, "fids": {"21": "25:00"}}),
            ("condition", {"v": 1, "type": "condition", "seq": "3", "code": CODE, "kind": "X", "time": "100001"}),
            ("heartbeat", {"v": 1, "type": "heartbeat", "codes": "005930"}),
            ("condition", [1, 2, 3]),
        ]
        for name, message in malformed:
            await bridge.publish(name, message)
        await bridge.publish("tick:005930", {"v": 1, "type": "tick", "code": CODE, "fids": tick_fids(71200, "100002")})
        await bridge.publish("book:005930", {"v": 1, "type": "book", "code": CODE, "fids": book_fids(71200)})
        await bridge.publish(
            "tick:000660", {"v": 1, "type": "tick", "code": OTHER, "fids": tick_fids(120000, "100003")}
        )
        await bridge.publish("condition", {"v": 1, "type": "condition", "seq": "003", "name": "돌파", "code": "A000660",
                                           "kind": "I", "time": "100004"})  # fmt: skip
        await bridge.publish(
            "condition", {"v": 1, "type": "condition", "seq": "5", "code": CODE, "kind": "I", "time": "100005"}
        )  # fmt: skip  (not an enabled condition: ignored)

        # The tick and the book may reach the group in one batch or in two.
        seen: dict[str, dict] = {}

        def quote_and_book(message: dict) -> bool:
            if message["type"] == "quote.batch":
                for field in ("quotes", "books"):
                    if CODE in message[field]:
                        seen.setdefault(field, json.loads(message[field][CODE]))
            return len(seen) == 2

        await receive_on(layer, channel, quote_and_book, 10)
        tick = {"quote": seen["quotes"]}
        assert tick["quote"]["code"] == CODE and tick["quote"]["price"] == 71200 and tick["quote"]["side"] == 5
        book = {"book": seen["books"]}
        assert book["book"]["asks"][0] == [71300, 10] and book["book"]["bids"][0] == [71200, 20]
        await eventually(lambda: aredis.hexists(keys.QUOTES_HASH, OTHER), 5, "second code in QUOTES_HASH")
        stored = json.loads(await aredis.hget(keys.QUOTES_HASH, OTHER))
        assert stored["price"] == 120000 and stored["cum_value"] == 8500 * 1_000_000
        await eventually(lambda: len(alerts) == 1, 5, "condition alert recorded")
        assert alerts[0].seq == "3" and alerts[0].code == OTHER and alerts[0].kind == "IN"
        assert alerts[0].at.strftime("%H%M%S") == "100004"
        assert holder.session.stats.protocol_errors - errors_before == len(malformed)
        assert holder.counters.ticks == 2 and holder.counters.books == 1 and not task.done()
        detail = json.loads(await aredis.get(keys.FEED_STATUS_DETAIL_KEY))
        assert detail["source"] == "koa" and detail["key_id"] == prefix

        bridge.beating = False  # the bridge (or its PC) is gone: status follows the heartbeat
        await eventually(lambda: holder.status == "stale", 10, "stale without heartbeat")
        await eventually(lambda: _get(aredis, keys.FEED_STATUS_KEY, b"stale"), 10, "stale published")
        bridge.beating = True
        await eventually(lambda: holder.status == "connected", 5, "connected again")
    finally:
        await bridge.stop()
        stop.set()
        await asyncio.wait_for(task, 15)
        await layer.group_discard(groups.quote_group(CODE), channel)
        await layer.flush()
        await aredis.delete(f"{prefix}:want")
    assert await aredis.get(keys.FEED_STATUS_KEY) == b"stopped"


async def _get(aredis, key: str, expected: bytes) -> bool:
    return await aredis.get(key) == expected
