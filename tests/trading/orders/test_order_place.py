"""order_place: acceptance, reservations, every validation rule (coded error, no state change), idempotency."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.core.exceptions import ApplicationError
from apps.trading.accounts.models import PaperAccount
from apps.trading.orders.models import Order, OrderStatus
from apps.trading.orders.placement import order_place
from apps.trading.positions.models import Position

from .conftest import TRADING_DATE, closed_market, give_shares, open_market

pytestmark = pytest.mark.django_db


def _snapshot(account):
    account = PaperAccount.objects.get(pk=account.pk)
    positions = list(Position.objects.filter(account=account).values_list("quantity", "reserved_quantity"))
    return Order.objects.count(), account.cash, account.reserved_cash, positions


def test_limit_buy_reserves_price_times_quantity_plus_truncated_commission(place, account):
    order = place("BUY", 10, 70_000)

    account.refresh_from_db()
    # 700,000 x 0.00015 = 105 -> reservation 700,105
    assert (order.status, order.trading_date, order.reserve_price, order.reserved_cash) == (
        OrderStatus.PENDING, TRADING_DATE, 70_000, 700_105,
    )  # fmt: skip
    assert (account.cash, account.reserved_cash, account.free_cash) == (10_000_000, 700_105, 9_299_895)


def test_commission_of_the_reservation_is_truncated(place, account):
    order = place("BUY", 3, 70_100)  # 210,300 x 0.00015 = 31.545 -> 31
    assert order.reserved_cash == 210_331


def test_market_buy_reserves_at_the_days_upper_limit(place, account):
    order = place("BUY", 10)
    assert (order.reserve_price, order.reserved_cash) == (91_000, 910_136)  # 910,000 x 0.00015 = 136.5


def test_sell_reserves_the_holding(place, account, stock):
    give_shares(account, stock, 20, 60_000)
    place("SELL", 15, 70_000)
    assert Position.objects.get(account=account).reserved_quantity == 15


def test_limit_price_may_be_exactly_on_either_limit(place):
    assert place("BUY", 1, 91_000).limit_price == 91_000
    assert place("BUY", 1, 49_000).limit_price == 49_000


@pytest.mark.parametrize(
    ("base", "price", "accepted"),
    [
        (9_940, 12_920, True),  # KRX's worked example: limits 12,920 / 6,960
        (9_940, 12_930, False),
        (9_940, 6_960, True),
        (9_940, 6_950, False),
        (19_990, 25_950, True),  # upper 25,980 truncated to the 50-won tick of its band
        (19_990, 26_000, False),
    ],
)
def test_price_band_follows_krx_rounding(make_stock, account, market, base, price, accepted):
    make_stock("000660", base=base)
    kwargs = dict(account_id=account.pk, code="000660", side="BUY", order_type="LIMIT", quantity=1, market=market)
    if accepted:
        assert order_place(limit_price=price, **kwargs).limit_price == price
    else:
        with pytest.raises(ApplicationError) as err:
            order_place(limit_price=price, **kwargs)
        assert err.value.code == "price_out_of_band"


CASES = [
    ("unknown_stock", dict(code="999999")),
    ("unknown_stock", dict(code="")),
    ("inactive_stock", dict(code="000020")),
    ("invalid_side", dict(side="HOLD")),
    ("invalid_order_type", dict(order_type="STOP")),
    ("invalid_quantity", dict(quantity=0)),
    ("invalid_quantity", dict(quantity=-5)),
    ("invalid_quantity", dict(quantity=1.5)),
    ("invalid_quantity", dict(quantity="10")),
    ("invalid_quantity", dict(quantity=True)),
    ("invalid_price", dict(limit_price=None)),
    ("invalid_price", dict(limit_price=0)),
    ("invalid_price", dict(limit_price=70_000.5)),
    ("invalid_price", dict(order_type="MARKET", limit_price=70_000)),
    ("price_off_tick", dict(limit_price=70_050)),  # tick 100 at 70,000
    ("price_off_tick", dict(limit_price=49_025)),  # tick 50 below 50,000
    ("price_out_of_band", dict(limit_price=91_100)),
    ("price_out_of_band", dict(limit_price=48_950)),
    ("insufficient_cash", dict(quantity=143)),  # 143 x 70,000 + 1,501 > 10,000,000
    ("insufficient_cash", dict(order_type="MARKET", limit_price=None, quantity=110)),  # reserved at 91,000
    ("insufficient_holding", dict(side="SELL")),
    ("phase_rejects_order_type", dict(market=closed_market())),  # 16:00: after-hours single price
    ("market_closed", dict(market=closed_market(hour=21))),
    ("no_reference_price", dict(code="000030")),
    ("invalid_client_order_id", dict(client_order_id="x" * 65)),
]


@pytest.mark.parametrize(("code", "override"), CASES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CASES)])
def test_validation_error_is_coded_and_changes_nothing(make_stock, stock, account, market, code, override):
    make_stock("000020", active=False)
    make_stock("000030", base=None)
    before = _snapshot(account)
    kwargs = dict(
        account_id=account.pk, code=stock.code, side="BUY", order_type="LIMIT", quantity=10, limit_price=70_000,
        market=market,
    )  # fmt: skip
    kwargs.update(override)
    with pytest.raises(ApplicationError) as err:
        order_place(**kwargs)
    assert err.value.code == code
    assert err.value.status_code == 400
    assert _snapshot(account) == before


def test_exactly_the_free_cash_is_enough(place, account):
    from django.db.models import F

    PaperAccount.objects.filter(pk=account.pk).update(cash=700_105 - 1_000_000 + F("cash") - 9_000_000)
    place("BUY", 10, 70_000)  # needs 700,105, has 700,105
    account.refresh_from_db()
    assert account.free_cash == 0


def test_sell_beyond_the_free_holding_is_rejected(place, account, stock):
    give_shares(account, stock, 20, 60_000)
    place("SELL", 15, 70_000)
    before = _snapshot(account)
    with pytest.raises(ApplicationError) as err:
        place("SELL", 6, 70_000)  # 20 held, 15 pending -> 5 free
    assert err.value.code == "insufficient_holding"
    assert _snapshot(account) == before
    assert place("SELL", 5, 70_000).quantity == 5


def test_second_buy_sees_cash_reserved_by_the_first(place):
    place("BUY", 100, 70_000)  # 7,001,050 reserved
    with pytest.raises(ApplicationError) as err:
        place("BUY", 43, 70_000)  # 3,010,451 > 2,998,950 free
    assert err.value.code == "insufficient_cash"


def test_another_users_account_is_not_found(place, django_user_model):
    other = django_user_model.objects.create_user(username="other", password="x-pass-123")
    with pytest.raises(ApplicationError) as err:
        place("BUY", 1, 70_000, user=other)
    assert (err.value.code, err.value.status_code) == ("account_not_found", 404)


def test_missing_account_is_not_found(place):
    with pytest.raises(ApplicationError) as err:
        place("BUY", 1, 70_000, account_id=999_999)
    assert err.value.code == "account_not_found"


def test_queue_mode_accepts_for_the_next_trading_day(place, settings, account):
    settings.PAPER_MARKET_CLOSED = "queue"
    order = place("BUY", 1, 70_000, market=closed_market(dt.date(2026, 3, 6)))  # Friday after the close
    assert (order.status, order.queued, order.trading_date) == (OrderStatus.PENDING, True, dt.date(2026, 3, 9))


def test_queue_mode_before_the_open_is_for_today(place, settings):
    settings.PAPER_MARKET_CLOSED = "queue"
    pre_open = open_market()
    pre_open = type(pre_open)(now=pre_open.now.replace(hour=8), trading_date=TRADING_DATE, session="pre_open",
                              source="calendar")  # fmt: skip
    order = place("BUY", 1, 70_000, market=pre_open)
    assert (order.queued, order.trading_date) == (True, TRADING_DATE)


def test_resubmitting_a_client_order_id_returns_the_same_order(place, account):
    first = place("BUY", 10, 70_000, client_order_id="abc-1")
    again = place("BUY", 10, 70_000, client_order_id="abc-1")
    account.refresh_from_db()
    assert again.pk == first.pk
    assert Order.objects.count() == 1
    assert account.reserved_cash == 700_105  # reserved once


def test_resubmission_returns_the_order_even_when_it_would_now_fail(place, account):
    first = place("BUY", 10, 70_000, client_order_id="abc-1")
    assert place("BUY", 10, 70_000, client_order_id="abc-1", market=closed_market()).pk == first.pk


def test_client_order_id_with_different_terms_is_a_409_conflict(place, account):
    place("BUY", 10, 70_000, client_order_id="abc-1")
    before = _snapshot(account)
    with pytest.raises(ApplicationError) as err:
        place("BUY", 11, 70_000, client_order_id="abc-1")
    assert (err.value.code, err.value.status_code) == ("client_order_id_conflict", 409)
    assert _snapshot(account) == before


def test_the_same_client_order_id_on_another_account_is_independent(place, user, account):
    from apps.trading.accounts.services import paper_account_create

    other = paper_account_create(user=user, name="second")
    a = place("BUY", 1, 70_000, client_order_id="same")
    b = place("BUY", 1, 70_000, client_order_id="same", account_id=other.pk)
    assert a.pk != b.pk


def test_placement_records_the_fill_stream_position(place, clean_redis):
    from apps.live.realtime import keys

    entry = clean_redis.xadd(keys.FILL_TICKS_STREAM, {"code": "005930"})
    order = place("BUY", 1, 70_000)
    assert order.fill_after_id == entry.decode()


def test_placement_reads_the_halt_and_the_fill_stream_position_in_one_round_trip(place, clean_redis, monkeypatch):
    """The quote, the market state and the stream's newest id share one pipeline; a halt is still refused."""
    import json

    from apps.live.realtime import keys
    from apps.trading.orders.exceptions import StockHalted

    entry = clean_redis.xadd(keys.FILL_TICKS_STREAM, {"code": "005930"})
    executed = []
    real_pipeline = type(clean_redis).pipeline

    def counting_pipeline(self, *args, **kwargs):
        pipe = real_pipeline(self, *args, **kwargs)
        real_execute = pipe.execute
        pipe.execute = lambda *a, **k: executed.append(len(pipe.command_stack)) or real_execute(*a, **k)
        return pipe

    monkeypatch.setattr(type(clean_redis), "pipeline", counting_pipeline)
    order = place("BUY", 1, 70_000)
    assert (order.fill_after_id, executed) == (entry.decode(), [3])
    clean_redis.hset(keys.STATES_HASH, "005930", json.dumps({"halted": True}))
    with pytest.raises(StockHalted):
        place("BUY", 1, 70_000)


def test_placement_without_redis_uses_the_wall_clock_as_the_fill_stream_position(place, monkeypatch):
    """Redis down: the order is still accepted, its fill position is the current ms (the stream ids' clock)."""
    import time

    import redis as redis_lib

    from apps.trading.orders import placement

    class Down:
        def pipeline(self, **_kwargs):
            raise redis_lib.ConnectionError("Redis is down")

    monkeypatch.setattr(placement, "get_redis", lambda: Down())
    before = int(time.time() * 1000)
    order = place("BUY", 1, 70_000)
    at_ms = int(order.fill_after_id.partition("-")[0])
    assert before <= at_ms <= int(time.time() * 1000)


def test_placement_adds_the_code_to_the_demand_set_after_commit(place, clean_redis, django_capture_on_commit_callbacks):
    from apps.live.realtime import keys

    with django_capture_on_commit_callbacks(execute=True):
        place("BUY", 1, 70_000)
    assert clean_redis.smembers(keys.ORDERS_SET) == {b"005930"}
