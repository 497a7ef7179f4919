"""Money and price rules of paper orders: commission, reservations, reference prices, transaction tax.

All amounts are integer KRW, truncated to the won (krx-rules §3.6); rates are Decimals.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal

from apps.core.krx.calendar import KrxCalendar
from apps.live.reference import reference_stored
from apps.marketdata.selectors import krx_calendar

from .models import TransactionTaxRate

SETTLEMENT_LAG = 2  # T+2 (krx-rules §3.6)


def truncate_won(value: Decimal) -> int:
    """Whole won, truncated toward zero (amounts here are never negative)."""
    return int(value.to_integral_value(rounding=ROUND_DOWN))


def commission_for(amount: int, rate: Decimal) -> int:
    """Commission of one execution: ``truncate(amount × rate)``."""
    return truncate_won(Decimal(amount) * rate)


def tax_for(amount: int, rate: Decimal) -> int:
    """Transaction tax of one sell execution: ``truncate(amount × rate)``."""
    return truncate_won(Decimal(amount) * rate)


def buy_reservation(price: int, quantity: int, rate: Decimal) -> int:
    """Cash an open buy of ``quantity`` at up to ``price`` holds: ``price × qty + commission``.

    Super-additive (``f(a + b) >= f(a) + f(b)``) because truncation is, so releasing
    ``f(remaining_before) − f(remaining_after)`` on a fill always covers the fill's cost and commission.
    """
    if quantity <= 0:
        return 0
    amount = price * quantity
    return amount + commission_for(amount, rate)


def reference_price(*, stock_id: int, trading_date: date, calendar: KrxCalendar | None = None) -> int | None:
    """The stored base price of ``trading_date`` (no network): the previous trading day's close, else a base
    price stored for the day with its source (``apps.live.reference``)."""

    found = reference_stored(stock_id=stock_id, trading_date=trading_date, calendar=calendar)
    return found.price if found is not None else None


@functools.lru_cache(maxsize=64)
def settlement_date(trade_date: date) -> date:
    """The T+2 settlement date of a trade on ``trade_date`` (the KRX calendar; cached per day)."""

    calendar = krx_calendar()
    day, counted = trade_date, 0
    for _ in range(40):
        day += timedelta(days=1)
        if calendar.is_trading_day(day):
            counted += 1
            if counted == SETTLEMENT_LAG:
                return day
    raise ValueError(f"no settlement date within 40 days of {trade_date}")


def transaction_tax_rate(*, market: str, trade_date: date) -> Decimal:
    """The sell-side tax rate for a trade on ``trade_date``: the row in force on its settlement date.

    A market without any row (none seeded) pays no tax.
    """
    return transaction_tax_rate_send(market=market, trade_date=trade_date)()


def transaction_tax_rate_send(*, market: str, trade_date: date) -> Callable[[], Decimal]:
    """``transaction_tax_rate`` without waiting for the answer: in a pipeline (``apps.core.db.pipeline``)
    the query travels with the next statement whose result is read. Returns a function that reads it."""
    from django.db import connection

    on = settlement_date(trade_date)
    query = (
        TransactionTaxRate.objects.filter(market=market, effective_from__lte=on)
        .order_by("-effective_from")
        .values_list("rate", flat=True)[:1]
    )
    sql, params = query.query.sql_with_params()
    cursor = connection.cursor()
    cursor.execute(sql, params)

    def read() -> Decimal:
        row = cursor.fetchone()
        cursor.close()
        return Decimal(row[0]) if row is not None else Decimal("0")

    return read
