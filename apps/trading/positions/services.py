"""Position services: holdings change only here, by delta, on a row-locked position (see ``Position``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from apps.core.db import concrete_columns, rows_as_instances, update_rows
from apps.core.exceptions import ValidationFailed

from .models import Position


class InsufficientHolding(ValidationFailed):
    default_code = "insufficient_holding"


def position_reserve_guard(*, account_id: int, stock_id: int, quantity: int) -> tuple[str, list[object]]:
    """The conditional update that holds ``quantity`` shares for an open sell: it changes the position only
    when ``quantity − reserved_quantity >= quantity`` (``RETURNING`` one row then, none otherwise). Run by
    the order placement in the statement that inserts the order (``apps.core.db.insert_guarded``), so the
    row is locked only while that statement runs."""
    table = connection.ops.quote_name(Position._meta.db_table)
    sql = (
        f"UPDATE {table} SET reserved_quantity = reserved_quantity + %s "
        "WHERE account_id = %s AND stock_id = %s AND quantity >= reserved_quantity + %s RETURNING id"
    )
    return sql, [quantity, account_id, stock_id, quantity]


def insufficient_holding(*, account_id: int, stock_id: int, quantity: int) -> InsufficientHolding:
    """The error for a sell of ``quantity`` beyond the free holding (read after the guard refused it)."""
    position = Position.objects.filter(account_id=account_id, stock_id=stock_id).first()
    free = position.free_quantity if position else 0
    return InsufficientHolding(
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


#: A ``PositionFill`` side that only holds shares for open sells (no execution).
HOLD = "HOLD"


@dataclass(frozen=True, slots=True)
class PositionFill:
    """One execution as it changes a position (amounts in whole KRW)."""

    account_id: int
    side: str  # "BUY" | "SELL" | HOLD
    price: int
    quantity: int
    commission: int
    tax: int = 0
    stock_id: int = field(kw_only=True)


_FILL_FIELDS = (
    "quantity", "reserved_quantity", "cost_basis", "realized_pnl", "fees_paid", "taxes_paid", "avg_price", "updated_at",
)  # fmt: skip


def positions_lock_send(pairs: set[tuple[int, int]]) -> Callable[[], dict[tuple[int, int], Position]]:
    """Lock the positions of these (stock, account) pairs in id order without waiting for the answer: in a
    pipeline (``apps.core.db.pipeline``) the statement travels with the next one whose result is read.
    Returns a function that reads the answer, keyed by the pair. Plain SQL: the fill engine sends it for
    every fill."""

    if not pairs:
        return lambda: {}
    cursor = connection.cursor()
    cursor.execute(
        f"SELECT {', '.join(concrete_columns(Position, 'p'))} FROM {Position._meta.db_table} p "
        f"WHERE (p.stock_id, p.account_id) IN (VALUES {', '.join(['(%s, %s)'] * len(pairs))}) "
        "ORDER BY p.id FOR NO KEY UPDATE",
        [value for pair in sorted(pairs) for value in pair],
    )

    def read() -> dict[tuple[int, int], Position]:
        rows = cursor.fetchall()
        cursor.close()
        return {(p.stock_id, p.account_id): p for p in rows_as_instances(Position, rows)}

    return read


def _lock_positions(pairs: set[tuple[int, int]]) -> dict[tuple[int, int], Position]:
    """Lock the positions of these (stock, account) pairs in id order; keyed by the pair."""
    return positions_lock_send(pairs)()


@transaction.atomic(savepoint=False)  # inside the fill's transaction: no SAVEPOINT/RELEASE round trips
def position_fills_apply(
    *, fills: Sequence[PositionFill], locked: dict[tuple[int, int], Position] | None = None
) -> list[int]:
    """Apply executions, in order; return each one's realized P&L (0 for a buy).

    The positions involved are locked in one query, whatever the stocks, unless the caller already locked
    them (``locked``, keyed by (stock, account); it may hold more); missing buy positions are created and
    locked first. Then the arithmetic on the locked rows in memory, and one set-based update. Buy: quantity
    += q, cost_basis += price × q. Sell (of shares already reserved by the order): quantity and
    reserved_quantity −= q, cost_basis −= cost_basis × q // quantity (all of it when closing), realized_pnl
    += price × q − that cost. Commission and tax go to ``fees_paid`` / ``taxes_paid`` only (the
    average-price convention in ``Position``).

    A ``HOLD`` entry (no execution) holds ``quantity`` more shares for new open sells at its place in the
    sequence (the protective legs of a bracket whose entry the fills before it completed); never beyond the
    holding. Its realized P&L is 0.
    """
    if not fills:
        return []
    pairs = {(f.stock_id, f.account_id) for f in fills}
    positions = _lock_positions(pairs) if locked is None else {k: v for k, v in locked.items() if k in pairs}
    missing = {(f.stock_id, f.account_id) for f in fills if f.side == "BUY"} - positions.keys()
    if missing:
        Position.objects.bulk_create(
            [Position(stock_id=s, account_id=a) for s, a in sorted(missing)], ignore_conflicts=True
        )
        positions.update(_lock_positions(missing))
    realized_list: list[int] = []
    for fill in fills:
        position = positions.get((fill.stock_id, fill.account_id))
        amount = fill.price * fill.quantity
        if position is None:
            raise AssertionError(f"no position row for {fill.account_id}/{fill.stock_id} after the upsert")
        if fill.side == HOLD:
            if position.reserved_quantity + fill.quantity > position.quantity:
                raise AssertionError(f"cannot hold {fill.quantity} more shares of {fill.account_id}/{fill.stock_id}")
            position.reserved_quantity += fill.quantity
            realized_list.append(0)
            continue
        if fill.side == "BUY":
            position.quantity += fill.quantity
            position.cost_basis += amount
            position.fees_paid += fill.commission
            realized = 0
        else:
            if position.reserved_quantity < fill.quantity or position.quantity < fill.quantity:
                raise AssertionError(
                    f"sell fill of {fill.quantity} exceeds the reserved holding of {fill.account_id}/{fill.stock_id}"
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
    changed = sorted(positions.values(), key=lambda p: p.pk)
    for position in changed:
        position.updated_at = now
    update_rows(
        Position, [{"pk": p.pk, **{f: getattr(p, f) for f in _FILL_FIELDS}} for p in changed], assign=_FILL_FIELDS
    )
    return realized_list
