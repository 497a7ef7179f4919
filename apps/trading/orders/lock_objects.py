"""Row locks of the orders domain, always taken in one global order to rule out deadlocks:

    orders (by id)  ->  paper accounts (by id)  ->  positions

Every service that changes money or quantities locks through here first, then changes the locked rows
(``F()`` updates or saves of the locked instance). Must run inside a transaction.

The locks are ``FOR NO KEY UPDATE``: they exclude every other writer of the row, but not the ``KEY SHARE``
lock PostgreSQL takes on a referenced row when it checks a foreign key. Django's foreign keys are
``DEFERRABLE INITIALLY DEFERRED``, so an order placement checks its order's account reference at COMMIT,
after it reserved shares on a position; with ``FOR UPDATE`` here a fill holding the account and waiting
for that position would deadlock with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date

from django.db import connection
from django.db.backends.utils import CursorWrapper

from apps.core.db import concrete_columns, rows_as_instances
from apps.marketdata.models import Stock
from apps.trading.accounts.models import PaperAccount

from .models import OPEN_STATUSES, Order


def order_lock(*, order_id: int) -> Order | None:
    return (
        Order.objects.select_for_update(of=("self",), no_key=True)
        .select_related("stock", "account")
        .filter(pk=order_id)
        .first()
    )


def order_group_ids(*, order_id: int) -> list[int]:
    """``order_id`` with its OCO peer and (a bracket entry) its legs, read without a lock: what a cancel locks
    (``orders_lock``), in id order, before touching any of them."""
    row = Order.objects.filter(pk=order_id).values_list("oco_peer_id", "bracket_leg").first()
    if row is None:
        return []
    ids = {order_id, *([row[0]] if row[0] is not None else [])}
    if row[1] == "ENTRY":
        ids.update(Order.objects.filter(parent_id=order_id).values_list("pk", flat=True))
    return sorted(ids)


def orders_lock(*, ids: Iterable[int]) -> list[Order]:
    """Lock these orders (open or not) in id order, with ``stock`` and ``account`` loaded."""
    return list(
        Order.objects.select_for_update(of=("self",), no_key=True)
        .select_related("stock", "account")
        .filter(pk__in=sorted(set(ids)))
        .order_by("id")
    )


def orders_lock_open(
    *, account_id: int | None = None, trading_date_lte: date | None = None, ids: Iterable[int] | None = None
) -> list[Order]:
    """Lock the still-open orders among the filter, in id order (rows closed meanwhile are skipped). The fill
    path locks by id with ``orders_lock_open_send``."""
    qs = (
        Order.objects.select_for_update(of=("self",), no_key=True)
        .select_related("stock")
        .filter(status__in=OPEN_STATUSES)
    )
    if account_id is not None:
        qs = qs.filter(account_id=account_id)
    if trading_date_lte is not None:
        qs = qs.filter(trading_date__lte=trading_date_lte)
    if ids is not None:
        qs = qs.filter(pk__in=sorted(set(ids)))
    return list(qs.order_by("id"))


def orders_lock_open_send(*, ids: Iterable[int]) -> Callable[[], list[Order]]:
    """Lock the still-open orders among ``ids`` (id order, rows closed meanwhile skipped) without waiting for
    the answer: in a pipeline (``apps.core.db.pipeline``) the statement travels with the locks sent after
    it. Returns a function that reads the answer: the orders, each with its ``stock`` loaded."""
    columns = concrete_columns(Order, "o") + concrete_columns(Stock, "s")
    cursor = connection.cursor()
    cursor.execute(
        f"SELECT {', '.join(columns)} FROM {Order._meta.db_table} o JOIN {Stock._meta.db_table} s ON s.id = o.stock_id "
        "WHERE o.id = ANY(%s) AND o.status = ANY(%s) ORDER BY o.id FOR NO KEY UPDATE OF o",
        [sorted(set(ids)), list(OPEN_STATUSES)],
    )

    def read() -> list[Order]:
        rows = cursor.fetchall()
        cursor.close()
        orders = rows_as_instances(Order, rows)
        stocks = rows_as_instances(Stock, rows, offset=len(Order._meta.concrete_fields))
        for order, stock in zip(orders, stocks, strict=True):
            order.stock = stock
        return orders

    return read


def accounts_lock_send(*, ids: Iterable[int]) -> CursorWrapper:
    """Lock these accounts (id order) without reading them back: in a pipeline (``apps.core.db.pipeline``)
    the statement travels with the next one whose result is read. Returns the cursor (close it after)."""
    cursor = connection.cursor()
    cursor.execute(
        f"SELECT id FROM {PaperAccount._meta.db_table} WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE",
        [sorted(set(ids))],
    )
    return cursor


def accounts_lock(*, ids: Iterable[int]) -> dict[int, PaperAccount]:
    return {a.pk: a for a in PaperAccount.objects.select_for_update(no_key=True).filter(pk__in=set(ids)).order_by("id")}
