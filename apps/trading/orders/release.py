"""Closing open orders without a fill: cancellation (by the user or an account reset) and expiry at the end of
the trading day. Each returns what the order reserved, under the row locks of ``lock_objects``."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.core.exceptions import parse_id
from apps.core.typing import AnyUser
from apps.live.nxt import nxt_eligible_codes
from apps.marketdata.market_clock import MarketNow
from apps.marketdata.selectors import krx_calendar
from apps.trading.accounts.models import PaperAccount, PaperAccountReset
from apps.trading.accounts.selectors import AccountNotFound, paper_account_for_user
from apps.trading.positions.models import Position
from apps.trading.positions.services import (
    position_release,
)

from . import lock_objects
from .demand import demand_prune_on_commit
from .exceptions import (
    OrderNotCancellable,
    OrderNotFound,
)
from .models import OPEN_STATUSES, AppliedFillTick, BracketLeg, Order, OrderStatus, Side, TriggerState
from .realtime import orders_push_on_commit
from .sessions import order_due_at

logger = logging.getLogger(__name__)


APPLIED_TICK_RETENTION = timedelta(days=7)  # applied-tick markers older than this are pruned by expiry


# --- release (cancel, expiry, reset) ---------------------------------------------------------------------


def held_shares(order: Order) -> int:
    """Shares an open SELL holds on its position: its remainder, except a bracket leg still waiting for its entry
    (nothing yet) and a leg whose OCO peer is still open (the peer holds the pair's one reservation)."""
    if order.side != Side.SELL or order.trigger_state == TriggerState.WAITING:
        return 0
    if order.oco_peer_id is not None and Order.objects.filter(pk=order.oco_peer_id, status__in=OPEN_STATUSES).exists():
        return 0
    return order.remaining_quantity


def close_open_order(order: Order, *, status: str, reason: str = "") -> None:
    """Close a locked open order: release what it still holds, set its final status (account locked)."""
    if order.side == Side.BUY:
        if order.reserved_cash:
            PaperAccount.objects.filter(pk=order.account_id).update(
                reserved_cash=F("reserved_cash") - order.reserved_cash
            )
    else:
        position_release(account_id=order.account_id, stock_id=order.stock_id, quantity=held_shares(order))
    order.status = status
    order.reserved_cash = 0
    order.closed_at = timezone.now()
    if reason:
        order.reject_reason = reason
    order.save(update_fields=["status", "reserved_cash", "closed_at", "reject_reason", "updated_at"])


def waiting_legs_cancel(*, entry_ids: list[int]) -> list[int]:
    """Cancel the still-waiting legs of bracket entries that closed without filling completely (they hold
    nothing: no release); the caller holds their locks. Returns their ids."""
    if not entry_ids:
        return []
    legs = Order.objects.filter(parent_id__in=entry_ids, status__in=OPEN_STATUSES, trigger_state=TriggerState.WAITING)
    ids = sorted(legs.values_list("pk", flat=True))
    Order.objects.filter(pk__in=ids).update(
        status=OrderStatus.CANCELLED, closed_at=timezone.now(), updated_at=timezone.now(), reject_reason="entry closed"
    )
    return ids


@transaction.atomic
def order_cancel(*, order_id: int, user: AnyUser = None) -> Order:
    """Cancel the unfilled remainder of a pending or partially filled order, releasing exactly what it holds.

    The order row is locked before the account (the fill path's order), so a fill in flight completes first
    and the cancel releases only what is still reserved. ``order_not_cancellable`` (409) when it is closed.

    Bracket orders lock their group with them, in id order: cancelling one leg leaves the other (which keeps
    the pair's one reservation); cancelling an entry that has not filled completely cancels its waiting legs.
    """
    pk = parse_id(order_id)
    group = lock_objects.order_group_ids(order_id=pk) if pk else []
    locked = {o.pk: o for o in lock_objects.orders_lock(ids=group)}
    order = locked.get(pk) if pk else None
    if order is None or (user is not None and order.account.user_id != user.pk):
        raise OrderNotFound(f"Order {order_id} not found.")
    if not order.is_open:
        raise OrderNotCancellable(f"Order {order_id} is {order.status} and cannot be cancelled.")
    lock_objects.accounts_lock(ids=[order.account_id])
    close_open_order(order, status=OrderStatus.CANCELLED)
    closed = [order.pk]
    if order.bracket_leg == BracketLeg.ENTRY:
        for leg in locked.values():
            if leg.parent_id == order.pk and leg.is_open and leg.trigger_state == TriggerState.WAITING:
                close_open_order(leg, status=OrderStatus.CANCELLED, reason=f"entry #{order.pk} cancelled")
                closed.append(leg.pk)
    demand_prune_on_commit({order.stock.code})
    orders_push_on_commit(closed)
    return order


@transaction.atomic
def orders_cancel_for_account(*, account_id: int, reason: str = "") -> list[int]:
    """Cancel every open order of an account (used by the reset); return their ids."""
    orders = lock_objects.orders_lock_open(account_id=account_id)
    lock_objects.accounts_lock(ids=[account_id])
    for order in orders:
        close_open_order(order, status=OrderStatus.CANCELLED, reason=reason)
    demand_prune_on_commit({o.stock.code for o in orders})
    orders_push_on_commit([o.pk for o in orders])
    return [o.pk for o in orders]


@transaction.atomic
def orders_expire(*, trading_date: date, ids: Iterable[int] | None = None) -> int:
    """Expire the open DAY orders of sessions up to ``trading_date`` (call after that session's close), or only
    those among ``ids``.

    Releases their reservations; returns how many expired. Also prunes applied-tick markers older than
    ``APPLIED_TICK_RETENTION``.
    """
    orders = lock_objects.orders_lock_open(trading_date_lte=trading_date, ids=ids)
    if orders:
        lock_objects.accounts_lock(ids={o.account_id for o in orders})
        for order in orders:
            close_open_order(order, status=OrderStatus.EXPIRED)
        demand_prune_on_commit({o.stock.code for o in orders})
        orders_push_on_commit([o.pk for o in orders])
    AppliedFillTick.objects.filter(applied_at__lt=timezone.now() - APPLIED_TICK_RETENTION).delete()
    return len(orders)


def orders_expire_due(*, market: MarketNow) -> int:
    """Expire what is due at ``market``: earlier sessions' orders always; today's once the last phase that can
    fill them has ended (``sessions.order_due_at``: KRX regular orders at the close, PRE_CLOSE_PRICE at 08:40,
    POST_CLOSE_PRICE at 16:00, AFTER_HOURS_SINGLE at 18:00, orders that may trade on NXT at 20:00, each plus
    ``sessions.EXPIRY_GRACE`` for its last print to arrive)."""
    today = market.trading_date
    expired = orders_expire(trading_date=(today or market.now.date()) - timedelta(days=1))
    if today is None:
        return expired
    calendar = krx_calendar()
    due: dict[tuple[str, str, bool], datetime] = {}
    ids: list[int] = []
    on_nxt = nxt_eligible_codes()
    rows = Order.objects.filter(status__in=OPEN_STATUSES, trading_date=today).values_list(
        "pk", "order_type", "route", "stock__code"
    )
    for pk, order_type, route, code in rows:
        key = (order_type, route, code in on_nxt)
        if key not in due:
            due[key] = order_due_at(
                order_type=order_type, route=route, nxt_eligible=key[2], day=today, calendar=calendar
            )
        if market.now >= due[key]:
            ids.append(pk)
    if ids:
        expired += orders_expire(trading_date=today, ids=ids)
    return expired


@transaction.atomic
def paper_account_reset(*, account_id: int, user: AnyUser = None, reset_by: AnyUser = None) -> PaperAccount:
    """Return an account to its initial state: cancel its open orders, clear its positions, restore cash.

    Writes a ``PaperAccountReset`` audit row with what the account held just before. Lock order follows
    the orders domain (open orders, then the account, then positions) so a reset racing a fill or a cancel
    waits for it instead of deadlocking. Executions and closed orders stay as history. ``user`` given: the
    account must be theirs (``account_not_found`` otherwise). ``reset_by`` (default ``user``) is recorded in
    the audit row: staff resetting someone else's account from the admin.
    """
    if user is not None:
        paper_account_for_user(user=user, account_id=account_id)
    if parse_id(account_id) is None or not PaperAccount.objects.filter(pk=account_id).exists():
        raise AccountNotFound(f"Paper account {account_id} not found.")
    lock_objects.orders_lock_open(account_id=account_id)  # lock order: open orders, then the account
    account = PaperAccount.objects.select_for_update(no_key=True).get(pk=account_id)
    cash_before, reserved_before = account.cash, account.reserved_cash
    cancelled = orders_cancel_for_account(account_id=account_id, reason="account reset")
    positions = list(
        Position.objects.select_for_update(no_key=True).filter(account_id=account_id).select_related("stock")
    )
    audit = PaperAccountReset(
        account=account,
        reset_by=reset_by or user,
        initial_cash=account.initial_cash,
        cash_before=cash_before,
        reserved_cash_before=reserved_before,
        positions_cost_before=sum(p.cost_basis for p in positions),
        realized_pnl_before=sum(p.realized_pnl for p in positions),
        fees_paid_before=sum(p.fees_paid for p in positions),
        taxes_paid_before=sum(p.taxes_paid for p in positions),
        cancelled_orders=len(cancelled),
        positions=[
            {
                "code": p.stock.code,
                "quantity": p.quantity,
                "avg_price": str(p.avg_price),
                "cost_basis": p.cost_basis,
                "realized_pnl": p.realized_pnl,
                "fees_paid": p.fees_paid,
                "taxes_paid": p.taxes_paid,
            }
            for p in positions
        ],
    )
    audit.full_clean()
    audit.save()
    Position.objects.filter(account_id=account_id).delete()
    account.refresh_from_db()
    account.cash = account.initial_cash
    account.reserved_cash = 0
    account.reset_at = timezone.now()
    account.full_clean()
    account.save(update_fields=["cash", "reserved_cash", "reset_at", "updated_at"])
    return account
