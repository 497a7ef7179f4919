"""Fixtures of the page tests: the universe's first stocks with a previous close, a logged-in trader with a
paper account, and the market clock pinned to a session of the replayed day (the clock is the sandbox's
HTTP endpoint in a running stack; the paper-trading API tests pin it the same way)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from apps.core.krx.calendar import KST
from apps.marketdata.market_clock import MarketNow

TRADING_DATE = dt.date(2026, 2, 20)  # a Friday: the sandbox's default replay day
PREVIOUS_DAY = dt.date(2026, 2, 19)
BASE = 70_000  # 005930's previous close: today's limits 49,000 - 91,000


def pinned(session: str = "continuous", *, synthetic: bool = False, hour: int = 10) -> MarketNow:
    return MarketNow(
        now=dt.datetime.combine(TRADING_DATE, dt.time(hour, 0), tzinfo=KST),
        trading_date=TRADING_DATE,
        session=session,
        source="sandbox",
        synthetic=synthetic,
        data_source="synthetic" if synthetic else "recorded",
    )


@pytest.fixture(autouse=True)
def _clean(clean_redis, settings):
    settings.MARKET_BROKER = "sandbox"
    return clean_redis


@pytest.fixture
def pin_market(monkeypatch):
    """``pin_market(session, synthetic=...)``: the clock the pages and ``order_place`` read."""

    def pin(session: str = "continuous", *, synthetic: bool = False) -> MarketNow:
        market = pinned(session, synthetic=synthetic)
        monkeypatch.setattr("apps.marketdata.market_clock.sandbox_now", lambda timeout=3.0, calendar=None: market)
        monkeypatch.setattr("apps.trading.orders.placement.market_now", lambda calendar: market)
        return market

    return pin


@pytest.fixture
def clock(monkeypatch):
    """``clock(hh, mm, ss)``: the market clock of the pages and of ``order_place`` at that time of the replayed day."""

    def pin(hour: int, minute: int = 0, second: int = 0) -> MarketNow:
        now = dt.datetime.combine(TRADING_DATE, dt.time(hour, minute, second), tzinfo=KST)
        session = "continuous" if dt.time(9) <= now.time() < dt.time(15, 20) else "closed"
        if dt.time(15, 20) <= now.time() < dt.time(15, 30):
            session = "closing_auction"
        elif now.time() < dt.time(9):
            session = "pre_open"
        market = MarketNow(now=now, trading_date=TRADING_DATE, session=session, source="sandbox")
        monkeypatch.setattr("apps.marketdata.market_clock.sandbox_now", lambda timeout=3.0, calendar=None: market)
        monkeypatch.setattr("apps.trading.orders.placement.market_now", lambda calendar: market)
        return market

    return pin


@pytest.fixture
def market(pin_market):
    return pin_market("continuous")


@pytest.fixture
def stocks(db):
    from apps.marketdata.models import DailyBar, Stock

    samsung = Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    hynix = Stock.objects.create(code="000660", name="SK하이닉스", market="KOSPI", rank=2)
    DailyBar.objects.create(
        stock=samsung, date=PREVIOUS_DAY, open=BASE, high=BASE, low=BASE, close=BASE, volume=1000, source="kis"
    )
    DailyBar.objects.create(
        stock=hynix, date=PREVIOUS_DAY, open=150_000, high=150_000, low=150_000, close=150_000, volume=500,
        source="kis",
    )  # fmt: skip
    return samsung, hynix


@pytest.fixture
def samsung(stocks):
    return stocks[0]


@pytest.fixture
def trader(db, django_user_model):
    from apps.trading.accounts.services import paper_account_ensure

    user = django_user_model.objects.create_user(username="trader", password="s3cret-pass-9")
    paper_account_ensure(user=user)
    return user


@pytest.fixture
def account(trader):
    return trader.paper_accounts.get()


@pytest.fixture
def web(client, trader):
    client.force_login(trader)
    return client


def store_quote(redis, code: str, **fields) -> dict:
    """A live quote snapshot as the feed stores it (``realtime/snapshots.py``)."""
    from apps.live.realtime import keys

    snapshot = {
        "code": code, "price": 71_000, "change": 1_000, "change_rate": "1.43", "sign": 2, "volume": 10,
        "cum_volume": 1_234_567, "cum_value": 0, "open": 70_000, "high": 71_500, "low": 69_800, "ask": 71_100,
        "bid": 71_000, "side": 1, "time": "2026-02-20T10:00:05+09:00",
        "received_at": "2026-02-20T10:00:05.120+09:00", "source": "ws",
    }  # fmt: skip
    snapshot.update(fields)
    redis.hset(keys.QUOTES_HASH, code, json.dumps(snapshot))
    return snapshot


def store_book(redis, code: str) -> dict:
    from apps.live.realtime import keys

    book = {
        "code": code,
        "asks": [[71_100 + 100 * i, 1_000 * (i + 1)] for i in range(10)],
        "bids": [[71_000 - 100 * i, 500 * (i + 1)] for i in range(10)],
        "total_ask_qty": 55_000,
        "total_bid_qty": 27_500,
        "cum_volume": 1_234_567,
        "time": "2026-02-20T10:00:04+09:00",
        "received_at": "2026-02-20T10:00:04.100+09:00",
    }
    redis.hset(keys.BOOKS_HASH, code, json.dumps(book))
    return book
