"""Fixtures for the real-time fan-out tests: the real Redis PubSub channel layer on the test REDIS_URL,
realistic ticks and books, and authenticated WebSocket communicators."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest
import pytest_asyncio

from apps.brokers.base import KST, OrderBook, PriceSign, Tick, TradeSide

BASE_TIME = dt.datetime(2026, 2, 20, 9, 30, 0, tzinfo=KST)


def make_tick(code: str = "005930", seq: int = 0, *, price: int | None = None) -> Tick:
    """A plausible H0STCNT0 trade print: prices on the KRX tick grid, running totals growing with seq."""
    base_close = 181_000
    price = price if price is not None else base_close + 100 * (seq % 20)
    change = price - base_close
    at = BASE_TIME + dt.timedelta(milliseconds=10 * seq)
    return Tick(
        code=code,
        at=at.replace(microsecond=0),
        price=price,
        change=change,
        sign=PriceSign.UP if change > 0 else PriceSign.UNCHANGED,
        change_rate=(Decimal(change) * 100 / base_close).quantize(Decimal("0.01")),
        volume=10 + seq % 7,
        cum_volume=1_000_000 + 13 * seq,
        cum_value=181_000_000_000 + 13 * seq * price,
        open=181_200,
        high=max(183_000, price),
        low=180_100,
        ask1=price + 100,
        bid1=price,
        side=TradeSide.BUY if seq % 2 else TradeSide.SELL,
        session="0",
        received_at=at + dt.timedelta(milliseconds=3),
    )


def make_book(code: str = "005930", seq: int = 0) -> OrderBook:
    """A 10-level book around 181,000 (asks ascending, bids descending)."""
    at = BASE_TIME + dt.timedelta(milliseconds=10 * seq)
    asks = tuple((181_100 + 100 * i, 1_000 + 10 * i + seq) for i in range(10))
    bids = tuple((181_000 - 100 * i, 900 + 10 * i + seq) for i in range(10))
    return OrderBook(
        code=code,
        at=at.replace(microsecond=0),
        asks=asks,
        bids=bids,
        total_ask_qty=sum(q for _, q in asks),
        total_bid_qty=sum(q for _, q in bids),
        cum_volume=1_000_000 + seq,
        session="0",
        received_at=at + dt.timedelta(milliseconds=2),
    )


@pytest.fixture
def realtime_redis(clean_redis):
    """An empty test Redis database (the PubSub layer uses the same REDIS_URL: see config/settings/base.py)."""
    from django.conf import settings

    layer_hosts = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"]
    assert layer_hosts == [settings.REDIS_URL], "the channel layer must use the test Redis"
    return clean_redis


@pytest_asyncio.fixture
async def publisher(realtime_redis) -> AsyncIterator:
    """A QuotePublisher on an asyncio Redis client of this test's loop and the real channel layer."""
    import redis.asyncio as aioredis
    from channels.layers import get_channel_layer
    from django.conf import settings

    from apps.live.realtime.publisher import QuotePublisher

    client = aioredis.Redis.from_url(settings.REDIS_URL)
    yield QuotePublisher(redis=client, channel_layer=get_channel_layer())
    await client.aclose()


@pytest_asyncio.fixture
async def ws_user(async_db_cleanup):
    from channels.db import database_sync_to_async
    from django.contrib.auth import get_user_model

    def create():
        from apps.marketdata.models import Stock

        # Only stocks of the universe table can be subscribed: the tests' codes and 000000-000060.
        codes = ["005930", "000660", "035420", *(f"{i:06d}" for i in range(61))]
        Stock.objects.bulk_create(
            [Stock(code=c, name=f"Stock {c}", market="KOSPI") for c in codes], ignore_conflicts=True
        )
        return get_user_model().objects.create_user(username="viewer", password="pw-viewer-123")

    return await database_sync_to_async(create)()


@pytest_asyncio.fixture
async def connect(ws_user) -> AsyncIterator[Callable]:
    """``await connect(send_buffer=None)`` → a connected communicator on MarketConsumer, already past the
    initial status frame. ``send_buffer=N`` bounds the server->browser queue to N frames, i.e. a server
    whose ``send`` waits for a browser that does not read (backpressure)."""
    import asyncio

    from channels.testing import WebsocketCommunicator

    from apps.live.consumers import MarketConsumer

    opened: list[WebsocketCommunicator] = []

    async def make(*, send_buffer: int | None = None, skip_status: bool = True) -> WebsocketCommunicator:
        communicator = WebsocketCommunicator(MarketConsumer.as_asgi(), "/ws/market/")
        communicator.scope["user"] = ws_user
        if send_buffer is not None:
            communicator._output_queue = asyncio.Queue(maxsize=send_buffer)
        connected, _ = await communicator.connect()
        assert connected
        opened.append(communicator)
        if skip_status:
            status = await communicator.receive_json_from()
            assert status["type"] == "status"
        return communicator

    yield make
    for communicator in opened:
        await communicator.disconnect()
