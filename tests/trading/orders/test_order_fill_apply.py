"""order_fill_apply: crossing rules, at-or-better prices, volume caps and partial fills, price-time priority,
market orders (trade price and book walk), fees and taxes, duplicated ticks, positions by delta."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

import pytest

from apps.core.krx.calendar import KST
from apps.live.realtime import keys
from apps.trading.accounts.models import PaperAccount
from apps.trading.orders.fills import order_fill_apply, order_fills_apply
from apps.trading.orders.models import AppliedFillTick, Execution, OrderStatus
from apps.trading.positions.models import Position

from .conftest import give_shares, reconcile

pytestmark = pytest.mark.django_db


def _refresh(*objs):
    for obj in objs:
        obj.refresh_from_db()


# --- limit crossing and price ------------------------------------------------------------------------------


def test_limit_buy_does_not_fill_above_its_price(place, tick):
    order = place("BUY", 10, 70_000)
    assert order_fill_apply(tick=tick(70_100, 100)) == []
    _refresh(order)
    assert (order.status, order.filled_quantity) == (OrderStatus.PENDING, 0)


def test_limit_buy_fills_at_its_price(place, tick, account):
    order = place("BUY", 10, 70_000)
    [execution] = order_fill_apply(tick=tick(70_000, 100))
    _refresh(order, account)
    assert (execution.price, execution.quantity, execution.amount, execution.commission, execution.tax) == (
        70_000, 10, 700_000, 105, 0,
    )  # fmt: skip
    assert (order.status, order.filled_quantity, order.avg_fill_price, order.reserved_cash) == (
        OrderStatus.FILLED, 10, Decimal("70000.0000"), 0,
    )  # fmt: skip
    assert (account.cash, account.reserved_cash) == (10_000_000 - 700_105, 0)


def test_limit_buy_below_its_price_fills_at_the_better_trade_price(place, tick, account):
    order = place("BUY", 10, 70_000)
    [execution] = order_fill_apply(tick=tick(69_500, 100))
    _refresh(order, account)
    assert execution.price == 69_500
    # the reservation at 70,000 is released entirely; only the actual cost leaves cash
    assert (account.cash, account.reserved_cash) == (10_000_000 - 695_000 - 104, 0)  # 104.25 -> 104


def test_limit_sell_does_not_fill_below_its_price(place, tick, account, stock):
    give_shares(account, stock, 10, 60_000)
    order = place("SELL", 10, 70_000)
    assert order_fill_apply(tick=tick(69_900, 100)) == []
    _refresh(order)
    assert order.status == OrderStatus.PENDING


def test_limit_sell_fills_at_or_above_its_price_at_the_trade_price(place, tick, account, stock):
    give_shares(account, stock, 10, 60_000)
    order = place("SELL", 4, 70_000)
    [first] = order_fill_apply(tick=tick(70_000, 2))
    [second] = order_fill_apply(tick=tick(70_500, 5))
    _refresh(order)
    assert [(e.price, e.quantity) for e in (first, second)] == [(70_000, 2), (70_500, 2)]
    assert (order.status, order.avg_fill_price) == (OrderStatus.FILLED, Decimal("70250.0000"))


# --- volume cap, partial fills, priority ---------------------------------------------------------------------


def test_large_order_fills_partially_over_several_ticks(place, tick, account):
    order = place("BUY", 100, 70_000)
    fills = []
    for price, volume in [(70_000, 30), (70_100, 500), (69_900, 50), (70_000, 40)]:
        fills += order_fill_apply(tick=tick(price, volume))
        _refresh(order, account)
        fills_so_far = order.filled_quantity
        # reservation always equals the remainder's: price x remaining + truncated commission
        remaining = 100 - fills_so_far
        assert order.reserved_cash == (70_000 * remaining + int(70_000 * remaining * Decimal("0.00015")))
        assert account.reserved_cash == order.reserved_cash
    assert [(e.price, e.quantity) for e in fills] == [(70_000, 30), (69_900, 50), (70_000, 20)]
    assert (order.status, order.filled_quantity) == (OrderStatus.FILLED, 100)
    assert order.avg_fill_price == Decimal("69950.0000")  # (2.1M + 3.495M + 1.4M) / 100
    assert order.commission_total == 315 + 524 + 210  # 315, 524.25 -> 524, 210
    assert account.cash == 10_000_000 - 6_995_000 - 1_049
    assert reconcile(account.pk)[0] == reconcile(account.pk)[1]


def test_status_is_partially_filled_between_ticks(place, tick):
    order = place("BUY", 10, 70_000)
    order_fill_apply(tick=tick(70_000, 3))
    _refresh(order)
    assert (order.status, order.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, 3)


def test_two_orders_share_one_ticks_volume_in_price_priority(place, tick):
    low = place("BUY", 10, 70_000)
    high = place("BUY", 10, 70_500)  # later but better priced: first
    order_fill_apply(tick=tick(69_900, 15))
    _refresh(low, high)
    assert (high.filled_quantity, low.filled_quantity) == (10, 5)


def test_two_orders_at_one_price_share_in_time_priority(place, tick):
    first = place("BUY", 10, 70_000)
    second = place("BUY", 10, 70_000)
    order_fill_apply(tick=tick(70_000, 12))
    _refresh(first, second)
    assert (first.filled_quantity, second.filled_quantity) == (10, 2)


def test_sells_share_in_price_priority_lowest_first(place, tick, account, stock):
    give_shares(account, stock, 20, 60_000)
    high = place("SELL", 10, 70_500)
    low = place("SELL", 10, 70_000)
    order_fill_apply(tick=tick(70_500, 14))
    _refresh(high, low)
    assert (low.filled_quantity, high.filled_quantity) == (10, 4)


def test_orders_of_several_accounts_share_one_tick(place, tick, user):
    from apps.trading.accounts.services import paper_account_create

    other = paper_account_create(user=user, name="second")
    a = place("BUY", 10, 70_000)
    b = place("BUY", 10, 70_000, account_id=other.pk)
    order_fill_apply(tick=tick(70_000, 15))
    _refresh(a, b)
    assert (a.filled_quantity, b.filled_quantity) == (10, 5)
    assert PaperAccount.objects.get(pk=other.pk).cash == 10_000_000 - 350_000 - 52


# --- market orders ---------------------------------------------------------------------------------------------


def test_market_buy_fills_at_the_next_trade_price(place, tick, account):
    order = place("BUY", 10)
    [execution] = order_fill_apply(tick=tick(70_300, 100))
    _refresh(order, account)
    assert (execution.price, order.status) == (70_300, OrderStatus.FILLED)
    assert (account.cash, account.reserved_cash) == (10_000_000 - 703_000 - 105, 0)  # reservation at 91,000 freed


def test_market_order_is_capped_by_the_printed_volume(place, tick):
    order = place("BUY", 10)
    order_fill_apply(tick=tick(70_300, 4))
    _refresh(order)
    assert (order.status, order.filled_quantity, order.reserved_cash) == (
        OrderStatus.PARTIALLY_FILLED, 4, 91_000 * 6 + 81,
    )  # fmt: skip


def test_ticks_that_printed_before_the_order_do_not_fill_it(place, tick, clean_redis):
    stale = clean_redis.xadd(keys.FILL_TICKS_STREAM, {"code": "005930"}).decode()
    place("BUY", 10)
    assert order_fill_apply(tick=tick(70_000, 100, stream_id=stale)) == []
    ms, seq = stale.split("-")
    assert len(order_fill_apply(tick=tick(70_000, 100, stream_id=f"{ms}-{int(seq) + 1}"))) == 1


def _store_book(redis, at, asks, bids):
    redis.hset(
        keys.BOOKS_HASH, "005930", json.dumps({"code": "005930", "asks": asks, "bids": bids, "time": at.isoformat()})
    )


def test_market_buy_walks_the_stored_book(place, tick, clean_redis, account):
    t = tick(70_000, 1)
    _store_book(clean_redis, t.at, [[70_100, 3], [70_200, 4], [70_300, 100]], [[70_000, 5]])
    order = place("BUY", 10)
    executions = order_fill_apply(tick=t)
    _refresh(order, account)
    assert [(e.price, e.quantity, e.leg) for e in executions] == [(70_100, 3, 0), (70_200, 4, 1), (70_300, 3, 2)]
    assert order.avg_fill_price == Decimal("70200.0000")  # 702,000 / 10
    assert order.commission_total == 31 + 42 + 31  # per execution: 31.545, 42.12, 31.635 truncated
    assert account.cash == 10_000_000 - 702_000 - 104


def test_market_orders_share_the_book_levels(place, tick, clean_redis):
    t = tick(70_000, 1)
    _store_book(clean_redis, t.at, [[70_100, 3], [70_200, 4]], [])
    first, second = place("BUY", 5), place("BUY", 5)
    order_fill_apply(tick=t)
    _refresh(first, second)
    assert (first.filled_quantity, first.avg_fill_price) == (5, Decimal("70140.0000"))
    assert (second.filled_quantity, second.status) == (2, OrderStatus.PARTIALLY_FILLED)


def test_market_sell_walks_the_bids(place, tick, clean_redis, account, stock):
    give_shares(account, stock, 10, 60_000)
    t = tick(70_000, 1)
    _store_book(clean_redis, t.at, [], [[70_000, 2], [69_900, 10]])
    place("SELL", 5)
    assert [(e.price, e.quantity) for e in order_fill_apply(tick=t)] == [(70_000, 2), (69_900, 3)]


def test_a_stale_book_is_ignored(place, tick, clean_redis):
    t = tick(70_000, 100)
    _store_book(clean_redis, t.at - dt.timedelta(minutes=5), [[70_100, 3]], [])
    place("BUY", 10)
    assert [(e.price, e.quantity) for e in order_fill_apply(tick=t)] == [(70_000, 10)]


# --- exactly once ----------------------------------------------------------------------------------------------


def test_a_duplicated_tick_fills_once(place, tick, account):
    order = place("BUY", 100, 70_000)
    t = tick(70_000, 30)
    assert len(order_fill_apply(tick=t)) == 1
    assert order_fill_apply(tick=t) == []
    _refresh(order, account)
    assert order.filled_quantity == 30
    assert Execution.objects.count() == 1
    assert account.cash == 10_000_000 - 2_100_000 - 315


# --- batches of ticks (the fill engine applies what it read in one transaction) -----------------------------


def test_a_batch_applies_its_ticks_in_stream_order_each_seeing_the_previous_fills(place, tick, account):
    order = place("BUY", 10, 70_000)
    executions = order_fills_apply(ticks=[tick(70_000, 6), tick(69_900, 6), tick(69_800, 6)])
    _refresh(order, account)
    assert [(e.price, e.quantity) for e in executions] == [(70_000, 6), (69_900, 4)]
    assert (order.status, order.filled_quantity, order.reserved_cash) == (OrderStatus.FILLED, 10, 0)
    assert account.cash == 10_000_000 - (420_000 + 63) - (279_600 + 41)
    assert reconcile(account.pk)[0] == reconcile(account.pk)[1]


def test_a_batch_spans_stocks_accounts_and_sides(place, tick, account, stock, make_stock, user):
    """Buys and sells of two stocks and two accounts in one transaction: positions, cash and realized P&L
    as if each tick had been applied alone."""
    from django.contrib.auth import get_user_model

    from apps.trading.accounts.services import paper_account_create

    other_stock = make_stock("000660", base=200_000)
    other = paper_account_create(
        user=get_user_model().objects.create_user("batch-other", password="pw-12345678"), initial_cash=10_000_000
    )
    give_shares(account, stock, 10, 60_000)
    sell = place("SELL", 4, 70_000)
    buy_other_stock = place("BUY", 3, 200_000, code="000660")
    buy_other_account = place("BUY", 5, 70_000, account_id=other.pk)
    executions = order_fills_apply(
        ticks=[tick(70_000, 100), tick(199_500, 2, code="000660"), tick(199_000, 5, code="000660")]
    )
    assert sorted((e.order_id, e.price, e.quantity) for e in executions) == sorted(
        [
            (sell.pk, 70_000, 4),
            (buy_other_account.pk, 70_000, 5),
            (buy_other_stock.pk, 199_500, 2),
            (buy_other_stock.pk, 199_000, 1),
        ]
    )
    mine = Position.objects.get(account=account, stock=stock)
    assert (mine.quantity, mine.realized_pnl) == (6, 4 * 10_000)
    assert Position.objects.get(account=account, stock=other_stock).quantity == 3
    assert Position.objects.get(account=other, stock=stock).quantity == 5
    for pk in (account.pk, other.pk):
        assert reconcile(pk)[0] == reconcile(pk)[1]


def test_a_batch_with_an_already_applied_tick_applies_only_the_others(place, tick, account):
    order = place("BUY", 10, 70_000)
    first, second = tick(70_000, 3), tick(70_000, 4)
    order_fill_apply(tick=first)
    assert [e.tick_stream_id for e in order_fills_apply(ticks=[first, second])] == [second.stream_id]
    _refresh(order)
    assert order.filled_quantity == 7
    assert Execution.objects.count() == 2


def test_a_batch_that_fails_changes_nothing(place, tick, account, stock, monkeypatch):
    """A failure while booking the batch (here: a sell beyond its reserved holding, which the services
    never let happen) rolls back every tick of it, the markers included."""
    from apps.trading.orders import fills

    buy = place("BUY", 10, 70_000)
    give_shares(account, stock, 10, 60_000)
    sell = place("SELL", 10, 71_000)
    Position.objects.filter(account=account, stock=stock).update(reserved_quantity=0)
    with pytest.raises(AssertionError, match="exceeds the reserved holding"):
        fills.order_fills_apply(ticks=[tick(70_000, 10), tick(71_000, 10)])
    _refresh(buy, sell, account)
    assert (buy.filled_quantity, sell.filled_quantity, account.cash) == (0, 0, 10_000_000 - 600_000)
    assert not AppliedFillTick.objects.exists() and not Execution.objects.exists()


def test_a_tick_of_another_stock_does_nothing(place, tick, make_stock):
    make_stock("000660")
    place("BUY", 10, 70_000)
    assert order_fill_apply(tick=tick(60_000, 100, code="000660")) == []


def test_a_tick_that_crosses_no_order_opens_no_transaction(place, tick, stock, account, django_assert_num_queries):
    """Resting orders on both sides, a trade between them: one read, no marker, no lock, nothing changed."""
    give_shares(account, stock, 10, 60_000)
    buy = place("BUY", 10, 69_000)
    sell = place("SELL", 10, 71_000)
    with django_assert_num_queries(1):
        assert order_fill_apply(tick=tick(70_000, 100)) == []
    assert not AppliedFillTick.objects.exists()
    # the same orders fill when a trade reaches them
    assert [e.order_id for e in order_fill_apply(tick=tick(69_000, 100))] == [buy.pk]
    assert [e.order_id for e in order_fill_apply(tick=tick(71_000, 100))] == [sell.pk]
    assert AppliedFillTick.objects.count() == 2


def test_only_the_crossed_orders_are_locked(place, tick, account, django_assert_num_queries):
    """A trade at 70,000 concerns the buy at 70,000, not the one resting at 69,000 (left unlocked)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    crossed = place("BUY", 10, 70_000)
    resting = place("BUY", 10, 69_000)
    with CaptureQueriesContext(connection) as queries:
        [execution] = order_fill_apply(tick=tick(70_000, 100))
    assert execution.order_id == crossed.pk
    [lock] = [
        q["sql"] for q in queries.captured_queries if "FOR NO KEY UPDATE" in q["sql"] and "orders_order" in q["sql"]
    ]
    assert re.search(rf"o\.id = ANY\('\{{{crossed.pk}\}}'", lock), (lock, resting.pk)


