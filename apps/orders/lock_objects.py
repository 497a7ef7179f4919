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

from collections.abc import Iterable

from apps.accounts.models import PaperAccount

from .models import OPEN_STATUSES, Order


def order_lock(*, order_id: int) -> Order | None:
    return (
        Order.objects.select_for_update(of=("self",), no_key=True)
        .select_related("stock", "account")
        .filter(pk=order_id)
        .first()
    )


def orders_lock_open(*, ids: Iterable[int] | None = None, account_id: int | None = None, trading_date_lte=None):
    """Lock the still-open orders among the filter, in id order (rows closed meanwhile are skipped)."""
    qs = (
        Order.objects.select_for_update(of=("self",), no_key=True)
        .select_related("stock")
        .filter(status__in=OPEN_STATUSES)
    )
    if ids is not None:
        qs = qs.filter(id__in=list(ids))
    if account_id is not None:
        qs = qs.filter(account_id=account_id)
    if trading_date_lte is not None:
        qs = qs.filter(trading_date__lte=trading_date_lte)
    return list(qs.order_by("id"))


def accounts_lock_send(*, ids: Iterable[int]):
    """Lock these accounts (id order) without reading them back: in a pipeline (``apps.core.db.pipeline``)
    the statement travels with the next one whose result is read. Returns the cursor (close it after)."""
    from django.db import connection

    cursor = connection.cursor()
    cursor.execute(
        f"SELECT id FROM {PaperAccount._meta.db_table} WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE",
        [sorted(set(ids))],
    )
    return cursor


def accounts_lock(*, ids: Iterable[int]) -> dict[int, PaperAccount]:
    return {a.pk: a for a in PaperAccount.objects.select_for_update(no_key=True).filter(pk__in=set(ids)).order_by("id")}
