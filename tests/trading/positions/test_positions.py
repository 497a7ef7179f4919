"""Positions valued at the latest quote (Redis) or the last daily close, and the account balance."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from apps.live.realtime import keys
from apps.marketdata.models import DailyBar
from apps.trading.orders.fills import order_fill_apply
from apps.trading.positions.selectors import account_balance, position_list_for_account
from tests.trading.orders.conftest import TRADING_DATE, reconcile

pytestmark = pytest.mark.django_db


@pytest.fixture
def holding(place, tick, account):
    """10 shares bought at 70,000 (commission 105), then 4 sold at 75,000 (commission 45, tax 600)."""
    place("BUY", 10, 70_000)
    order_fill_apply(tick=tick(70_000, 10))
    place("SELL", 4, 75_000)
    order_fill_apply(tick=tick(75_000, 4))
    return account


def test_positions_use_the_live_quote(holding, clean_redis):
    clean_redis.hset(keys.QUOTES_HASH, "005930", json.dumps({"code": "005930", "price": 72_000, "time": "x"}))
    [row] = position_list_for_account(account_id=holding.pk)
    assert (row["quantity"], row["avg_price"], row["cost_basis"]) == (6, Decimal("70000.0000"), 420_000)
    assert (row["last_price"], row["price_source"], row["market_value"], row["unrealized_pnl"]) == (
        72_000, "quote", 432_000, 12_000,
    )  # fmt: skip
    assert row["unrealized_pnl_pct"] == Decimal("2.86")
    assert (row["realized_pnl"], row["fees_paid"], row["taxes_paid"]) == (20_000, 105 + 45, 600)


def test_positions_fall_back_to_the_last_daily_close(holding, stock):
    DailyBar.objects.create(
        stock=stock, date=TRADING_DATE, open=1, high=71_000, low=1, close=71_000, volume=1, source="fdr"
    )
    [row] = position_list_for_account(account_id=holding.pk)
    assert (row["last_price"], row["price_source"], row["unrealized_pnl"]) == (71_000, "daily_close", 6_000)


def test_the_kis_close_is_preferred_on_the_same_day(holding, stock):
    for source, close in (("fdr", 71_000), ("kis", 71_500)):
        DailyBar.objects.create(
            stock=stock, date=TRADING_DATE, open=1, high=close, low=1, close=close, volume=1, source=source
        )
    [row] = position_list_for_account(account_id=holding.pk)
    assert row["last_price"] == 71_500


def test_flat_positions_are_listed_only_on_request(place, tick, account):
    place("BUY", 1, 70_000)
    order_fill_apply(tick=tick(70_000, 1))
    place("SELL", 1, 70_000)
    order_fill_apply(tick=tick(70_000, 1))
    assert position_list_for_account(account_id=account.pk) == []
    [flat] = position_list_for_account(account_id=account.pk, include_closed=True)
    assert (flat["quantity"], flat["market_value"], flat["fees_paid"], flat["taxes_paid"]) == (0, 0, 20, 140)


def test_account_balance(holding, clean_redis, place):
    clean_redis.hset(keys.QUOTES_HASH, "005930", json.dumps({"code": "005930", "price": 72_000, "time": "x"}))
    place("BUY", 1, 60_000)  # reserves 60,009
    balance = account_balance(account_id=holding.pk)
    cash = 10_000_000 - 700_105 + 300_000 - 45 - 600
    assert balance == {
        **balance,
        "cash": cash,
        "reserved_cash": 60_009,
        "free_cash": cash - 60_009,
        "positions_value": 432_000,
        "positions_cost": 420_000,
        "equity": cash + 432_000,
        "realized_pnl": 20_000,
        "unrealized_pnl": 12_000,
        "fees_paid": 150,
        "taxes_paid": 600,
        "net_pnl": cash + 432_000 - 10_000_000,
        "return_pct": Decimal("0.31"),  # 31,250 / 10,000,000
    }
    total, initial = reconcile(holding.pk)
    assert total == initial


def test_tax_rows_are_seeded_from_the_reference_table():
    from apps.trading.orders.models import TransactionTaxRate

    rows = {(r.market, r.effective_from.year): r.rate for r in TransactionTaxRate.objects.all()}
    assert rows[("KOSPI", 2025)] == rows[("KOSDAQ", 2025)] == Decimal("0.0015")
    assert rows[("KOSPI", 2026)] == rows[("KOSDAQ", 2026)] == Decimal("0.0020")
    assert rows[("KOSPI", 2024)] == Decimal("0.0018") and rows[("KONEX", 2023)] == Decimal("0.0010")
    assert all(r.effective_from == dt.date(r.effective_from.year, 1, 1) for r in TransactionTaxRate.objects.all())
