"""Fixtures of the attack tests: two users, a stock with a previous close, an open market clock."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _empty_redis(clean_redis):
    """Throttle counters, demand sets and lockouts start empty in every attack test."""
    return clean_redis


@pytest.fixture
def victim(db, django_user_model):
    return django_user_model.objects.create_user(username="victim", password="victim-pass-123")


@pytest.fixture
def attacker(db, django_user_model):
    return django_user_model.objects.create_user(username="attacker", password="attacker-pass-123")


def api_for(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def open_clock(monkeypatch):
    """The market clock pinned to an open session (as in tests/trading/paper_trading): orders are accepted."""
    from tests.trading.orders.conftest import open_market

    monkeypatch.setattr("apps.trading.orders.placement.market_now", lambda calendar: open_market())
    return open_market()


def make_stock(code: str, rank: int | None = None):
    import datetime as dt

    from apps.marketdata.models import DailyBar, Stock
    from tests.trading.orders.conftest import BASE, TRADING_DATE

    stock = Stock.objects.create(code=code, name=f"Stock {code}", market="KOSPI", rank=rank)
    DailyBar.objects.create(
        stock=stock, date=TRADING_DATE - dt.timedelta(days=1), open=BASE, high=BASE, low=BASE, close=BASE,
        volume=1000, source="kis",
    )  # fmt: skip
    return stock


@pytest.fixture
def samsung(db):
    import datetime as dt

    from apps.marketdata.models import DailyBar, Stock
    from tests.trading.orders.conftest import BASE, TRADING_DATE

    stock = Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    DailyBar.objects.create(
        stock=stock, date=TRADING_DATE - dt.timedelta(days=1), open=BASE, high=BASE, low=BASE, close=BASE,
        volume=1000, source="kis",
    )  # fmt: skip
    return stock
