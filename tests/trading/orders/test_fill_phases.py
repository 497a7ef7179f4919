"""Fills by the phase and venue of each print, fed hand-built FillTicks: the calls' single price and its volume
shared in price-time priority, orders entered during a call, the closing-price and after-hours sessions, VI,
venues and SOR, exactly-once, and DAY expiry at the end of each order type's last phase."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest

from apps.core.krx.calendar import KST
from apps.core.redis import get_redis
from apps.live.realtime import keys
from apps.live.realtime.fillpath import FillTick
from apps.marketdata.models import DailyBar
from apps.trading.orders.fills import order_fills_apply
from apps.trading.orders.models import Execution, Order, OrderStatus
from apps.trading.orders.placement import order_place
from apps.trading.orders.release import orders_expire_due

from .conftest import BASE, TRADING_DATE, give_shares, market_at, reconcile

pytestmark = pytest.mark.django_db

_ids = itertools.count(10_000)


def at(hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime.combine(TRADING_DATE, dt.time(hour, minute, second), tzinfo=KST)


def print_(price: int, volume: int, when: dt.datetime, *, phase="continuous", venue="KRX", code="005930") -> FillTick:
    """A print of the fill stream (stream ids increase across the test, after every order's acceptance)."""
    return FillTick(
        stream_id=f"{next(_ids)}-0", code=code, price=price, volume=volume, cum_volume=0, at=when, ask=price,
        bid=price, venue=venue, phase=phase,
    )  # fmt: skip


@pytest.fixture
def order(account, stock):
    """``order(when, side, qty, price=None, order_type=None, route=None)`` placed at market time ``when``."""

    def place(when, side="BUY", quantity=10, price=None, *, order_type=None, route=None):
        kind = order_type or ("LIMIT" if price is not None else "MARKET")
        return order_place(
            account_id=account.pk, code=stock.code, side=side, order_type=kind, quantity=quantity, limit_price=price,
            market=market_at(when.hour, when.minute, when.second), route=route,
        )  # fmt: skip

    return place


def _fills(order: Order) -> list[tuple[int, int, str, str]]:
    return list(Execution.objects.filter(order=order).order_by("id").values_list("price", "quantity", "venue", "phase"))


def _state(order: Order) -> tuple[str, int]:
    order.refresh_from_db()
    return order.status, order.filled_quantity


@pytest.fixture
def nxt(stock, settings):
    settings.NXT_ELIGIBLE_CODES = [stock.code]
    return stock


# --- call auctions ------------------------------------------------------------------------------------------


def test_the_opening_print_fills_every_crossing_order_at_the_single_price(order, account, stock):
    give_shares(account, stock, 10, 60_000)
    high = order(at(8, 40), "BUY", 10, 70_500)
    market = order(at(8, 41), "BUY", 10)
    at_price = order(at(8, 42), "BUY", 10, 70_000)
    below = order(at(8, 43), "BUY", 10, 69_900)
    sell = order(at(8, 44), "SELL", 10, 69_000)

    executions = order_fills_apply(ticks=[print_(70_000, 5_000, at(9), phase="opening_auction")])

    assert len(executions) == 4
    for filled in (high, market, at_price, sell):
        assert _fills(filled) == [(70_000, 10, "KRX", "opening_auction")]
    assert _state(below) == ("PENDING", 0)
    assert reconcile(account.pk)[0] == reconcile(account.pk)[1]


def test_a_call_print_shorter_than_the_paper_demand_fills_in_price_then_time_priority(order):
    earlier_same = order(at(8, 39), "BUY", 10, 70_000)
    later = order(at(8, 40), "BUY", 10, 70_000)
    better = order(at(8, 41), "BUY", 10, 70_500)

    order_fills_apply(ticks=[print_(70_000, 15, at(9), phase="opening_auction")])

    assert _fills(better) == [(70_000, 10, "KRX", "opening_auction")]  # the best price first
    assert _fills(earlier_same) == [(70_000, 5, "KRX", "opening_auction")]  # then the oldest, partly
    assert _fills(later) == []  # nothing beyond the print's volume


def test_a_market_order_walks_no_book_at_a_call(order):
    book = {"code": "005930", "asks": [[70_100, 3], [70_200, 100]], "bids": [], "time": at(9).isoformat()}
    get_redis().hset(keys.BOOKS_HASH, "005930", json.dumps(book))
    market = order(at(8, 50), "BUY", 10)
    order_fills_apply(ticks=[print_(70_000, 1_000, at(9), phase="opening_auction")])
    assert _fills(market) == [(70_000, 10, "KRX", "opening_auction")]


def test_a_closing_auction_print_fills_orders_from_the_continuous_session_and_the_call(order):
    from_continuous = order(at(14), "BUY", 10, 70_000)
    from_call = order(at(15, 25), "BUY", 10, 70_100)
    order_fills_apply(ticks=[print_(70_000, 1_000, at(15, 30), phase="closing_auction")])
    assert _fills(from_continuous) == [(70_000, 10, "KRX", "closing_auction")]
    assert _fills(from_call) == [(70_000, 10, "KRX", "closing_auction")]


def test_an_order_entered_during_a_call_never_fills_from_an_earlier_continuous_print(order, stock):
    snapshot = {"code": stock.code, "price": BASE, "vi": {"kind": "dynamic", "reference": 70_000, "until": None}}
    get_redis().hset(keys.QUOTES_HASH, stock.code, json.dumps(snapshot))
    during_vi = order(at(10, 1), "BUY", 30, 70_500)
    assert during_vi.phase == "vi_auction"

    stale = print_(70_000, 100, at(10, 0, 59))  # printed before the VI, reached the stream after the order
    assert order_fills_apply(ticks=[stale]) == []
    order_fills_apply(ticks=[print_(70_200, 10, at(10, 3, 12), phase="vi_auction")])
    order_fills_apply(ticks=[print_(70_300, 5, at(10, 3, 13))])  # continuous again after the call's print

    assert _fills(during_vi) == [(70_200, 10, "KRX", "vi_auction"), (70_300, 5, "KRX", "continuous")]


# --- closing-price sessions and after-hours single price ----------------------------------------------------


def test_pre_close_price_orders_fill_only_at_pre_close_prints_in_time_priority(order, account, stock):
    give_shares(account, stock, 10, 60_000)
    first = order(at(8, 31), "BUY", 10, order_type="PRE_CLOSE_PRICE")
    second = order(at(8, 32), "BUY", 10, order_type="PRE_CLOSE_PRICE")
    seller = order(at(8, 33), "SELL", 10, order_type="PRE_CLOSE_PRICE")
    regular = order(at(8, 34), "BUY", 10, 70_000)

    assert order_fills_apply(ticks=[print_(70_000, 100, at(9), phase="opening_auction")])  # fills `regular` only
    assert _state(first) == ("PENDING", 0)
    order_fills_apply(ticks=[print_(BASE, 15, at(8, 35), phase="pre_close_price")])

    assert _fills(first) == [(BASE, 10, "KRX", "pre_close_price")]
    assert _fills(second) == [(BASE, 5, "KRX", "pre_close_price")]
    assert _fills(seller) == [(BASE, 10, "KRX", "pre_close_price")]
    assert _fills(regular) == [(70_000, 10, "KRX", "opening_auction")]
    assert reconcile(account.pk)[0] == reconcile(account.pk)[1]


def test_post_close_price_orders_fill_only_at_post_close_prints(order, stock):
    DailyBar.objects.create(stock=stock, date=TRADING_DATE, open=BASE, high=BASE, low=BASE, close=71_000, volume=1,
                            source="kis")  # fmt: skip
    buy = order(at(15, 31), "BUY", 10, order_type="POST_CLOSE_PRICE")
    assert order_fills_apply(ticks=[print_(71_000, 100, at(16, 10), phase="after_hours_single")]) == []
    assert order_fills_apply(ticks=[print_(71_000, 100, at(15, 45), venue="NXT", phase="nxt_after")]) == []
    order_fills_apply(ticks=[print_(71_000, 100, at(15, 41), phase="post_close_price")])
    assert _fills(buy) == [(71_000, 10, "KRX", "post_close_price")]


def test_after_hours_single_orders_fill_only_at_a_call_that_crosses_them(order, account, stock):
    DailyBar.objects.create(stock=stock, date=TRADING_DATE, open=BASE, high=BASE, low=BASE, close=70_000, volume=1,
                            source="kis")  # fmt: skip
    give_shares(account, stock, 10, 60_000)
    regular = order(at(15, 0), "SELL", 10, 70_600)
    buy = order(at(16, 5), "BUY", 10, 71_000, order_type="AFTER_HOURS_SINGLE")

    assert order_fills_apply(ticks=[print_(70_500, 100, at(16, 6))]) == []  # a continuous print: not its phase
    assert order_fills_apply(ticks=[print_(71_500, 100, at(16, 10), phase="after_hours_single")]) == []  # above
    order_fills_apply(ticks=[print_(70_900, 100, at(16, 20), phase="after_hours_single")])

    assert _fills(buy) == [(70_900, 10, "KRX", "after_hours_single")]
    assert _fills(regular) == []  # a regular order takes no after-hours print, though 70,900 crosses it


# --- venues and SOR -----------------------------------------------------------------------------------------


def test_each_route_fills_from_its_venue_only(order, nxt):
    krx = order(at(10), "BUY", 10, 70_000)
    on_nxt = order(at(10), "BUY", 10, 70_000, route="NXT")
    order_fills_apply(ticks=[print_(70_000, 10, at(10, 0, 40), venue="NXT")])
    assert (_fills(krx), _fills(on_nxt)) == ([], [(70_000, 10, "NXT", "continuous")])
    order_fills_apply(ticks=[print_(70_000, 10, at(10, 0, 41))])
    assert _fills(krx) == [(70_000, 10, "KRX", "continuous")]


def test_nxt_after_market_limit_fills_at_nxt_prints_after_1540(order, nxt):
    after = order(at(15, 35), "BUY", 10, 70_000, route="NXT")
    assert after.phase == "nxt_after"
    assert order_fills_apply(ticks=[print_(69_900, 10, at(15, 40, 5), phase="post_close_price")]) == []  # KRX's
    order_fills_apply(ticks=[print_(69_900, 10, at(15, 40, 6), venue="NXT", phase="nxt_after")])
    assert _fills(after) == [(69_900, 10, "NXT", "nxt_after")]


def test_a_market_order_takes_no_nxt_after_market_print(order, nxt):
    market = order(at(15, 0), "BUY", 10, route="NXT")
    assert order_fills_apply(ticks=[print_(70_000, 10, at(16), venue="NXT", phase="nxt_after")]) == []
    assert _state(market) == ("PENDING", 0)


@pytest.mark.parametrize(
    ("side", "krx_price", "nxt_price", "venue", "price"),
    [
        ("BUY", 70_400, 70_200, "NXT", 70_200),
        ("BUY", 70_100, 70_300, "KRX", 70_100),
        ("SELL", 70_400, 70_200, "KRX", 70_400),
        ("SELL", 70_100, 70_300, "NXT", 70_300),
    ],
)
def test_sor_fills_at_the_better_venue_when_both_print_at_once(
    order, account, nxt, side, krx_price, nxt_price, venue, price
):
    give_shares(account, nxt, 10, 60_000)
    limit = 70_500 if side == "BUY" else 70_000
    sor = order(at(10), side, 10, limit, route="SOR")
    order_fills_apply(ticks=[print_(krx_price, 100, at(10, 0, 40)), print_(nxt_price, 100, at(10, 0, 40), venue="NXT")])
    assert _fills(sor) == [(price, 10, venue, "continuous")]


def test_sor_takes_prints_apart_in_stream_order(order, nxt):
    sor = order(at(10), "BUY", 10, 70_500, route="SOR")
    order_fills_apply(ticks=[print_(70_400, 4, at(10, 0, 40)), print_(70_200, 100, at(10, 0, 45), venue="NXT")])
    assert _fills(sor) == [(70_400, 4, "KRX", "continuous"), (70_200, 6, "NXT", "continuous")]


# --- exactly once, expiry -----------------------------------------------------------------------------------


def test_the_closing_call_printed_at_its_random_end_still_fills_the_days_orders(order):
    buy = order(at(15, 25), "BUY", 10, 70_000)
    assert orders_expire_due(market=market_at(15, 30, 29)) == 0
    order_fills_apply(ticks=[print_(70_000, 100, at(15, 30, 29), phase="closing_auction")])
    assert _fills(buy) == [(70_000, 10, "KRX", "closing_auction")]


def test_a_call_print_applied_twice_fills_once(order):
    buy = order(at(8, 45), "BUY", 10, 70_000)
    call = print_(70_000, 100, at(9), phase="opening_auction")
    assert len(order_fills_apply(ticks=[call])) == 1
    assert order_fills_apply(ticks=[call]) == []
    assert _state(buy) == (OrderStatus.FILLED, 10)


def test_day_orders_expire_when_the_last_phase_that_can_fill_them_ends(order, account, stock, nxt):
    DailyBar.objects.create(stock=stock, date=TRADING_DATE, open=BASE, high=BASE, low=BASE, close=70_000, volume=1,
                            source="kis")  # fmt: skip
    pre_close = order(at(8, 31), "BUY", 1, order_type="PRE_CLOSE_PRICE")
    krx = order(at(10), "BUY", 1, 70_000)
    sor = order(at(10), "BUY", 1, 70_000, route="SOR")
    post_close = order(at(15, 31), "BUY", 1, order_type="POST_CLOSE_PRICE")
    after_hours = order(at(16, 1), "BUY", 1, 70_000, order_type="AFTER_HOURS_SINGLE")
    on_nxt = order(at(16, 1), "BUY", 1, 70_000, route="NXT")

    steps = [  # each phase's end plus 5 minutes for its last print (the closing call's random end, the feed)
        ((8, 44, 59), set()),
        ((8, 45), {pre_close}),
        ((15, 34, 59), set()),
        ((15, 35), {krx}),
        ((16, 5), {post_close}),
        ((18, 5), {after_hours}),
        ((20, 4, 59), set()),
        ((20, 5), {sor, on_nxt}),
    ]
    for when, due in steps:
        assert orders_expire_due(market=market_at(*when)) == len(due), when
        assert {o.pk for o in due} <= set(Order.objects.filter(status="EXPIRED").values_list("pk", flat=True))
    account.refresh_from_db()
    assert account.reserved_cash == 0