def test_a_queued_order_does_not_fill_before_its_trading_date(place, tick, settings):
    from .conftest import closed_market

    settings.PAPER_MARKET_CLOSED = "queue"
    order = place("BUY", 10, 70_000, market=closed_market())  # for 2026-03-04
    assert order.trading_date == dt.date(2026, 3, 4)
    assert order_fill_apply(tick=tick(70_000, 100, at=dt.datetime(2026, 3, 3, 16, 0, tzinfo=KST))) == []
    assert len(order_fill_apply(tick=tick(70_000, 100, day=dt.date(2026, 3, 4)))) == 1


def test_a_queued_order_outside_its_sessions_actual_band_is_rejected_at_the_first_tick(
    place, tick, settings, stock, account
):  # fmt: skip
    """Queued after the close while the day's close was not collected: checked against 70,000 (band
    49,000-91,000); the close of 2026-03-03 turns out 60,000, so 2026-03-04's band is 42,000-78,000."""
    from apps.marketdata.models import DailyBar

    from .conftest import closed_market

    settings.PAPER_MARKET_CLOSED = "queue"
    outside = place("BUY", 10, 85_000, market=closed_market())
    inside = place("BUY", 10, 60_000, market=closed_market())
    assert (outside.band_checked, inside.band_checked) == (False, False)
    DailyBar.objects.create(
        stock=stock, date=dt.date(2026, 3, 3), open=60_000, high=60_000, low=60_000, close=60_000, volume=1,
        source="kis",
    )  # fmt: skip
    executions = order_fill_apply(tick=tick(60_000, 100, day=dt.date(2026, 3, 4)))
    _refresh(outside, inside, account)
    assert [e.order_id for e in executions] == [inside.pk]
    assert outside.status == OrderStatus.REJECTED
    assert outside.reject_reason.startswith("price_out_of_band: 85,000 is outside 42,000-78,000")
    assert (outside.reserved_cash, inside.band_checked) == (0, True)
    assert account.reserved_cash == 0  # the rejected order's reservation went back, the other one filled
    assert reconcile(account.pk)[0] == reconcile(account.pk)[1]


