"""Fixtures of the paper-trading tests: a stock with a previous close, a funded account, an open market,
and trade ticks with increasing stream ids."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from apps.core.krx.calendar import KST
from apps.live.realtime.fillpath import FillTick
from apps.marketdata.market_clock import MarketNow

TRADING_DATE = dt.date(2026, 3, 3)  # a Tuesday; settles T+2 on 2026-03-05 (2026 tax rate 0.20 %)
BASE = 70_000  # previous close: limits 49,000 - 91,000 (tick 100 at the base)


def open_market(day: dt.date = TRADING_DATE, hour: int = 10) -> MarketNow:
    return MarketNow(
        now=dt.datetime.combine(day, dt.time(hour, 0), tzinfo=KST),
        trading_date=day,
        session="continuous",
        source="calendar",
    )


def closed_market(day: dt.date = TRADING_DATE, hour: int = 16, minute: int = 0) -> MarketNow:
    """After the regular session (16:00: KRX's after-hours single price runs, regular orders are refused)."""
    return MarketNow(
        now=dt.datetime.combine(day, dt.time(hour, minute), tzinfo=KST),
        trading_date=day,
        session="closed",
        source="calendar",
    )


def market_at(hour: int, minute: int = 0, second: int = 0, *, day: dt.date = TRADING_DATE) -> MarketNow:
    """The market clock at a time of ``day`` with the regular-session state the calendar gives it."""
    from apps.marketdata.market_clock import calendar_now
    from apps.marketdata.selectors import krx_calendar

    return calendar_now(krx_calendar(), dt.datetime.combine(day, dt.time(hour, minute, second), tzinfo=KST))


@pytest.fixture(autouse=True)
def _no_nxt(settings):
    """No stock trades on NXT unless a test lists it (``settings.NXT_ELIGIBLE_CODES``)."""
    settings.NXT_ELIGIBLE_CODES = []


@pytest.fixture(autouse=True)
def _empty_redis(clean_redis):
    """Each test starts with an empty fill stream, demand set, quotes and books."""
    return clean_redis


@pytest.fixture
def make_stock(db):
    from apps.marketdata.models import DailyBar, Stock

    def make(code="005930", *, base=BASE, market="KOSPI", active=True, bar_date=TRADING_DATE - dt.timedelta(days=1)):
        stock = Stock.objects.create(code=code, name=f"Stock {code}", market=market, active=active)
        if base is not None:
            DailyBar.objects.create(
                stock=stock, date=bar_date, open=base, high=base, low=base, close=base, volume=1000, source="kis"
            )
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
def market():
    return open_market()


_ids = itertools.count(1)


@pytest.fixture
def tick():
    """``tick(price, volume)``: the next trade tick of 005930 (stream ids increase across the test)."""

    def make(price: int, volume: int, *, code="005930", stream_id=None, at=None, day=TRADING_DATE) -> FillTick:
        n = next(_ids)
        at = at or dt.datetime.combine(day, dt.time(10, 0), tzinfo=KST) + dt.timedelta(seconds=n % 3600)
        return FillTick(
            stream_id=stream_id or f"{1_000 + n}-0", code=code, price=price, volume=volume, cum_volume=0,
            at=at, ask=price, bid=price,
        )  # fmt: skip

    return make


@pytest.fixture
def place(account, stock, market):
    """``place(side, qty, price=None, **kw)``: an order on the test account (MARKET when price is None)."""
    from apps.trading.orders.placement import order_place

    def do(side="BUY", quantity=10, price=None, **kw):
        kw.setdefault("account_id", account.pk)
        kw.setdefault("code", stock.code)
        kw.setdefault("market", market)
        return order_place(
            side=side, order_type="LIMIT" if price is not None else "MARKET", quantity=quantity, limit_price=price, **kw
        )

    return do


def reconcile(account_id: int) -> tuple[int, int]:
    """(cash + Σ cost_basis + Σ fees + Σ taxes − Σ realized, initial_cash): equal when no won is lost."""
    from django.db.models import Sum

    from apps.trading.accounts.models import PaperAccount
    from apps.trading.positions.models import Position

    account = PaperAccount.objects.get(pk=account_id)
    sums = Position.objects.filter(account_id=account_id).aggregate(
        cost=Sum("cost_basis"), fees=Sum("fees_paid"), taxes=Sum("taxes_paid"), realized=Sum("realized_pnl")
    )
    total = account.cash + sum((sums[k] or 0) for k in ("cost", "fees", "taxes")) - (sums["realized"] or 0)
    return total, account.initial_cash


def give_shares(account, stock, quantity: int, price: int) -> None:
    """Holdings for sell tests, as if bought earlier at ``price`` with no commission."""
    from django.db.models import F

    from apps.trading.accounts.models import PaperAccount
    from apps.trading.positions.models import Position

    Position.objects.create(
        account=account, stock=stock, quantity=quantity, cost_basis=quantity * price, avg_price=price
    )
    PaperAccount.objects.filter(pk=account.pk).update(cash=F("cash") - quantity * price)
