"""Pushes order snapshots to the owner's Channels group ``account.<id>.orders`` after commit.

Only ever called through ``orders_push_on_commit``: the message leaves after the transaction commits
(never from inside it), carries the full order as committed (re-read from the database), and a failure to
publish is logged, never raised (the channel layer is not a durable queue; clients re-fetch on reconnect).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction

logger = logging.getLogger(__name__)

EVENT_TYPE = "order.update"


def account_orders_group(account_id: int) -> str:
    return f"account.{int(account_id)}.orders"


def order_snapshot(order) -> dict:
    """The full, JSON-ready state of an order (``order.stock`` must be loaded)."""
    return {
        "id": order.pk,
        "account_id": order.account_id,
        "code": order.stock.code,
        "name": order.stock.name,
        "side": order.side,
        "order_type": order.order_type,
        "quantity": order.quantity,
        "limit_price": order.limit_price,
        "status": order.status,
        "filled_quantity": order.filled_quantity,
        "remaining_quantity": order.remaining_quantity,
        "avg_fill_price": str(order.avg_fill_price) if order.avg_fill_price is not None else None,
        "filled_amount": order.filled_amount,
        "commission_total": order.commission_total,
        "tax_total": order.tax_total,
        "reserved_cash": order.reserved_cash,
        "reject_reason": order.reject_reason,
        "client_order_id": order.client_order_id,
        "trading_date": order.trading_date.isoformat(),
        "queued": order.queued,
        "created_at": order.created_at.isoformat(),
        "updated_at": order.updated_at.isoformat(),
        "closed_at": order.closed_at.isoformat() if order.closed_at else None,
    }


def orders_push(order_ids: Iterable[int]):
    """Queue one ``order.update`` per order for its account group (snapshots read now, in one query); the
    sends leave from the process's sender loop (``apps.core.realtime``). Returns the batch's future, or
    None when there was nothing to send."""
    from apps.core.realtime import group_send_many

    from .models import Order

    ids = sorted(set(order_ids))
    if not ids:
        return None
    messages = [
        (account_orders_group(order.account_id), {"type": EVENT_TYPE, "order": order_snapshot(order)})
        for order in Order.objects.select_related("stock").filter(id__in=ids).order_by("id")
    ]
    return group_send_many(messages, what="order push")


def orders_push_on_commit(order_ids: Iterable[int]) -> None:
    ids = list(order_ids)
    if ids:
        transaction.on_commit(lambda: orders_push(ids))


def orders_push_snapshots_on_commit(orders: Iterable) -> None:
    """Like ``orders_push_on_commit`` for orders whose instances hold exactly what the transaction writes
    (the fill path: locked rows updated from these instances, ``stock`` loaded): the snapshots are taken
    now and sent after the commit, sparing the fill engine a re-read."""
    from apps.core.realtime import group_send_many

    messages = [(account_orders_group(o.account_id), {"type": EVENT_TYPE, "order": order_snapshot(o)}) for o in orders]
    if messages:
        transaction.on_commit(lambda: group_send_many(messages, what="order push"))