# --- fees, taxes, positions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "rate", "tax"),
    [
        (dt.date(2025, 6, 10), Decimal("0.0015"), 1_052),  # 701,500 x 0.15 % = 1,052.25
        (dt.date(2026, 6, 10), Decimal("0.0020"), 1_403),  # x 0.20 % = 1,403
        (dt.date(2024, 6, 10), Decimal("0.0018"), 1_262),  # x 0.18 % = 1,262.7
        (dt.date(2025, 12, 26), Decimal("0.0015"), 1_052),  # settles 2025-12-30
        (dt.date(2025, 12, 29), Decimal("0.0020"), 1_403),  # settles 2026-01-02 (T+2): the 2026 rate
    ],
)
def test_sell_tax_follows_the_rate_in_force_on_the_settlement_date(
    make_stock, account, tick, day, rate, tax
):  # fmt: skip
    from apps.trading.orders.placement import order_place

    from .conftest import open_market

    stock = make_stock(bar_date=day - dt.timedelta(days=1))
    give_shares(account, stock, 10, 60_000)
    order_place(
        account_id=account.pk, code=stock.code, side="SELL", order_type="LIMIT", quantity=10, limit_price=70_000,
        market=open_market(day),
    )  # fmt: skip
    [execution] = order_fill_apply(tick=tick(70_150, 100, day=day))
    assert (execution.amount, execution.tax_rate, execution.tax, execution.commission) == (701_500, rate, tax, 105)
    account.refresh_from_db()
    assert account.cash == 10_000_000 - 600_000 + 701_500 - 105 - tax


