"""Read-only queries of orders and executions, scoped to their owner."""

from __future__ import annotations

from datetime import date

from django.db.models import QuerySet

from apps.core.exceptions import parse_id
from apps.core.typing import AnyUser

from .exceptions import OrderNotFound
from .models import OPEN_STATUSES, Execution, Order


def order_list_for_user(
    *,
    user: AnyUser,
    status: str | None = None,
    code: str | None = None,
    date: date | None = None,
    account_id: int | None = None,
) -> QuerySet[Order]:
    """The user's orders, newest first. ``status`` may be a status or ``"OPEN"`` (pending + partially filled);
    ``date`` filters on the order's trading date."""
    qs = Order.objects.filter(account__user=user).select_related("stock", "account")
    if account_id is not None:
        qs = qs.filter(account_id=account_id)
    if status:
        status = status.upper()
        qs = qs.filter(status__in=OPEN_STATUSES) if status == "OPEN" else qs.filter(status=status)
    if code:
        qs = qs.filter(stock__code=code.strip().upper())
    if date is not None:
        qs = qs.filter(trading_date=date)
    return qs.order_by("-id")


def order_get_for_user(*, user: AnyUser, order_id: int) -> Order:
    order = None
    if parse_id(order_id) is not None:
        order = Order.objects.select_related("stock", "account").filter(pk=order_id, account__user=user).first()
    if order is None:
        raise OrderNotFound(f"Order {order_id} not found.")
    return order


def order_list_open(*, code: str | None = None) -> QuerySet[Order]:
    qs = Order.objects.filter(status__in=OPEN_STATUSES).select_related("stock")
    return qs.filter(stock__code=code) if code else qs


def execution_list_for_user(
    *, user: AnyUser, account_id: int | None = None, code: str | None = None
) -> QuerySet[Execution]:
    qs = Execution.objects.filter(account__user=user).select_related("stock", "order")
    if account_id is not None:
        qs = qs.filter(account_id=account_id)
    if code:
        qs = qs.filter(stock__code=code.strip().upper())
    return qs.order_by("-id")
