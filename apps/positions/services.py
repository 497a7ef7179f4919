"""Position services: holdings change only here, by delta, on a row-locked position (see ``Position``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.core.db import update_rows
from apps.core.exceptions import ValidationFailed

from .models import Position


class InsufficientHolding(ValidationFailed):
    default_code = "insufficient_holding"


@transaction.atomic
def position_reserve(*, account_id: int, stock_id: int, quantity: int) -> None:
    """Hold ``quantity`` shares for an open sell in one conditional update (the row is locked only from
    there to the commit); ``InsufficientHolding`` beyond the free quantity."""
    updated = Position.objects.filter(
        account_id=account_id, stock_id=stock_id, quantity__gte=F("reserved_quantity") + quantity
    ).update(reserved_quantity=F("reserved_quantity") + quantity)
    if updated != 1:
        position = Position.objects.filter(account_id=account_id, stock_id=stock_id).first()
        free = position.free_quantity if position else 0
        raise InsufficientHolding(
            f"Cannot sell {quantity} shares: {free} free (held minus pending sells).",
            fields={"quantity": [f"At most {free}."]},
        )


@transaction.atomic
def position_release(*, account_id: int, stock_id: int, quantity: int) -> None:
    """Give back ``quantity`` shares an open sell held (cancel, expiry)."""
    if quantity <= 0:
        return
    updated = Position.objects.filter(account_id=account_id, stock_id=stock_id, reserved_quantity__gte=quantity).update(
        reserved_quantity=F("reserved_quantity") - quantity
    )
    if updated != 1:
        raise AssertionError(f"position {account_id}/{stock_id} holds less than {quantity} reserved shares")


@dataclass(frozen=True, slots=True)
class PositionFill:
    """One execution as it changes a position (amounts in whole KRW)."""

    account_id: int
    side: str  # "BUY" | "SELL"
    price: int
    quantity: int
    commission: int
    tax: int = 0


_FILL_FIELDS = (
    "quantity", "reserved_quantity", "cost_basis", "realized_pnl", "fees_paid", "taxes_paid", "avg_price", "updated_at",
)  # fmt: skip


def _lock_for_stock(*, stock_id: int, account_ids: list[int]) -> dict[int, Position]:
    rows = (
        Position.objects.select_for_update(no_key=True)
        .filter(stock_id=stock_id, account_id__in=account_ids)
        .order_by("id")
    )
    return {p.account_id: p for p in rows}


@transaction.atomic(savepoint=False)  # inside the fill's transaction: no SAVEPOINT/RELEASE round trips
def position_fills_apply(*, stock_id: int, fills: Sequence[PositionFill]) -> list[int]:
    """Apply the executions of one stock, in order; return each one's realized P&L (0 for a buy).

    One lock query for every position involved (missing buy positions are created first), the arithmetic
    on the locked rows in memory, one set-based update. Buy: quantity += q, cost_basis += price × q. Sell (of
    shares already reserved by the order): quantity and reserved_quantity −= q, cost_basis −=
    cost_basis × q // quantity (all of it when closing), realized_pnl += price × q − that cost. Commission
    and tax go to ``fees_paid`` / ``taxes_paid`` only (the average-price convention in ``Position``).
    """
    if not fills:
        return []
    account_ids = sorted({f.account_id for f in fills})
    positions = _lock_for_stock(stock_id=stock_id, account_ids=account_ids)
    missing = {f.account_id for f in fills if f.side == "BUY"} - positions.keys()
    if missing:
        Position.objects.bulk_create(
            [Position(account_id=a, stock_id=stock_id) for a in sorted(missing)], ignore_conflicts=True
        )
        positions = _lock_for_stock(stock_id=stock_id, account_ids=account_ids)
    realized_list: list[int] = []
    for fill in fills:
        position = positions.get(fill.account_id)
        amount = fill.price * fill.quantity
        if fill.side == "BUY":
            position.quantity += fill.quantity
            position.cost_basis += amount
            position.fees_paid += fill.commission
            realized = 0
        else:
            if position is None or position.reserved_quantity < fill.quantity or position.quantity < fill.quantity:
                raise AssertionError(
                    f"sell fill of {fill.quantity} exceeds the reserved holding of {fill.account_id}/{stock_id}"
                )
            if fill.quantity == position.quantity:
                removed = position.cost_basis
            else:
                removed = position.cost_basis * fill.quantity // position.quantity
            realized = amount - removed
            position.quantity -= fill.quantity
            position.reserved_quantity -= fill.quantity
            position.cost_basis -= removed
            position.realized_pnl += realized
            position.fees_paid += fill.commission
            position.taxes_paid += fill.tax
        position.avg_price = Position.average(position.cost_basis, position.quantity)
        realized_list.append(realized)
    now = timezone.now()
    changed = [positions[a] for a in account_ids if a in positions]
    for position in changed:
        position.updated_at = now
    update_rows(
        Position, [{"pk": p.pk, **{f: getattr(p, f) for f in _FILL_FIELDS}} for p in changed], assign=_FILL_FIELDS
    )
    return realized_list


def position_apply_fill(
    *, account_id: int, stock_id: int, side: str, price: int, quantity: int, commission: int, tax: int = 0
) -> int:
    """Apply one execution to the position; return the realized P&L of a sell (0 for a buy)."""
    fill = PositionFill(account_id, side, price, quantity, commission, tax)
    return position_fills_apply(stock_id=stock_id, fills=[fill])[0]