def test_kosdaq_sells_pay_the_same_2026_rate(make_stock, account, tick, market):
    from apps.trading.orders.placement import order_place

    stock = make_stock("035720", market="KOSDAQ")
    give_shares(account, stock, 1, 60_000)
    order_place(account_id=account.pk, code="035720", side="SELL", order_type="MARKET", quantity=1, market=market)
    [execution] = order_fill_apply(tick=tick(70_000, 1, code="035720"))
    assert (execution.tax_rate, execution.tax) == (Decimal("0.0020"), 140)


def test_commission_uses_the_accounts_rate_and_truncates(place, tick, account):
    PaperAccount.objects.filter(pk=account.pk).update(commission_rate=Decimal("0.000140527"[:8]))
    account.refresh_from_db()
    order = place("BUY", 7, 70_000)
    [execution] = order_fill_apply(tick=tick(70_000, 7))
    assert order.commission_rate == Decimal("0.000140")
    assert execution.commission == 68  # 490,000 x 0.00014 = 68.6


def test_positions_by_delta_and_the_average_price_convention(place, tick, account):
    place("BUY", 10, 70_000)
    order_fill_apply(tick=tick(70_000, 10))
    place("BUY", 5, 73_000)
    order_fill_apply(tick=tick(73_000, 5))
    position = Position.objects.get(account=account)
    # average excludes commission: (700,000 + 365,000) / 15
    assert (position.quantity, position.cost_basis, position.avg_price) == (15, 1_065_000, Decimal("71000.0000"))
    assert position.fees_paid == 105 + 54  # 54.75 -> 54

    place("SELL", 6, 75_000)
    [sell] = order_fill_apply(tick=tick(75_000, 6))
    position.refresh_from_db()
    assert (position.quantity, position.cost_basis, position.avg_price) == (9, 639_000, Decimal("71000.0000"))
    assert (sell.realized_pnl, position.realized_pnl) == (24_000, 24_000)  # 450,000 - 426,000, gross
    assert (sell.commission, sell.tax) == (67, 900)
    assert position.fees_paid == 105 + 54 + 67 and position.taxes_paid == 900
    total, initial = reconcile(account.pk)
    assert total == initial


