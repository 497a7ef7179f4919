"""Races on real PostgreSQL with separate connections (threads): duplicated ticks across fill workers,
cancels racing fills, and concurrent placements never overfill, double-spend or drive cash negative."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections
from django.db.models import Sum

from apps.core.exceptions import ApplicationError
from apps.trading.accounts.models import PaperAccount
from apps.trading.orders.fills import order_fill_apply, order_fills_apply
from apps.trading.orders.models import Execution, Order, OrderStatus
from apps.trading.orders.release import order_cancel

from .conftest import reconcile

pytestmark = pytest.mark.django_db(transaction=True)


def run_threads(*targets) -> list:
    """Run each target in its own thread (own DB connection), released together; re-raise their errors."""
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []
    results: list = [None] * len(targets)

    def wrap(i, fn):
        try:
            barrier.wait()
            results[i] = fn()
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=wrap, args=(i, fn)) for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    if errors:
        raise errors[0]
    return results


def _assert_consistent(account_id: int) -> None:
    account = PaperAccount.objects.get(pk=account_id)
    open_reserved = (
        Order.objects.filter(account_id=account_id, status__in=["PENDING", "PARTIALLY_FILLED"]).aggregate(
            s=Sum("reserved_cash")
        )["s"]
        or 0
    )
    assert 0 <= account.reserved_cash <= account.cash
    assert account.reserved_cash == open_reserved
    for order in Order.objects.filter(account_id=account_id):
        executed = order.executions.aggregate(q=Sum("quantity"))["q"] or 0
        assert executed == order.filled_quantity <= order.quantity
    total, initial = reconcile(account_id)
    assert total == initial


def test_two_fill_workers_applying_the_same_tick_fill_once(place, tick, account):
    order = place("BUY", 100, 70_000)
    t = tick(70_000, 30)
    results = run_threads(lambda: order_fill_apply(tick=t), lambda: order_fill_apply(tick=t))
    order.refresh_from_db()
    assert sorted(len(r) for r in results) == [0, 1]
    assert order.filled_quantity == 30
    assert Execution.objects.count() == 1
    _assert_consistent(account.pk)


def test_two_fill_workers_on_a_stream_with_duplicates_never_overfill(place, tick, account):
    order = place("BUY", 80, 70_000)
    second = place("BUY", 50, 70_000)
    ticks = [tick(70_000, 7) for _ in range(40)]  # 280 shares print; 130 wanted

    def worker(seq):
        return sum(len(order_fill_apply(tick=t)) for t in seq)

    run_threads(lambda: worker(ticks), lambda: worker(list(reversed(ticks))), lambda: worker(ticks[::2]))
    order.refresh_from_db()
    second.refresh_from_db()
    assert (order.filled_quantity, second.filled_quantity) == (80, 50)
    assert (order.status, second.status) == (OrderStatus.FILLED, OrderStatus.FILLED)
    # each tick's volume is shared once: no stream id carries more than 7 shares in total
    per_tick = Execution.objects.values("tick_stream_id").annotate(q=Sum("quantity"))
    assert max(row["q"] for row in per_tick) <= 7
    assert sum(row["q"] for row in per_tick) == 130
    _assert_consistent(account.pk)


def test_fill_workers_applying_overlapping_batches_never_overfill_or_deadlock(place, tick, account, make_stock):
    """Batches of two stocks' ticks, cut differently by three workers (as after a claim or a retry): each
    tick is applied once, whoever gets it first, and the books hold."""
    make_stock("000660")
    orders = [place("BUY", 40, 70_000), place("BUY", 30, 70_000, code="000660"), place("BUY", 25, 70_000)]
    ticks = [tick(70_000, 3, code="005930" if n % 2 else "000660") for n in range(60)]

    def worker(batches):
        return sum(len(order_fills_apply(ticks=batch)) for batch in batches)

    run_threads(
        lambda: worker([ticks[i : i + 7] for i in range(0, 60, 7)]),
        lambda: worker([ticks[i : i + 11] for i in range(0, 60, 11)][::-1]),
        lambda: worker([list(reversed(ticks[i : i + 5])) for i in range(0, 60, 5)]),
    )
    for order in orders:
        order.refresh_from_db()
    assert [o.filled_quantity for o in orders] == [40, 30, 25]
    per_tick = Execution.objects.values("tick_stream_id").annotate(q=Sum("quantity"))
    assert max(row["q"] for row in per_tick) <= 3
    assert sum(row["q"] for row in per_tick) == 95
    _assert_consistent(account.pk)


def test_cancel_racing_fills_releases_exactly_what_is_left(place, tick, account):
    for i in range(5):
        order = place("BUY", 100, 70_000)
        ticks = [tick(70_000, 3) for _ in range(20)]

        def fills(ticks=ticks):
            for t in ticks:
                order_fill_apply(tick=t)

        def cancel(order=order, delay=0.003 * i):
            time.sleep(delay)  # land the cancel at different points of the fill sequence
            try:
                return order_cancel(order_id=order.pk).status
            except ApplicationError as exc:  # the fills may have completed it first
                return exc.code

        run_threads(fills, cancel)
        order.refresh_from_db()
        assert order.status in (OrderStatus.CANCELLED, OrderStatus.FILLED)
        assert order.reserved_cash == 0
        _assert_consistent(account.pk)
    account.refresh_from_db()
    assert account.reserved_cash == 0
    spent = Execution.objects.filter(account=account).aggregate(a=Sum("amount"), c=Sum("commission"))
    assert account.cash == 10_000_000 - (spent["a"] or 0) - (spent["c"] or 0)


def test_concurrent_placements_never_reserve_more_than_the_cash(place, account):
    def buy():
        try:
            return place("BUY", 80, 70_000).pk  # 5,600,840 each: only one fits in 10,000,000
        except ApplicationError as exc:
            return exc.code

    results = run_threads(buy, buy, buy)
    assert sorted(map(str, results)).count("insufficient_cash") == 2
    account.refresh_from_db()
    assert account.reserved_cash == 5_600_840
    _assert_consistent(account.pk)


def test_concurrent_resubmissions_of_one_client_order_id_create_one_order(place, account):
    results = run_threads(*[lambda: place("BUY", 10, 70_000, client_order_id="dup").pk] * 4)
    assert len(set(results)) == 1
    account.refresh_from_db()
    assert account.reserved_cash == 700_105


def test_sell_fills_racing_a_cancel_never_oversell(place, tick, account, stock):
    from apps.trading.positions.models import Position

    from .conftest import give_shares

    give_shares(account, stock, 50, 60_000)
    order = place("SELL", 50, 70_000)
    ticks = [tick(70_000, 4) for _ in range(20)]
    run_threads(
        lambda: [order_fill_apply(tick=t) for t in ticks],
        lambda: [order_fill_apply(tick=t) for t in ticks],
        lambda: order_cancel(order_id=order.pk),
    )
    order.refresh_from_db()
    position = Position.objects.get(account=account)
    assert position.quantity == 50 - order.filled_quantity
    assert position.reserved_quantity == 0
    _assert_consistent(account.pk)


def test_a_sell_placement_committing_while_a_fill_holds_its_account_does_not_deadlock(place, account, stock):
    """The placement reserves shares (position row), then COMMIT checks its order's deferred foreign key to
    the account (a KEY SHARE lock); the fill holds that account and waits for the position. With FOR UPDATE
    account locks this is a deadlock; the fill's FOR NO KEY UPDATE lets the placement commit first."""
    from django.db import connection, transaction

    from apps.trading.orders import lock_objects
    from apps.trading.orders.models import Order
    from apps.trading.positions.services import _lock_positions, position_reserve_guard

    from .conftest import TRADING_DATE, give_shares

    give_shares(account, stock, 10, 60_000)
    holding = threading.Event()
    reserved = threading.Event()

    def fill_side():
        with transaction.atomic():
            lock_objects.accounts_lock(ids=[account.pk])
            holding.set()
            assert reserved.wait(10)
            return len(_lock_positions({(stock.pk, account.pk)}))  # waits for the placement

    def placement_side():
        assert holding.wait(10)
        with transaction.atomic():
            Order.objects.create(
                account_id=account.pk, stock_id=stock.pk, side="SELL", order_type="LIMIT", quantity=3,
                limit_price=70_000, commission_rate=account.commission_rate, trading_date=TRADING_DATE,
            )  # fmt: skip
            with connection.cursor() as cursor:  # the placement's reservation
                cursor.execute(*position_reserve_guard(account_id=account.pk, stock_id=stock.pk, quantity=3))
            reserved.set()
            time.sleep(0.5)  # the fill is now waiting for the position row
        return "committed"

    assert sorted(map(str, run_threads(fill_side, placement_side))) == ["1", "committed"]


