"""How a running strategy is wired into the rest: its stocks reach the feed's demand and the fill-tick stream
through the feed's own publisher, a strategy whose code fails is stopped with its open orders cancelled, and a
daily-bar backtest."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest

from apps.live.realtime import keys
from apps.strategies.models import Signal, StrategyStatus
from apps.strategies.services import strategy_stop
from apps.trading.orders.models import Order, OrderStatus

from .conftest import CLOSES, DAY, at, minute_prints, xadd

pytestmark = pytest.mark.django_db


def _tick(code: str, price: int, when: dt.datetime):
    from apps.brokers.base import PriceSign, Tick, TradeSide

    return Tick(
        code=code, at=when, price=price, change=0, sign=PriceSign.UP, change_rate=Decimal("0"), volume=10,
        cum_volume=10, cum_value=10 * price, open=price, high=price, low=price, ask1=price + 100, bid1=price,
        side=TradeSide.BUY, session="0", received_at=when,
    )  # fmt: skip


async def _publish(ticks):
    from channels.layers import get_channel_layer
    from django.conf import settings
    from redis.asyncio import Redis

    from apps.live.realtime.publisher import QuotePublisher

    redis = Redis.from_url(settings.REDIS_URL)
    publisher = QuotePublisher(redis=redis, channel_layer=get_channel_layer())
    for tick in ticks:
        await publisher.publish_tick(tick, now=1.0)
    await redis.aclose()


async def _demand():
    from django.conf import settings
    from redis.asyncio import Redis

    from apps.live.feed.demand import read_demand

    redis = Redis.from_url(settings.REDIS_URL)
    try:
        return await read_demand(redis, now=1_000.0, watchlist=[], grace=30)
    finally:
        await redis.aclose()


def test_a_running_strategys_stocks_reach_the_feed_and_the_host(live, make_strategy, make_stock, clean_redis):
    make_stock("000660")
    strategy = make_strategy()
    assert clean_redis.smembers(keys.STRATEGY_CODES_SET) == {b"005930"}
    assert "005930" in asyncio.run(_demand()).orders
    asyncio.run(_publish([_tick("005930", 70_000, at(9, 1, 5)), _tick("000660", 90_000, at(9, 1, 6)),
                          _tick("005930", 70_100, at(9, 2, 5))]))  # fmt: skip
    assert live.host.step(block_ms=5) == 2  # the stock nobody trades or runs never reaches the stream
    strategy.refresh_from_db()
    assert strategy.state["bars"][0]["ts"].startswith("2026-03-03T09:02")  # the 09:01 bar completed, 09:02 open
    strategy_stop(strategy_id=strategy.pk, reason="done", by="user")
    assert clean_redis.smembers(keys.STRATEGY_CODES_SET) == set()


def test_a_failing_strategy_is_stopped_and_leaves_no_open_order(live, make_strategy, account, monkeypatch):
    from apps.strategies.builtins import MovingAverageCross

    strategy = make_strategy()
    real = MovingAverageCross.on_bar
    calls = []

    def on_bar(self, ctx, bar):
        if Order.objects.filter(account=account).exists():
            calls.append(bar)
            raise ZeroDivisionError("a bug")
        real(self, ctx, bar)

    monkeypatch.setattr(MovingAverageCross, "on_bar", on_bar)
    prints = minute_prints(CLOSES, start=at(9, 1))
    for code, price, volume, when in prints:  # the host only: the order stays open until the bug
        xadd(live.redis, code, price, volume, when)
        live.host.step(block_ms=5)
        if calls:
            break
    strategy.refresh_from_db()
    assert strategy.status == StrategyStatus.STOPPED and strategy.stopped_by == "error"
    assert "ZeroDivisionError: a bug" in strategy.stop_reason
    assert Order.objects.get(account=account).status == OrderStatus.CANCELLED
    assert Signal.objects.filter(strategy=strategy).count() == 1


def test_a_daily_bar_backtest(stock):
    from apps.marketdata.models import DailyBar
    from apps.strategies.backtest import backtest_execute

    day = DAY
    closes = [70_000, 69_000, 68_000, 69_000, 71_000, 73_000, 72_000, 70_000, 68_000, 67_000, 69_000]
    days = []
    while len(days) < len(closes):
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    for d, close in zip(days, closes, strict=True):
        DailyBar.objects.create(stock=stock, date=d, open=close - 500, high=close + 500, low=close - 1000,
                                close=close, volume=100_000, source="kis")  # fmt: skip
    result = backtest_execute(
        kind="ma_cross", params={"fast": 2, "slow": 3, "quantity": 10, "amount": 0}, codes=[stock.code],
        start=days[0], end=days[-1], timeframe="1d", limits={"capital": 10_000_000}, commission_rate=Decimal("0"),
    )  # fmt: skip
    assert result["bars"] == len(closes)
    assert [s["side"] for s in result["signals"]] == ["BUY", "SELL"]
    assert [f["price"] for f in result["fills"]] == [72_500, 67_500]  # the next session's open
    assert result["trades"] == 1 and len(result["equity"]) == len(closes)
    assert result["fills"][1]["tax"] > 0  # the sell pays the transaction tax