def test_cost_basis_removal_never_loses_a_won(place, tick, account):
    place("BUY", 3, 70_100)
    order_fill_apply(tick=tick(70_000, 1))  # 70,000
    order_fill_apply(tick=tick(70_100, 2))  # 140,200 -> cost 210,200 for 3 (avg 70,066.6667)
    position = Position.objects.get(account=account)
    assert position.avg_price == Decimal("70066.6667")
    place("SELL", 1, 70_000)
    order_fill_apply(tick=tick(70_000, 1))
    place("SELL", 2, 70_000)
    order_fill_apply(tick=tick(70_000, 2))
    position.refresh_from_db()
    assert (position.quantity, position.cost_basis, position.avg_price, position.realized_pnl) == (
        0, 0, Decimal("0"), 210_000 - 210_200,
    )  # fmt: skip
    total, initial = reconcile(account.pk)
    assert total == initial


def test_fills_push_order_snapshots_after_commit(place, tick, settings, django_capture_on_commit_callbacks):
    from asgiref.sync import async_to_sync
    from channels.layers import channel_layers, get_channel_layer

    from apps.core.realtime import group_sends_wait

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    try:
        layer = get_channel_layer()
        order = place("BUY", 10, 70_000)
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(f"account.{order.account_id}.orders", channel)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            order_fill_apply(tick=tick(70_000, 4))
        assert callbacks  # nothing is sent until the transaction commits
        for callback in callbacks:
            callback()
        assert group_sends_wait()  # sent from the process's sender loop; the in-memory layer is per loop
        message = async_to_sync(layer.receive)(channel)
        assert message["type"] == "order.update"
        assert (message["order"]["id"], message["order"]["status"], message["order"]["filled_quantity"]) == (
            order.pk, "PARTIALLY_FILLED", 4,
        )  # fmt: skip
    finally:
        channel_layers.backends.clear()
