"""Fixtures of the strategy tests: a stock with a previous close, a funded paper account, strategies, and a
deterministic sequence of prints fed through the tick stream to the strategy host and the fill engine."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.core.krx.calendar import KST
from apps.live.realtime import keys

DAY = dt.date(2026, 3, 3)  # a Tuesday (settles T+2 on 2026-03-05)
BASE = 70_000


def at(hour: int, minute: int, second: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute, second), tzinfo=KST)


@pytest.fixture(autouse=True)
def _setup(clean_redis, settings):
    settings.NXT_ELIGIBLE_CODES = []
    settings.STRATEGY_BLOCK_MS = 5
    settings.PAPER_FILL_BLOCK_MS = 5
    settings.PAPER_FILL_CLAIM_IDLE_MS = 60_000
    settings.PAPER_FILL_EXPIRY_CHECK = 3600
    return clean_redis


@pytest.fixture
def make_stock(db):
    from apps.marketdata.models import DailyBar, Stock

    def make(code="005930", base=BASE):
        stock = Stock.objects.create(code=code, name=f"Stock {code}", market="KOSPI", active=True)
        DailyBar.objects.create(stock=stock, date=DAY - dt.timedelta(days=1), open=base, high=base, low=base,
                                close=base, volume=1000, source="kis")  # fmt: skip
        return stock

    return make


@pytest.fixture
def stock(make_stock):
    return make_stock()


@pytest.fixture
def account(user):
    from apps.trading.accounts.services import paper_account_create

    return paper_account_create(user=user, name="test", initial_cash=10_000_000)


@pytest.fixture
def make_strategy(user, account, stock):
    from apps.strategies.services import strategy_create, strategy_start

    def make(kind="ma_cross", params=None, *, start=True, **limits):
        data = {"kind": kind, "params": params or {"fast": 2, "slow": 4, "quantity": 10}, "codes": [stock.code],
                "account_id": account.pk, "capital": 5_000_000, **limits}  # fmt: skip
        strategy = strategy_create(user=user, data=data)
        return strategy_start(strategy=strategy) if start else strategy

    return make


def minute_prints(closes: list[int], *, start: dt.datetime, code: str = "005930") -> list[tuple]:
    """Three prints a minute from ``start``: (code, price, volume, at); the minute closes at ``closes[i]``."""
    out = []
    for i, close in enumerate(closes):
        minute = start + dt.timedelta(minutes=i)
        for second, price, volume in ((5, close + 100, 30), (25, close - 100, 20), (45, close, 50)):
            out.append((code, price, volume, minute + dt.timedelta(seconds=second)))
    return out


#: Minute closes with two up-crosses and two down-crosses of the 2/4 averages.
CLOSES = [70_000, 69_900, 69_800, 69_700, 69_800, 70_000, 70_200, 70_400, 70_300, 70_100, 69_900, 69_700,
          69_600, 69_800, 70_100, 70_400, 70_500, 70_300, 70_000, 69_800, 69_700, 69_700]  # fmt: skip


def xadd(redis, code: str, price: int, volume: int, when: dt.datetime, *, phase="continuous") -> str:
    """A print appended to the fill-tick stream as the feed's publisher appends it."""
    entry = {"code": code, "price": price, "volume": volume, "cum_volume": 0, "at": when.isoformat(), "ask": price,
             "bid": price, "venue": "KRX", "phase": phase}  # fmt: skip
    return redis.xadd(keys.FILL_TICKS_STREAM, entry).decode()


class Live:
    """The strategy host and a fill engine on the real stream; ``feed`` appends prints one by one and lets the
    host and then the fill engine take each, as the worker's two threads would."""

    def __init__(self, redis, holder="host-a"):
        from apps.strategies.live import StrategyHost
        from apps.trading.orders.engine import FillEngine

        self.redis = redis
        self.host = StrategyHost(redis=redis, holder=holder)
        self.fills = FillEngine(redis=redis, consumer="fills-a")
        self.fills.reader.ensure_group()
        self.host.lease()

    def feed(self, prints):
        for code, price, volume, when in prints:
            xadd(self.redis, code, price, volume, when)
            self.host.step(block_ms=5)
            self.fills.step()
        self.host.step(block_ms=5)  # fills of the last print reach the strategies


@pytest.fixture
def live(clean_redis, db):
    return Live(clean_redis)
