"""Conditional orders on the tape: stop, stop-limit, take-profit, trailing stops (amount and percent), brackets
(OCO legs sharing one reservation), gap fills, and the refusals at entry."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.core.exceptions import ApplicationError
from apps.trading.orders.fills import order_fill_apply, order_fills_apply
from apps.trading.orders.models import AppliedFillTick, Execution, Order, OrderStatus
from apps.trading.orders.placement import bracket_place
from apps.trading.orders.release import order_cancel, orders_expire
from apps.trading.positions.models import Position

from .conftest import TRADING_DATE, give_shares, reconcile

pytestmark = pytest.mark.django_db


def _reload(order: Order) -> Order:
    return Order.objects.get(pk=order.pk)


def _position(account, stock) -> Position:
    return Position.objects.get(account=account, stock=stock)


def _fills(order: Order) -> list[tuple[int, int]]:
    return list(Execution.objects.filter(order=order).order_by("id").values_list("price", "quantity"))


@pytest.fixture
def held(account, stock):
    give_shares(account, stock, 10, 70_000)
    return 10


# --- stops and take-profits -----------------------------------------------------------------------------------


def test_stop_sell_rests_armed_holds_its_shares_and_fires_at_its_trigger(place, tick, held, account, stock):
    order = place("SELL", 10, trigger_type="STOP", trigger_price=65_000)
    assert (order.order_type, order.trigger_state, order.trigger_direction) == ("MARKET", "ARMED", "DOWN")
    assert _position(account, stock).reserved_quantity == 10

    assert order_fill_apply(tick=tick(65_100, 100)) == []  # above the trigger: nothing, not even a marker
    assert not AppliedFillTick.objects.exists()
    assert _reload(order).trigger_state == "ARMED"

    order_fill_apply(tick=tick(65_000, 100))
    order = _reload(order)
    assert (order.status, order.trigger_state, _fills(order)) == ("FILLED", "TRIGGERED", [(65_000, 10)])
    assert order.triggered_at is not None
    position = _position(account, stock)
    assert (position.quantity, position.reserved_quantity) == (0, 0)
    assert reconcile(account.pk)[0] == reconcile(account.pk)[1]


def test_stop_buy_fires_on_a_print_at_or_above_its_trigger(place, tick, account):
    order = place("BUY", 5, trigger_type="STOP", trigger_price=75_000)
    assert order.trigger_direction == "UP" and order.reserved_cash > 0  # reserved like a market buy
    order_fill_apply(tick=tick(74_900, 100))
    assert _reload(order).status == "PENDING"
    order_fill_apply(tick=tick(75_100, 100))
    assert _fills(order) == [(75_100, 5)]
    assert reconcile(account.pk)[0] == reconcile(account.pk)[1]


def test_a_stop_jumped_by_a_gap_fills_at_the_print_never_at_its_trigger(place, tick, held):
    order = place("SELL", 10, trigger_type="STOP", trigger_price=65_000)
    order_fill_apply(tick=tick(60_000, 100))  # the tape opens far below the trigger
    assert _fills(order) == [(60_000, 10)]


def test_a_stop_jumped_by_a_vi_call_fills_at_the_calls_price(place, tick, held):
    import dataclasses

    from apps.core.krx import phases

    order = place("SELL", 10, trigger_type="STOP", trigger_price=65_000)
    call = dataclasses.replace(tick(61_000, 100), phase=phases.VI_AUCTION)  # the VI's single price
    order_fill_apply(tick=call)
    assert _fills(order) == [(61_000, 10)]


def test_a_stop_does_not_fire_on_a_print_its_order_type_cannot_trade(place, tick, held):
    import dataclasses

    from apps.core.krx import phases

    order = place("SELL", 10, trigger_type="STOP", trigger_price=65_000)
    nxt_after = dataclasses.replace(tick(60_000, 100), venue=phases.NXT, phase=phases.NXT_AFTER)
    order_fill_apply(tick=nxt_after)  # a KRX-routed market order takes no NXT after-market print
    assert _reload(order).trigger_state == "ARMED"


def test_a_redelivered_firing_tick_fires_and_fills_once(place, tick, held, django_capture_on_commit_callbacks):
    order = place("SELL", 10, trigger_type="STOP", trigger_price=65_000)
    fired = tick(64_000, 4)
    with django_capture_on_commit_callbacks() as callbacks:
        order_fill_apply(tick=fired)
        order_fill_apply(tick=fired)
    order = _reload(order)
    assert (order.status, _fills(order)) == ("PARTIALLY_FILLED", [(64_000, 4)])
    assert len(callbacks) == 2  # one trigger announcement, one order push (the redelivery did nothing)


def test_stop_limit_becomes_a_limit_order_when_fired(place, tick, held):
    order = place("SELL", 10, 64_500, trigger_type="STOP_LIMIT", trigger_price=65_000)
    assert (order.order_type, order.limit_price) == ("LIMIT", 64_500)
    order_fill_apply(tick=tick(60_000, 100))  # fires it, but a limit sell of 64,500 takes no print of 60,000
    order = _reload(order)
    assert (order.trigger_state, order.status, _fills(order)) == ("TRIGGERED", "PENDING", [])
    order_fill_apply(tick=tick(64_600, 4))  # a triggered limit fills as any limit order
    assert _fills(order) == [(64_600, 4)]


def test_take_profit_sell_fires_on_a_print_at_or_above(place, tick, held):
    order = place("SELL", 10, trigger_type="TAKE_PROFIT", trigger_price=75_000)
    assert order.trigger_direction == "UP"
    order_fill_apply(tick=tick(74_900, 100))
    assert _fills(order) == []
    order_fill_apply(tick=tick(76_000, 100))
    assert _fills(order) == [(76_000, 10)]


def test_take_profit_buy_fires_on_a_print_at_or_below(place, tick):
    order = place("BUY", 3, trigger_type="TAKE_PROFIT", trigger_price=66_000)
    assert order.trigger_direction == "DOWN"
    order_fill_apply(tick=tick(66_100, 100))
    assert _fills(order) == []
    order_fill_apply(tick=tick(66_000, 100))
    assert _fills(order) == [(66_000, 3)]


# --- trailing stops -------------------------------------------------------------------------------------------


def test_trailing_sell_by_amount_ratchets_up_only_and_fires(place, tick, held):
    order = place("SELL", 10, trigger_type="TRAILING_STOP", trail_amount=1_000)
    assert (order.trail_anchor, order.trigger_price) == (70_000, 69_000)  # anchored at the base price

    order_fill_apply(tick=tick(71_000, 1))  # a new high: the trigger follows it
    assert (_reload(order).trail_anchor, _reload(order).trigger_price) == (71_000, 70_000)
    order_fill_apply(tick=tick(70_100, 1))  # lower, but above the trigger: the trigger never moves down
    assert (_reload(order).trail_anchor, _reload(order).trigger_price) == (71_000, 70_000)
    assert _fills(order) == []
    order_fill_apply(tick=tick(70_000, 100))
    assert _fills(order) == [(70_000, 10)]


def test_trailing_buy_by_percent_ratchets_down_only_and_fires(place, tick):
    order = place("BUY", 2, trigger_type="TRAILING_STOP", trail_percent="5")
    assert (order.trail_anchor, order.trigger_price, order.trail_percent) == (70_000, 73_500, Decimal("5.00"))
    order_fill_apply(tick=tick(68_000, 1))  # a new low: 68,000 × 1.05
    assert (_reload(order).trail_anchor, _reload(order).trigger_price) == (68_000, 71_400)
    order_fill_apply(tick=tick(69_000, 1))  # higher, below the trigger: no move up
    assert _reload(order).trigger_price == 71_400
    order_fill_apply(tick=tick(71_400, 100))
    assert _fills(order) == [(71_400, 2)]


def test_a_print_older_than_the_last_ratchet_redelivered_late_does_not_fire_it(place, tick, held):
    order = place("SELL", 10, trigger_type="TRAILING_STOP", trail_amount=1_000)
    stale = tick(69_500, 100)  # read by a worker that died before applying it: claimed after the next print
    order_fill_apply(tick=tick(72_000, 1))  # trigger 71,000
    order_fill_apply(tick=stale)
    order = _reload(order)
    assert (order.trigger_state, order.trigger_price, _fills(order)) == ("ARMED", 71_000, [])
    order_fill_apply(tick=tick(70_900, 100))
    assert _fills(order) == [(70_900, 10)]


def test_trailing_ratchet_within_one_batch_follows_the_stream_order(place, tick, held):
    order = place("SELL", 10, trigger_type="TRAILING_STOP", trail_amount=500)
    order_fills_apply(ticks=[tick(72_000, 1), tick(71_600, 1), tick(71_500, 100)])
    order = _reload(order)
    assert (order.trail_anchor, order.trigger_price) == (72_000, 71_500)
    assert _fills(order) == [(71_500, 10)]


# --- brackets -------------------------------------------------------------------------------------------------


@pytest.fixture
def bracket(account, stock, market):
    def make(quantity=10, limit=70_000, take_profit=75_000, stop_loss=65_000, **kw):
        kw.setdefault("market", market)
        entry = bracket_place(
            account_id=account.pk, code=stock.code, side="BUY", order_type="LIMIT" if limit else "MARKET",
            quantity=quantity, limit_price=limit, take_profit_price=take_profit, stop_loss_price=stop_loss, **kw,
        )  # fmt: skip
        legs = {o.bracket_leg: o for o in Order.objects.filter(parent=entry)}
        return entry, legs["TAKE_PROFIT"], legs["STOP_LOSS"]

    return make


def test_bracket_legs_wait_then_share_one_reservation(bracket, tick, account, stock):
    entry, tp, sl = bracket()
    assert (tp.trigger_state, sl.trigger_state) == ("WAITING", "WAITING")
    assert (tp.oco_peer_id, sl.oco_peer_id) == (sl.pk, tp.pk)
    order_fill_apply(tick=tick(65_000, 100))  # no shares yet: a waiting stop-loss does not fire
    assert _reload(entry).status == "FILLED" and _fills(sl) == []  # the entry's limit took this print
    assert {_reload(tp).trigger_state, _reload(sl).trigger_state} == {"ARMED"}
    position = _position(account, stock)
    assert (position.quantity, position.reserved_quantity) == (10, 10)  # one reservation for both legs


def test_bracket_take_profit_fills_and_cancels_the_stop(bracket, tick, account, stock):
    entry, tp, sl = bracket()
    order_fill_apply(tick=tick(70_000, 100))
    order_fill_apply(tick=tick(75_000, 100))
    tp, sl = _reload(tp), _reload(sl)
    assert (tp.status, _fills(tp)) == ("FILLED", [(75_000, 10)])
    assert (sl.status, sl.reject_reason) == ("CANCELLED", f"oco: leg #{tp.pk} filled")
    position = _position(account, stock)
    assert (position.quantity, position.reserved_quantity) == (0, 0)
    order_fill_apply(tick=tick(60_000, 100))  # the cancelled stop never fires
    assert _fills(sl) == []
    assert reconcile(account.pk)[0] == reconcile(account.pk)[1]


def test_oco_both_legs_fired_by_one_tick_fill_exactly_one(bracket, tick, account, stock):
    """Both legs triggered and open when one print arrives (each fired by an earlier print whose volume went to
    other orders): the print fills one, which cancels the other; the shared reservation is used once."""
    entry, tp, sl = bracket()
    order_fill_apply(tick=tick(70_000, 100))
    Order.objects.filter(pk__in=[tp.pk, sl.pk]).update(trigger_state="TRIGGERED")
    order_fill_apply(tick=tick(70_000, 100))
    tp, sl = _reload(tp), _reload(sl)
    assert sorted([tp.status, sl.status]) == ["CANCELLED", "FILLED"]
    assert Execution.objects.filter(order__in=[tp, sl]).count() == 1
    position = _position(account, stock)
    assert (position.quantity, position.reserved_quantity) == (0, 0)
    assert reconcile(account.pk)[0] == reconcile(account.pk)[1]


def test_oco_partial_fill_cancels_the_peer_and_keeps_only_the_remainder(bracket, tick, account, stock):
    entry, tp, sl = bracket()
    order_fill_apply(tick=tick(70_000, 100))
    order_fills_apply(ticks=[tick(75_000, 3), tick(64_000, 100)])  # one batch: the TP fills 3, then a crash
    tp, sl = _reload(tp), _reload(sl)
    assert (tp.status, tp.filled_quantity, sl.status) == ("PARTIALLY_FILLED", 3, "CANCELLED")
    assert _fills(sl) == []
    assert _position(account, stock).reserved_quantity == 7
    order_cancel(order_id=tp.pk)  # the last open leg gives back the remainder, once
    position = _position(account, stock)
    assert (position.quantity, position.reserved_quantity) == (7, 0)


def test_cancelling_one_leg_keeps_the_shared_reservation_until_the_other(bracket, tick, account, stock):
    entry, tp, sl = bracket()
    order_fill_apply(tick=tick(70_000, 100))
    order_cancel(order_id=sl.pk)
    assert _position(account, stock).reserved_quantity == 10  # the take-profit still protects them
    order_cancel(order_id=tp.pk)
    assert _position(account, stock).reserved_quantity == 0


def test_cancelling_an_unfilled_entry_cancels_its_waiting_legs(bracket, account):
    entry, tp, sl = bracket()
    order_cancel(order_id=entry.pk)
    assert {_reload(tp).status, _reload(sl).status} == {"CANCELLED"}
    account.refresh_from_db()
    assert account.reserved_cash == 0


def test_expiry_releases_a_bracket_reservation_once(bracket, tick, account, stock):
    bracket()
    order_fill_apply(tick=tick(70_000, 100))
    assert orders_expire(trading_date=TRADING_DATE) == 2
    assert _position(account, stock).reserved_quantity == 0


def test_a_bracket_entry_and_its_stop_in_one_batch(bracket, tick, account, stock):
    """Legs armed by an earlier print of the same batch see the later prints."""
    entry, tp, sl = bracket()
    order_fills_apply(ticks=[tick(70_000, 100), tick(64_000, 100)])
    assert _fills(sl) == [(64_000, 10)]
    assert _reload(tp).status == "CANCELLED"
    assert _position(account, stock).quantity == 0


def test_a_bracket_resubmitted_with_its_client_order_id_is_the_same(bracket):
    entry, tp, sl = bracket(client_order_id="b-1")
    again, tp2, sl2 = bracket(client_order_id="b-1")
    assert (again.pk, tp2.pk, sl2.pk) == (entry.pk, tp.pk, sl.pk)
    assert Order.objects.count() == 3


# --- refusals -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"trigger_type": "NOPE", "trigger_price": 65_000}, "invalid_trigger"),
        ({"trigger_type": "STOP"}, "invalid_trigger"),
        ({"trigger_type": "STOP", "trigger_price": "65000"}, "invalid_trigger"),
        ({"trigger_type": "STOP", "trigger_price": 65_050}, "trigger_off_tick"),
        ({"trigger_type": "STOP", "trigger_price": 40_000}, "trigger_out_of_band"),
        ({"trigger_type": "TRAILING_STOP"}, "invalid_trigger"),
        ({"trigger_type": "TRAILING_STOP", "trail_amount": 100, "trail_percent": 1}, "invalid_trigger"),
        ({"trigger_type": "TRAILING_STOP", "trail_percent": "NaN"}, "invalid_trigger"),
        ({"trigger_type": "TRAILING_STOP", "trail_percent": "0.001"}, "invalid_trigger"),
        ({"trigger_type": "TRAILING_STOP", "trail_amount": True}, "invalid_trigger"),
        ({"trigger_price": 65_000}, "invalid_trigger"),
    ],
)
def test_malformed_triggers_are_refused_with_a_code(place, held, kw, code):
    with pytest.raises(ApplicationError) as caught:
        place("SELL", 10, **kw)
    assert caught.value.code == code
    assert not Order.objects.exists()


def test_stop_limit_with_a_limit_beyond_the_band_is_refused(place):
    with pytest.raises(ApplicationError) as caught:
        place("BUY", 1, 95_000, trigger_type="STOP_LIMIT", trigger_price=75_000)
    assert caught.value.code == "price_out_of_band"
    with pytest.raises(ApplicationError) as caught:
        place("BUY", 1, trigger_type="STOP_LIMIT", trigger_price=75_000)  # no limit: becomes MARKET, refused
    assert caught.value.code == "invalid_order_type"


def test_a_protective_sell_beyond_the_holding_is_refused(place, held):
    place("SELL", 6, trigger_type="STOP", trigger_price=65_000)
    with pytest.raises(ApplicationError) as caught:
        place("SELL", 5, trigger_type="TAKE_PROFIT", trigger_price=75_000)
    assert caught.value.code == "insufficient_holding"


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"take_profit": 65_000, "stop_loss": 75_000}, "invalid_bracket"),
        ({"limit": 76_000}, "invalid_bracket"),
        ({"stop_loss": "x"}, "invalid_trigger"),
        ({"take_profit": 95_000}, "trigger_out_of_band"),
        ({"stop_loss": 65_050}, "trigger_off_tick"),
    ],
)
def test_malformed_brackets_are_refused_and_leave_nothing(bracket, account, kw, code):
    with pytest.raises(ApplicationError) as caught:
        bracket(**kw)
    assert caught.value.code == code
    assert not Order.objects.exists()
    account.refresh_from_db()
    assert account.reserved_cash == 0


def test_a_sell_entry_is_no_bracket(account, stock, market):
    with pytest.raises(ApplicationError) as caught:
        bracket_place(
            account_id=account.pk, code=stock.code, side="SELL", order_type="MARKET", quantity=1, market=market,
            take_profit_price=75_000, stop_loss_price=65_000,
        )  # fmt: skip
    assert caught.value.code == "invalid_bracket"


# --- demand and cost ------------------------------------------------------------------------------------------


def test_resting_stops_keep_their_stock_in_demand(place, held, stock):
    from apps.trading.orders.demand import order_demand_sync

    place("SELL", 10, trigger_type="STOP", trigger_price=65_000)
    assert stock.code in order_demand_sync()


def test_a_tick_that_fires_nothing_opens_no_transaction(place, tick, held, django_assert_max_num_queries):
    place("SELL", 10, trigger_type="STOP", trigger_price=65_000)
    with django_assert_max_num_queries(1):  # the candidate read only
        assert order_fills_apply(ticks=[tick(69_000, 10), tick(66_000, 10)]) == []
    assert OrderStatus.PENDING == _reload(Order.objects.get()).status


def test_a_queued_bracket_entry_rejected_at_the_open_cancels_its_legs(bracket, tick, settings, stock, account):
    """Queued while the day's close was unknown (band from 70,000); the close turns out 60,000: the entry's limit
    is outside the next session's band, so it is rejected at its first tick and its waiting legs go with it."""
    import datetime as dt

    from apps.marketdata.models import DailyBar

    from .conftest import closed_market

    settings.PAPER_MARKET_CLOSED = "queue"
    entry, tp, sl = bracket(limit=85_000, take_profit=90_000, stop_loss=80_000, market=closed_market())
    DailyBar.objects.create(
        stock=stock, date=TRADING_DATE, open=60_000, high=60_000, low=60_000, close=60_000, volume=1, source="kis"
    )
    order_fill_apply(tick=tick(60_000, 100, day=dt.date(2026, 3, 4)))
    assert _reload(entry).status == "REJECTED"
    assert {_reload(tp).status, _reload(sl).status} == {"CANCELLED"}
    account.refresh_from_db()
    assert account.reserved_cash == 0
