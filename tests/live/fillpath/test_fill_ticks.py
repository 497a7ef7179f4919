"""The order-fill path's interface, exercised with a recording consumer against real Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest
from channels.layers import get_channel_layer

from apps.brokers.base import KST, PriceSign, Tick, TradeSide
from apps.live.realtime import keys
from apps.live.realtime.fillpath import FillTickReader, order_demand_add, order_demand_replace
from apps.live.realtime.publisher import QuotePublisher


def _tick(code: str, price: int, volume: int, cum: int, second: int) -> Tick:
    at = dt.datetime(2026, 2, 20, 10, 0, second, tzinfo=KST)
    return Tick(
        code=code, at=at, price=price, change=price - 100_000, sign=PriceSign.UP, change_rate=Decimal("1.00"),
        volume=volume, cum_volume=cum, cum_value=cum * price, open=100_000, high=price, low=99_000,
        ask1=price + 100, bid1=price, side=TradeSide.BUY, session="0", received_at=at,
    )  # fmt: skip


class RecordingConsumer:
    def __init__(self, redis, name: str):
        self.reader = FillTickReader(redis, group="test-fills", consumer=name)
        self.seen = []

    def drain(self, *, ack: bool = True):
        while batch := self.reader.read(block_ms=100):
            self.seen.extend(batch)
            if ack:
                self.reader.ack(batch)
        return self.seen


async def _publish(ticks):
    from django.conf import settings
    from redis.asyncio import Redis

    redis = Redis.from_url(settings.REDIS_URL)
    publisher = QuotePublisher(redis=redis, channel_layer=get_channel_layer())
    for tick in ticks:
        await publisher.publish_tick(tick, now=1.0)
    await redis.aclose()


@pytest.fixture
def fills(clean_redis):
    order_demand_replace(clean_redis, set())
    return clean_redis


def test_only_stocks_with_open_orders_reach_the_fill_path_in_order(fills):
    order_demand_add(fills, "005930")
    consumer = RecordingConsumer(fills, "c1")
    consumer.reader.ensure_group()
    ticks = [_tick("005930", 100_000 + i * 100, 10 + i, 100 + i, i) for i in range(5)]
    ticks.insert(2, _tick("000660", 900_000, 7, 7, 3))  # no open orders: quotes only

    asyncio.run(_publish(ticks))

    seen = consumer.drain()
    assert [(t.code, t.price, t.volume, t.cum_volume) for t in seen] == [
        ("005930", 100_000 + i * 100, 10 + i, 100 + i) for i in range(5)
    ]
    assert seen[0].at == dt.datetime(2026, 2, 20, 10, 0, 0, tzinfo=KST)
    assert fills.hexists(keys.QUOTES_HASH, "000660")  # still quoted for browsers


def test_unacknowledged_ticks_of_a_crashed_consumer_are_claimed_again(fills):
    order_demand_add(fills, "005930")
    crashed = RecordingConsumer(fills, "crashed")
    crashed.reader.ensure_group()
    asyncio.run(_publish([_tick("005930", 100_100, 5, 5, 1), _tick("005930", 100_200, 6, 11, 2)]))
    crashed.drain(ack=False)  # read, then died before acknowledging

    survivor = RecordingConsumer(fills, "survivor")
    claimed = survivor.reader.claim_stale(min_idle_ms=0)

    assert [(t.price, t.stream_id) for t in claimed] == [(t.price, t.stream_id) for t in crashed.seen]
    assert survivor.reader.ack(claimed) == 2
    assert survivor.reader.claim_stale(min_idle_ms=0) == []


def test_bad_codes_are_refused_and_change_nothing(fills):
    order_demand_add(fills, "005930")

    with pytest.raises(ValueError):
        order_demand_replace(fills, {"005930", "삼성전자"})
    with pytest.raises(ValueError):
        order_demand_add(fills, "12345")

    assert fills.smembers(keys.ORDERS_SET) == {b"005930"}
