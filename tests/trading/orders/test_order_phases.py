"""order_place by phase and venue: which order types each phase of KRX and NXT takes, the coded refusals (naming
the phase and when the order type is taken next), the price rules of the after-hours types, NXT eligibility,
halted stocks and VI."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from apps.core.exceptions import ApplicationError
from apps.core.krx.calendar import KST
from apps.core.redis import get_redis
from apps.live.realtime import keys
from apps.marketdata.models import DailyBar
from apps.trading.accounts.models import PaperAccount
from apps.trading.orders.models import Order
from apps.trading.orders.placement import order_place

from .conftest import BASE, TRADING_DATE, market_at

pytestmark = pytest.mark.django_db

CLOSE = 72_000  # today's close in the tests that need one: after-hours range 64,800 - 79,200


def _place(account, stock, when, order_type="LIMIT", price=70_000, *, side="BUY", quantity=10, route=None):
    return order_place(
        account_id=account.pk, code=stock.code, side=side, order_type=order_type, quantity=quantity,
        limit_price=price, market=when, route=route,
    )  # fmt: skip


def _refused(account, stock, when, order_type="LIMIT", price=70_000, **kw) -> ApplicationError:
    before = (Order.objects.count(), PaperAccount.objects.get(pk=account.pk).reserved_cash)
    with pytest.raises(ApplicationError) as err:
        _place(account, stock, when, order_type, price, **kw)
    assert err.value.status_code == 400
    assert (Order.objects.count(), PaperAccount.objects.get(pk=account.pk).reserved_cash) == before
    return err.value


def _quote(code: str, **fields) -> None:
    snapshot = {"code": code, "price": BASE, "time": dt.datetime(2026, 3, 3, 10, tzinfo=dt.UTC).isoformat(), **fields}
    get_redis().hset(keys.QUOTES_HASH, code, json.dumps(snapshot))


@pytest.fixture
def close_today(stock):
    DailyBar.objects.create(
        stock=stock, date=TRADING_DATE, open=BASE, high=CLOSE, low=BASE, close=CLOSE, volume=10, source="kis"
    )


@pytest.fixture
def nxt_stock(stock, settings):
    settings.NXT_ELIGIBLE_CODES = [stock.code]
    return stock


# --- KRX ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "order_type", "price", "phase"),
    [
        ((8, 35), "LIMIT", 70_000, "opening_auction"),
        ((8, 35), "MARKET", None, "opening_auction"),
        ((8, 35), "PRE_CLOSE_PRICE", None, "pre_close_price"),  # concurrent with the opening auction's entry
        ((10, 0), "LIMIT", 70_000, "continuous"),
        ((15, 25), "MARKET", None, "closing_auction"),
        ((15, 30), "POST_CLOSE_PRICE", None, "post_close_price"),  # orders from 15:30, matching from 15:40
        ((15, 50), "POST_CLOSE_PRICE", None, "post_close_price"),
        ((16, 30), "AFTER_HOURS_SINGLE", 72_500, "after_hours_single"),
    ],
)
def test_each_krx_phase_takes_its_order_types(account, stock, close_today, at, order_type, price, phase):
    order = _place(account, stock, market_at(*at), order_type, price)
    assert (order.route, order.phase, order.trading_date, order.queued) == ("KRX", phase, TRADING_DATE, False)
    assert order.accepted_at == market_at(*at).now


@pytest.mark.parametrize(
    ("at", "order_type", "price", "phase_text", "when_text"),
    [
        ((8, 35), "POST_CLOSE_PRICE", None, "KRX opening auction (08:30-09:00 KST)", "from 15:30 KST"),
        ((8, 35), "AFTER_HOURS_SINGLE", 70_000, "KRX opening auction", "from 16:00 KST"),
        ((8, 45), "PRE_CLOSE_PRICE", None, "KRX opening auction", "from 08:30 KST on 2026-03-04"),
        ((10, 0), "PRE_CLOSE_PRICE", None, "KRX continuous (09:00-15:20 KST)", "from 08:30 KST on 2026-03-04"),
        ((10, 0), "AFTER_HOURS_SINGLE", 70_000, "KRX continuous", "from 16:00 KST"),
        ((15, 35), "LIMIT", 70_000, "KRX post close price (15:30-16:00 KST)", "from 08:30 KST on 2026-03-04"),
        ((16, 30), "MARKET", None, "KRX after hours single (16:00-18:00 KST)", "from 08:30 KST on 2026-03-04"),
        ((16, 30), "POST_CLOSE_PRICE", None, "KRX after hours single", "from 15:30 KST on 2026-03-04"),
    ],
)
def test_a_phase_refuses_other_order_types_naming_itself_and_the_next_chance(
    account, stock, close_today, at, order_type, price, phase_text, when_text
):
    error = _refused(account, stock, market_at(*at), order_type, price)
    assert error.code == "phase_rejects_order_type"
    assert phase_text in error.message
    assert f"{order_type} orders (route KRX) are accepted {when_text}" in error.message


def test_after_the_last_phase_the_market_is_closed_until_the_next_morning(account, stock):
    error = _refused(account, stock, market_at(20, 30))
    assert error.code == "market_closed"
    assert "accepted from 08:30 KST on 2026-03-04" in error.message


def test_queue_mode_queues_regular_orders_refused_by_the_after_hours_phases(account, stock, settings):
    settings.PAPER_MARKET_CLOSED = "queue"
    order = _place(account, stock, market_at(16, 30))
    assert (order.queued, order.trading_date, order.phase) == (True, dt.date(2026, 3, 4), "closed")
    error = _refused(account, stock, market_at(10), "AFTER_HOURS_SINGLE", 70_000)  # never queued
    assert error.code == "phase_rejects_order_type"


@pytest.mark.parametrize("order_type", ["PRE_CLOSE_PRICE", "POST_CLOSE_PRICE"])
def test_closing_price_orders_take_no_price(account, stock, close_today, order_type):
    error = _refused(account, stock, market_at(8, 35), order_type, 70_000)
    assert (error.code, "takes no limit_price (its price is the close)" in error.message) == ("invalid_price", True)


def test_pre_close_price_buy_reserves_at_the_previous_close(account, stock):
    order = _place(account, stock, market_at(8, 31), "PRE_CLOSE_PRICE", None)
    assert (order.reserve_price, order.reserved_cash) == (BASE, 700_105)


def test_post_close_price_buy_reserves_at_todays_close(account, stock, close_today):
    order = _place(account, stock, market_at(15, 35), "POST_CLOSE_PRICE", None)
    assert (order.reserve_price, order.limit_price) == (CLOSE, None)


@pytest.mark.parametrize(
    ("price", "code"),
    [
        (64_800, None),  # exactly -10 % of 72,000
        (79_200, None),  # exactly +10 %
        (64_700, "after_hours_out_of_range"),
        (79_300, "after_hours_out_of_range"),
        (70_050, "price_off_tick"),
        (None, "invalid_price"),
    ],
)
def test_after_hours_single_price_is_a_limit_within_ten_percent_of_todays_close(
    account, stock, close_today, price, code
):
    if code is None:
        assert _place(account, stock, market_at(16, 5), "AFTER_HOURS_SINGLE", price).limit_price == price
    else:
        error = _refused(account, stock, market_at(16, 5), "AFTER_HOURS_SINGLE", price)
        assert error.code == code
        if code == "after_hours_out_of_range":
            assert "64,800-79,200" in error.message


def test_after_hours_range_is_also_inside_the_daily_band(account, make_stock):
    stock = make_stock("000660", base=10_000)  # band 7,000 - 13,000
    DailyBar.objects.create(
        stock=stock, date=TRADING_DATE, open=12_000, high=12_900, low=12_000, close=12_900, volume=1, source="kis"
    )
    # +10 % of 12,900 is 14,190, but the day's upper limit is 13,000
    assert _refused(account, stock, market_at(16, 5), "AFTER_HOURS_SINGLE", 13_100).code == "price_out_of_band"
    assert _place(account, stock, market_at(16, 5), "AFTER_HOURS_SINGLE", 13_000).limit_price == 13_000


def test_after_hours_single_without_todays_close_is_refused(account, stock):
    assert _refused(account, stock, market_at(16, 5), "AFTER_HOURS_SINGLE", 70_000).code == "no_reference_price"


def _printed(hour: int, minute: int, second: int = 0) -> str:
    return dt.datetime.combine(TRADING_DATE, dt.time(hour, minute, second), tzinfo=KST).isoformat()


def test_todays_close_from_the_quote_snapshot_of_the_closing_print(account, stock):
    # the snapshot's phase is the stock's phase now (after-hours), its price the closing call's (random end)
    _quote(stock.code, price=71_000, time=_printed(15, 30, 17), phase="after_hours_single", venue="KRX")
    order = _place(account, stock, market_at(16, 5), "AFTER_HOURS_SINGLE", 78_100)  # 71,000 + 10 % = 78,100
    assert order.limit_price == 78_100
    assert _refused(account, stock, market_at(16, 5), "AFTER_HOURS_SINGLE", 78_200).code == "after_hours_out_of_range"


def test_an_after_hours_call_price_is_not_taken_for_the_close(account, stock):
    _quote(stock.code, price=75_000, time=_printed(16, 10), phase="after_hours_single", venue="KRX")
    assert _refused(account, stock, market_at(16, 15), "AFTER_HOURS_SINGLE", 75_000).code == "no_reference_price"
    from apps.marketdata.models import MinuteBar

    MinuteBar.objects.create(stock=stock, ts=at_close(), open=71_000, high=71_000, low=71_000, close=71_000,
                             volume=100, source="ws")  # fmt: skip
    assert _place(account, stock, market_at(16, 15), "AFTER_HOURS_SINGLE", 75_000).limit_price == 75_000


def at_close() -> dt.datetime:
    return dt.datetime.combine(TRADING_DATE, dt.time(15, 30), tzinfo=KST)


# --- NXT and SOR -------------------------------------------------------------------------------------------


def test_nxt_route_needs_an_nxt_eligible_stock(account, stock):
    assert _refused(account, stock, market_at(10), route="NXT").code == "nxt_not_eligible"
    assert _place(account, stock, market_at(10), route="SOR").route == "SOR"  # SOR then uses KRX alone


@pytest.mark.parametrize(
    ("at", "order_type", "price", "phase"),
    [
        ((8, 10), "LIMIT", 70_000, "nxt_pre"),
        ((10, 0), "MARKET", None, "continuous"),
        ((15, 35), "LIMIT", 70_000, "nxt_after"),  # orders from 15:30
        ((19, 59), "LIMIT", 70_000, "nxt_after"),
    ],
)
def test_nxt_takes_orders_in_its_sessions(account, nxt_stock, at, order_type, price, phase):
    order = _place(account, nxt_stock, market_at(*at), order_type, price, route="NXT")
    assert (order.route, order.phase, order.trading_date) == ("NXT", phase, TRADING_DATE)


@pytest.mark.parametrize(
    ("at", "order_type", "code", "text"),
    [
        ((8, 10), "MARKET", "phase_rejects_order_type", "NXT nxt pre (08:00-08:50 KST) takes LIMIT orders only"),
        ((17, 0), "MARKET", "phase_rejects_order_type", "NXT nxt after (15:30-20:00 KST) takes LIMIT orders only"),
        ((8, 55), "LIMIT", "venue_not_open", "(08:50-09:00:30 KST)); LIMIT orders are accepted from 09:00:30 KST"),
        ((15, 25), "LIMIT", "venue_not_open", "accepted from 15:30 KST"),  # and 15:20-15:30
        ((20, 0), "LIMIT", "venue_not_open", "accepted from 08:00 KST on 2026-03-04"),
        ((10, 0), "AFTER_HOURS_SINGLE", "phase_rejects_order_type", "NXT continuous"),
    ],
)
def test_nxt_refusals_name_the_phase(account, nxt_stock, at, order_type, code, text):
    price = None if order_type == "MARKET" else 70_000
    error = _refused(account, nxt_stock, market_at(*at), order_type, price, route="NXT")
    assert error.code == code
    assert text in error.message


def test_nxt_band_is_thirty_percent_of_the_previous_krx_close(account, nxt_stock):
    assert _place(account, nxt_stock, market_at(17), "LIMIT", 91_000, route="NXT").limit_price == 91_000
    assert _refused(account, nxt_stock, market_at(17), "LIMIT", 91_100, route="NXT").code == "price_out_of_band"


def test_sor_takes_the_venue_that_is_open(account, nxt_stock):
    assert _place(account, nxt_stock, market_at(17), route="SOR").phase == "nxt_after"  # KRX: after-hours only
    assert _place(account, nxt_stock, market_at(10), route="SOR").phase == "continuous"
    assert _refused(account, nxt_stock, market_at(17), "MARKET", None, route="SOR").code == "phase_rejects_order_type"


def test_an_unknown_route_is_refused(account, stock):
    assert _refused(account, stock, market_at(10), route="BOTH").code == "invalid_route"


# --- per-stock state: halted, VI ----------------------------------------------------------------------------


def test_a_halted_stock_takes_no_order_but_cancels(account, stock):
    order = _place(account, stock, market_at(10))
    _quote(stock.code, halted=True)
    error = _refused(account, stock, market_at(10))
    assert (error.code, "takes cancels only" in error.message) == ("stock_halted", True)
    from apps.trading.orders.release import order_cancel

    assert order_cancel(order_id=order.pk).status == "CANCELLED"


def test_the_feeds_market_state_halts_a_stock_before_its_first_trade(account, stock):
    get_redis().hset(keys.STATES_HASH, stock.code, json.dumps({"phase": "halted", "halted": True, "vi": None}))
    assert _refused(account, stock, market_at(8, 45)).code == "stock_halted"


def test_an_order_under_vi_is_accepted_for_the_vi_call(account, stock):
    _quote(stock.code, phase="vi_auction", vi={"kind": "dynamic", "reference": 70_000, "until": None})
    order = _place(account, stock, market_at(10, 1))
    assert order.phase == "vi_auction"
