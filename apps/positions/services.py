"""Position services: holdings change only here, by delta, on a row-locked position (see ``Position``)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F

from apps.core.exceptions import ValidationFailed

from .models import Position


class InsufficientHolding(ValidationFailed):
    default_code = "insufficient_holding"


def _lock(*, account_id: int, stock_id: int) -> Position | None:
    return Position.objects.select_for_update().filter(account_id=account_id, stock_id=stock_id).first()


@transaction.atomic
def position_reserve(*, account_id: int, stock_id: int, quantity: int) -> Position:
    """Hold ``quantity`` shares for an open sell; ``InsufficientHolding`` beyond the free quantity."""
    position = _lock(account_id=account_id, stock_id=stock_id)
    free = position.free_quantity if position else 0
    if position is None or free < quantity:
        raise InsufficientHolding(
            f"Cannot sell {quantity} shares: {free} free (held minus pending sells).",
            fields={"quantity": [f"At most {free}."]},
        )
    Position.objects.filter(pk=position.pk).update(reserved_quantity=F("reserved_quantity") + quantity)
    position.refresh_from_db()
    return position


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


@transaction.atomic
def position_apply_fill(
    *, account_id: int, stock_id: int, side: str, price: int, quantity: int, commission: int, tax: int = 0
) -> int:
    """Apply one execution to the position; return the realized P&L of a sell (0 for a buy).

    Buy: quantity += q, cost_basis += price × q. Sell (of shares already reserved by the order):
    quantity and reserved_quantity −= q, cost_basis −= cost_basis × q // quantity (all of it when
    closing), realized_pnl += price × q − that cost. Commission and tax go to ``fees_paid`` /
    ``taxes_paid`` only (the average-price convention in ``Position``).
    """
    amount = price * quantity
    if side == "BUY":
        position = _lock(account_id=account_id, stock_id=stock_id)
        if position is None:
            position, _ = Position.objects.get_or_create(account_id=account_id, stock_id=stock_id)
            position = _lock(account_id=account_id, stock_id=stock_id)
        position.quantity += quantity
        position.cost_basis += amount
        position.fees_paid += commission
        position.avg_price = Position.average(position.cost_basis, position.quantity)
        position.save(update_fields=["quantity", "cost_basis", "fees_paid", "avg_price", "updated_at"])
        return 0

    position = _lock(account_id=account_id, stock_id=stock_id)
    if position is None or position.reserved_quantity < quantity or position.quantity < quantity:
        raise AssertionError(f"sell fill of {quantity} exceeds the reserved holding of {account_id}/{stock_id}")
    removed = (
        position.cost_basis if quantity == position.quantity else position.cost_basis * quantity // position.quantity
    )
    realized = amount - removed
    position.quantity -= quantity
    position.reserved_quantity -= quantity
    position.cost_basis -= removed
    position.realized_pnl += realized
    position.fees_paid += commission
    position.taxes_paid += tax
    position.avg_price = Position.average(position.cost_basis, position.quantity)
    position.save(
        update_fields=[
            "quantity", "reserved_quantity", "cost_basis", "realized_pnl", "fees_paid", "taxes_paid", "avg_price",
            "updated_at",
        ]
    )  # fmt: skip
    return realized
