"""Celery tasks of the orders domain: thin wrappers calling one service each (ids in, no business logic)."""

from __future__ import annotations

from celery import shared_task

from apps.marketdata.market_clock import market_now
from apps.marketdata.selectors import krx_calendar

from .demand import order_demand_sync
from .release import orders_expire_due


@shared_task(name="orders.expire_due")
def orders_expire_due_task() -> int:
    """Expire the DAY orders whose session has closed, per the market clock (idempotent)."""

    return orders_expire_due(market=market_now(krx_calendar()))


@shared_task(name="orders.demand_sync")
def order_demand_sync_task() -> list[str]:
    """Rebuild ORDERS_SET (codes with open orders) from the database (idempotent)."""

    return sorted(order_demand_sync())
