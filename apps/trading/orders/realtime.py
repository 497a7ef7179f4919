"""Pushes order snapshots to the owner's Channels group ``account.<id>.orders`` after commit.

Only ever called through ``orders_push_on_commit``: the message leaves after the transaction commits
(never from inside it), carries the full order as committed (re-read from the database), and a failure to
publish is logged, never raised (the channel layer is not a durable queue; clients re-fetch on reconnect).

The same committed snapshots are announced with the :data:`order_events_committed` signal, so apps layered
above trading (notifications) hear of fills, rejections and cancels without trading importing them. The
signal carries data only (snapshots); its receivers must return quickly (they run in the fill worker after
the commit: queue work, never do it) and their errors are logged, never raised to the fill path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import Future

from django.db import transaction
from django.dispatch import Signal

from apps.core.groups import account_orders_group
from apps.core.realtime import group_send_many
from apps.core.typing import JSONDict

from .models import Order

logger = logging.getLogger(__name__)

EVENT_TYPE = "order.update"

#: Sent after a commit with ``snapshots``: a list of :func:`order_snapshot` dicts of the orders the
#: transaction changed (an optional ``"event"`` key names an event the status alone does not tell, such as
#: ``"trigger"``). Receivers are called with ``send_robust``.
order_events_committed = Signal()


def order_events_announce(snapshots: list[JSONDict]) -> None:
    """Hand committed snapshots to the signal's receivers; a receiver's error is logged, never raised."""
    if not snapshots:
        return
    for receiver, result in order_events_committed.send_robust(sender=Order, snapshots=snapshots):
        if isinstance(result, Exception):
            logger.error("order event receiver failed", extra={"receiver": repr(receiver), "error": repr(result)})


def order_trigger_announce_on_commit(order: Order) -> None:
    """For conditional orders: announce after the commit that ``order`` (``stock`` loaded) was triggered."""
    snapshot = {**order_snapshot(order), "event": "trigger"}
    transaction.on_commit(lambda: order_events_announce([snapshot]))


def order_snapshot(order: Order) -> JSONDict:
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
        "trigger_type": order.trigger_type,
        "trigger_state": order.trigger_state,
        "trigger_price": order.trigger_price,
        "bracket_leg": order.bracket_leg,
        "parent_id": order.parent_id,
        "oco_peer_id": order.oco_peer_id,
        "created_at": order.created_at.isoformat(),
        "updated_at": order.updated_at.isoformat(),
        "closed_at": order.closed_at.isoformat() if order.closed_at else None,
    }


def orders_push(order_ids: Iterable[int]) -> Future[None] | None:
    """Queue one ``order.update`` per order for its account group (snapshots read now, in one query); the
    sends leave from the process's sender loop (``apps.core.realtime``). Returns the batch's future, or
    None when there was nothing to send."""

    ids = sorted(set(order_ids))
    if not ids:
        return None
    snapshots = [
        order_snapshot(order) for order in Order.objects.select_related("stock").filter(id__in=ids).order_by("id")
    ]
    messages = [(account_orders_group(s["account_id"]), {"type": EVENT_TYPE, "order": s}) for s in snapshots]
    future = group_send_many(messages, what="order push")
    order_events_announce(snapshots)
    return future


def orders_push_on_commit(order_ids: Iterable[int]) -> None:
    ids = list(order_ids)
    if ids:
        transaction.on_commit(lambda: orders_push(ids))


def orders_push_snapshots_on_commit(orders: Iterable[Order]) -> None:
    """Like ``orders_push_on_commit`` for orders whose instances hold exactly what the transaction writes
    (the fill path: locked rows updated from these instances, ``stock`` loaded): the snapshots are taken
    now and sent after the commit, sparing the fill engine a re-read."""
    snapshots = [order_snapshot(o) for o in orders]
    messages = [(account_orders_group(s["account_id"]), {"type": EVENT_TYPE, "order": s}) for s in snapshots]
    if messages:

        def after_commit() -> None:
            group_send_many(messages, what="order push")
            order_events_announce(snapshots)

        transaction.on_commit(after_commit)
