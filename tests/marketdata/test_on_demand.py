"""Any listed stock: bars fetched from the broker (the sandbox over real HTTP) the first time it is opened, kept
current by the collection jobs while someone watches it, and tradable under the same order validation."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from apps.marketdata.models import BarSource, DailyBar, MinuteBar, ReferencePrice, Stock
from apps.marketdata.on_demand import (
    FILLED_KEY,
    collection_codes,
    on_demand_codes,
    on_demand_touch,
    stock_bars_ensure,
)

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = "test-admin-token"


@pytest.fixture
def broker(settings, clean_redis):
    """A sandbox broker reached through the settings (as the web process reaches it), its clock at 16:00 (the
    replayed day's session is over) unless a test moves it."""
    from apps.sandbox.server import SandboxThread
    from tests.sandbox.conftest import base_config, shared_market

    cfg = base_config(token_issue_interval_s=1.0)
    with SandboxThread(cfg, shared_market(cfg)) as sandbox:
        settings.MARKET_BROKER = "sandbox"
        settings.KIS_ENV = "paper"
        settings.SANDBOX_CONNECT_HOST = "127.0.0.1"
        settings.SANDBOX_PAPER_REST_PORT = sandbox.ports.paper_rest
        settings.SANDBOX_REAL_REST_PORT = sandbox.ports.real_rest
        settings.KIS_TOKEN_ISSUE_INTERVAL = 1.0
        sandbox.clock = lambda hhmmss: httpx.post(
            f"http://127.0.0.1:{sandbox.ports.paper_rest}/sandbox/clock",
            json={"time": hhmmss, "speed": 0.0001},
            headers={"X-Sandbox-Admin": ADMIN},
            timeout=10,
        ).raise_for_status()
        sandbox.clock("16:00:00")
        from apps.marketdata import market_clock

        market_clock._sandbox_cache.clear()
        yield sandbox


@pytest.fixture
def outside(broker):
    """A stock the sandbox replays, listed but outside the collection universe (which holds another one)."""
    codes = list(broker.server.core.market.tapes)
    Stock.objects.create(code=codes[0], name="universe", market="KOSPI", rank=1)
    tape = broker.server.core.market.tapes[codes[-1]]
    return Stock.objects.create(
        code=tape.code, name=tape.instrument.name, market=tape.instrument.market, in_universe=False
    )


def test_the_first_open_fetches_the_history_then_nothing_more(outside, api_client, clean_redis):
    day = dt.date.fromisoformat(httpx.get(_clock_url(), timeout=5).json()["replay_date"])  # the replayed day

    response = api_client.get(
        "/api/marketdata/bars", {"code": outside.code, "interval": "1d", "from": "2025-01-01", "to": day.isoformat()}
    )

    assert response.status_code == 200
    bars = response.json()
    stored = DailyBar.objects.filter(stock=outside, source=BarSource.KIS)
    assert len(bars) == stored.count() > 0
    assert bars[-1]["time"] == day.isoformat()  # the session is over: its bar is final and fetched
    assert clean_redis.get(FILLED_KEY.format(code=outside.code)) is not None
    assert outside.code in on_demand_codes()
    assert stock_bars_ensure(outside.code) is None  # filled for this session: no second round of calls
    minutes = api_client.get(
        "/api/marketdata/bars", {"code": outside.code, "interval": "1m", "from": day.isoformat(), "to": day.isoformat()}
    )
    assert minutes.status_code == 200 and len(minutes.json()) == MinuteBar.objects.filter(stock=outside).count() > 300


def _clock_url() -> str:
    from apps.marketdata.market_clock import sandbox_rest_url

    return f"{sandbox_rest_url()}/sandbox/clock"


def test_a_universe_stock_is_not_fetched_on_demand(broker, api_client, clean_redis):
    code = next(iter(broker.server.core.market.tapes))
    Stock.objects.create(code=code, name="universe", market="KOSPI", rank=1)

    response = api_client.get("/api/marketdata/bars", {"code": code, "interval": "1d", "from": "2026-01-01",
                                                       "to": "2026-02-20"})  # fmt: skip

    assert (response.status_code, response.json()) == (200, [])
    assert on_demand_codes() == []


def test_a_delisted_stock_is_never_fetched(broker, api_client):
    code = list(broker.server.core.market.tapes)[-1]
    Stock.objects.create(code=code, name="gone", market="KOSPI", active=False, in_universe=False)

    response = api_client.get("/api/marketdata/bars", {"code": code, "interval": "1d", "from": "2026-01-01",
                                                       "to": "2026-02-20"})  # fmt: skip

    assert (response.status_code, response.json()) == (200, [])
    assert not DailyBar.objects.exists()


def test_an_unreachable_broker_answers_with_what_is_stored(settings, api_client, clean_redis):
    from tests.trading.orders.test_reference_price import _closed_port

    settings.MARKET_BROKER = "kis"  # the calendar clock; the broker itself cannot be reached
    settings.KIS_APP_KEY, settings.KIS_APP_SECRET = "P" * 36, "s" * 180
    settings.KIS_REST_URL = f"http://127.0.0.1:{_closed_port()}"
    settings.KIS_MAX_RETRIES = 0
    stock = Stock.objects.create(code="000250", name="삼천당제약", market="KOSDAQ", in_universe=False)

    response = api_client.get("/api/marketdata/bars", {"code": stock.code, "interval": "1d", "from": "2026-01-01",
                                                       "to": "2026-02-20"})  # fmt: skip

    assert (response.status_code, response.json()) == (200, [])
    assert clean_redis.get(FILLED_KEY.format(code=stock.code)) is None  # tried again on the next open


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"code": "99999"}, "code"),
        ({"code": "0" * 5000}, "code"),
        ({"code": "005930'; DROP TABLE"}, "code"),
        ({"code": ""}, "code"),
    ],
)
def test_bad_codes_are_coded_400s(api_client, params, field):
    query = {"interval": "1d", "from": "2026-01-01", "to": "2026-02-20", **params}

    response = api_client.get("/api/marketdata/bars", query)

    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "invalid_bar_request" and field in body["fields"]
    assert len(str(body)) < 2000


