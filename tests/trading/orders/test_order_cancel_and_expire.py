"""order_cancel (pending, partially filled, closed, someone else's) and orders_expire."""

from __future__ import annotations

import pytest

from apps.core.exceptions import ApplicationError
from apps.trading.accounts.models import PaperAccount
from apps.trading.orders.fills import order_fill_apply
from apps.trading.orders.models import OrderStatus
from apps.trading.orders.release import order_cancel, orders_expire
from apps.trading.positions.models import Position

from .conftest import TRADING_DATE, give_shares, reconcile

pytestmark = pytest.mark.django_db


def test_cancel_a_pending_buy_releases_all_its_cash(place, account):
    order = place("BUY", 10, 70_000)
    cancelled = order_cancel(order_id=order.pk)
    account.refresh_from_db()
    assert (cancelled.status, cancelled.reserved_cash, cancelled.closed_at is not None) == (
        OrderStatus.CANCELLED, 0, True,
    )  # fmt: skip
    assert (account.cash, account.reserved_cash) == (10_000_000, 0)


def test_cancel_a_partially_filled_buy_releases_exactly_the_remainder(place, tick, account):
    other = place("BUY", 5, 70_000)  # stays open: its reservation must be untouched
    order = place("BUY", 100, 71_000)
    order_fill_apply(tick=tick(70_500, 30))
    order.refresh_from_db()
    assert order.reserved_cash == 71_000 * 70 + 745  # 4,970,000 x 0.00015 = 745.5
    order_cancel(order_id=order.pk)
    account.refresh_from_db()
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == (OrderStatus.CANCELLED, 30)
    assert account.reserved_cash == other.reserved_cash == 350_052
    assert account.cash == 10_000_000 - 2_115_000 - 317  # 2,115,000 x 0.00015 = 317.25
    assert reconcile(account.pk)[0] == reconcile(account.pk)[1]


def test_cancel_a_sell_releases_the_remaining_shares(place, tick, account, stock):
    give_shares(account, stock, 20, 60_000)
    order = place("SELL", 15, 70_000)
    order_fill_apply(tick=tick(70_000, 5))
    order_cancel(order_id=order.pk)
    position = Position.objects.get(account=account)
    assert (position.quantity, position.reserved_quantity) == (15, 0)


def test_a_filled_order_is_not_cancellable(place, tick):
    order = place("BUY", 10, 70_000)
    order_fill_apply(tick=tick(70_000, 10))
    with pytest.raises(ApplicationError) as err:
        order_cancel(order_id=order.pk)
    assert (err.value.code, err.value.status_code) == ("order_not_cancellable", 409)


def test_a_cancelled_order_is_not_cancellable_twice(place, account):
    order = place("BUY", 10, 70_000)
    order_cancel(order_id=order.pk)
    with pytest.raises(ApplicationError) as err:
        order_cancel(order_id=order.pk)
    assert err.value.code == "order_not_cancellable"
    account.refresh_from_db()
    assert account.reserved_cash == 0


def test_a_cancelled_order_no_longer_fills(place, tick):
    order = place("BUY", 10, 70_000)
    order_cancel(order_id=order.pk)
    assert order_fill_apply(tick=tick(70_000, 10)) == []


def test_cancel_of_another_users_order_is_not_found(place, django_user_model):
    order = place("BUY", 10, 70_000)
    other = django_user_model.objects.create_user(username="other", password="x-pass-123")
    with pytest.raises(ApplicationError) as err:
        order_cancel(order_id=order.pk, user=other)
    assert (err.value.code, err.value.status_code) == ("order_not_found", 404)
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING


def test_cancel_prunes_the_demand_set_after_commit(place, clean_redis, django_capture_on_commit_callbacks):
    from apps.live.realtime import keys

    with django_capture_on_commit_callbacks(execute=True):
        order = place("BUY", 1, 70_000)
        keep = place("BUY", 1, 70_000)
    with django_capture_on_commit_callbacks(execute=True):
        order_cancel(order_id=order.pk)
    assert clean_redis.smembers(keys.ORDERS_SET) == {b"005930"}  # `keep` is still open
    with django_capture_on_commit_callbacks(execute=True):
        order_cancel(order_id=keep.pk)
    assert clean_redis.smembers(keys.ORDERS_SET) == set()


def test_expiry_closes_the_days_open_orders_and_releases_them(place, tick, account, stock):
    give_shares(account, stock, 10, 60_000)
    buy = place("BUY", 10, 69_000)
    partial = place("BUY", 10, 70_000)
    sell = place("SELL", 10, 80_000)
    order_fill_apply(tick=tick(70_000, 4))
    assert orders_expire(trading_date=TRADING_DATE) == 3
    for order in (buy, partial, sell):
        order.refresh_from_db()
        assert (order.status, order.reserved_cash) == (OrderStatus.EXPIRED, 0)
    account.refresh_from_db()
    assert account.reserved_cash == 0
    assert Position.objects.get(account=account).reserved_quantity == 0
    assert orders_expire(trading_date=TRADING_DATE) == 0


def test_expiry_leaves_later_sessions_orders(place, settings):
    from .conftest import closed_market

    settings.PAPER_MARKET_CLOSED = "queue"
    queued = place("BUY", 1, 70_000, market=closed_market())
    assert orders_expire(trading_date=TRADING_DATE) == 0
    queued.refresh_from_db()
    assert queued.status == OrderStatus.PENDING
    assert PaperAccount.objects.get(pk=queued.account_id).reserved_cash == queued.reserved_cash


def test_expire_due_uses_the_market_clock(place):
    from apps.trading.orders.release import orders_expire_due

    from .conftest import closed_market, open_market

    order = place("BUY", 1, 70_000)
    assert orders_expire_due(market=open_market()) == 0
    assert orders_expire_due(market=closed_market()) == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.EXPIRED