def test_a_fill_whose_commit_fails_changes_nothing_and_the_next_one_applies(place, tick, account, monkeypatch):
    """The fill's writes travel with its COMMIT (pipeline mode): a constraint they break surfaces there, the
    transaction rolls back whole (markers included) and the connection serves the next fill."""
    from django.db import IntegrityError

    from apps.trading.orders import fills
    from apps.trading.orders.models import AppliedFillTick

    order = place("BUY", 10, 70_000)
    real_insert = fills.insert_rows

    def insert_twice(instances):
        real_insert(instances)
        real_insert(instances)  # the same (order, tick, leg): the unique constraint fails at COMMIT

    monkeypatch.setattr(fills, "insert_rows", insert_twice)
    first = tick(70_000, 4)
    with pytest.raises(IntegrityError):
        order_fill_apply(tick=first)
    order.refresh_from_db()
    account.refresh_from_db()
    assert (order.filled_quantity, account.cash, Execution.objects.count()) == (0, 10_000_000, 0)
    assert not AppliedFillTick.objects.exists()
    monkeypatch.setattr(fills, "insert_rows", real_insert)
    assert len(order_fill_apply(tick=first)) == 1  # redelivered: applies now, on the same connection
    order.refresh_from_db()
    assert order.filled_quantity == 4
    _assert_consistent(account.pk)