def test_watched_stocks_are_collected_with_the_universe_while_watched(db, clean_redis, settings):
    Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    Stock.objects.create(code="000250", name="삼천당제약", market="KOSDAQ", in_universe=False)
    settings.ON_DEMAND_KEEP_SECONDS = 600
    on_demand_touch("000250", now=1_000_000.0)
    on_demand_touch("005930", now=1_000_000.0)

    on_demand_touch("000250", now=1_000_010.0)

    assert on_demand_codes(now=1_000_500.0) == ["000250", "005930"]  # most recently opened first
    assert collection_codes()[0] == "005930" and collection_codes().count("005930") == 1
    assert on_demand_codes(now=1_000_601.0) == []  # nobody opened them for longer than the keep time
    assert clean_redis.zcard("hoga:marketdata:on_demand") == 0


def test_an_order_on_a_stock_outside_the_universe_takes_the_brokers_base_price(broker, outside, user):
    """No bar stored: the reference price is the broker's base price (stck_sdpr), as for any stock."""
    from apps.core.krx.calendar import KST
    from apps.marketdata.market_clock import MarketNow
    from apps.trading.accounts.services import paper_account_create
    from apps.trading.orders.placement import order_place

    account = paper_account_create(user=user, name="t", initial_cash=100_000_000)
    day = dt.date(2026, 2, 20)
    market = MarketNow(now=dt.datetime.combine(day, dt.time(10), tzinfo=KST), trading_date=day, session="continuous",
                       source="sandbox")  # fmt: skip
    order = order_place(account_id=account.pk, code=outside.code, side="BUY", order_type="MARKET", quantity=1,
                        market=market)  # fmt: skip

    reference = ReferencePrice.objects.get(stock=outside, trading_date=day)
    tape = broker.server.core.market.tapes[outside.code]
    assert (reference.source, reference.price) == ("broker_quote", tape.prev_close)
    assert (order.stock_id, order.status) == (outside.pk, "PENDING")


def test_a_user_opening_many_new_stocks_is_answered_from_what_is_stored(broker, settings, clean_redis, user):
    settings.ON_DEMAND_FILLS_PER_MINUTE = 2
    codes = list(broker.server.core.market.tapes)[-3:]
    for code in codes:
        Stock.objects.create(code=code, name=code, market="KOSPI", in_universe=False)

    results = [stock_bars_ensure(code, user_id=user.pk) for code in codes]

    assert [r is not None for r in results] == [True, True, False]
    assert not DailyBar.objects.filter(stock__code=codes[2]).exists()
    assert stock_bars_ensure(codes[2], user_id=user.pk + 1) is not None  # another user's budget