def _bracket(account, stock, market):
    from apps.trading.orders.placement import bracket_place

    entry = bracket_place(
        account_id=account.pk, code=stock.code, side="BUY", order_type="LIMIT", quantity=10, limit_price=70_000,
        market=market, take_profit_price=75_000, stop_loss_price=65_000,
    )  # fmt: skip
    legs = {o.bracket_leg: o for o in Order.objects.filter(parent=entry)}
    return entry, legs["TAKE_PROFIT"], legs["STOP_LOSS"]


def _bracket_settled(account, stock, tp, sl) -> None:
    from apps.trading.positions.models import Position

    tp.refresh_from_db()
    sl.refresh_from_db()
    assert sorted([tp.status, sl.status]) == ["CANCELLED", "FILLED"]
    assert Execution.objects.filter(order__in=[tp, sl]).count() == 1
    position = Position.objects.get(account=account, stock=stock)
    assert (position.quantity, position.reserved_quantity) == (0, 0)
    _assert_consistent(account.pk)


def test_two_fill_workers_firing_both_bracket_legs_fill_exactly_one(account, stock, market, tick):
    """Two workers apply a take-profit print and a stop-loss print at once: the legs' locks serialize them, the
    first fill cancels the other leg and the second worker finds it closed."""
    entry, tp, sl = _bracket(account, stock, market)
    order_fill_apply(tick=tick(70_000, 100))
    up, down = tick(75_000, 100), tick(60_000, 100)
    run_threads(lambda: order_fill_apply(tick=up), lambda: order_fill_apply(tick=down))
    _bracket_settled(account, stock, tp, sl)


def test_a_cancel_racing_the_other_legs_fill_releases_the_shares_once(account, stock, market, tick):
    entry, tp, sl = _bracket(account, stock, market)
    order_fill_apply(tick=tick(70_000, 100))
    up = tick(75_000, 100)

    def cancel():
        try:
            order_cancel(order_id=sl.pk)
        except ApplicationError:
            pass  # the fill cancelled it first

    run_threads(lambda: order_fill_apply(tick=up), cancel)
    _bracket_settled(account, stock, tp, sl)
