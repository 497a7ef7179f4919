"""The reference price (기준가) of an order when no close of the previous trading day is stored: a live tick's
price - change, else the broker's own base price (KIS inquire-price stck_sdpr, from the sandbox over real HTTP),
stored with its source; the ±30 % band stays KRX-exact; with no source at all the order is refused, clearly."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading

import pytest

from apps.core.exceptions import ApplicationError
from apps.core.krx.calendar import KST
from apps.core.krx.rules import price_limits
from apps.marketdata.models import ReferencePrice
from apps.trading.orders.models import Order
from apps.trading.orders.placement import order_place

from .conftest import TRADING_DATE, closed_market

pytestmark = pytest.mark.django_db


def _tick_snapshot(redis, code: str, *, price: int, change: int, day: dt.date = TRADING_DATE) -> None:
    from apps.live.realtime import keys

    at = dt.datetime.combine(day, dt.time(10, 0), tzinfo=KST)
    redis.hset(
        keys.QUOTES_HASH, code, json.dumps({"code": code, "price": price, "change": change, "time": at.isoformat()})
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_broker(settings):
    """The broker cannot be reached (nothing listens on its port)."""
    settings.MARKET_BROKER = "sandbox"
    settings.KIS_ENV = "paper"
    settings.SANDBOX_CONNECT_HOST = "127.0.0.1"
    settings.SANDBOX_PAPER_REST_PORT = _closed_port()


@pytest.fixture
def order(account, market):
    def place(code: str, *, price: int | None, side="BUY", quantity=1, **kw):
        return order_place(
            account_id=account.pk, code=code, side=side, order_type="LIMIT" if price else "MARKET",
            quantity=quantity, limit_price=price, market=kw.pop("market", market), **kw,
        )  # fmt: skip

    return place


def test_a_live_tick_gives_the_base_and_the_band_is_krx_exact(make_stock, order, clean_redis, no_broker):
    make_stock("000660", base=None)
    _tick_snapshot(clean_redis, "000660", price=10_000, change=60)  # base 9,940: KRX's worked example

    accepted = order("000660", price=12_920)

    assert accepted.limit_price == 12_920
    stored = ReferencePrice.objects.get(stock__code="000660", trading_date=TRADING_DATE)
    assert (stored.price, stored.source) == (9_940, "live_tick")
    with pytest.raises(ApplicationError) as err:
        order("000660", price=12_930)
    assert err.value.code == "price_out_of_band"
    assert "12,930 is outside today's limits 6,960-12,920 (base 9,940)" in err.value.message


def test_the_brokers_base_price_when_nothing_is_stored_or_live(make_stock, order, settings):
    """The sandbox answers inquire-price with stck_sdpr = its previous close; the band computed from it is the
    sandbox's own stck_mxpr / stck_llam."""
    from apps.sandbox.server import SandboxThread
    from tests.sandbox.conftest import base_config

    cfg = base_config(data_dir=None, universe_size=1, replay_date=dt.date(2026, 2, 20))
    with SandboxThread(cfg) as sandbox:
        settings.MARKET_BROKER = "sandbox"
        settings.KIS_ENV = "paper"
        settings.SANDBOX_CONNECT_HOST = "127.0.0.1"
        settings.SANDBOX_PAPER_REST_PORT = sandbox.ports.paper_rest
        tape = next(iter(sandbox.server.core.market.tapes.values()))
        make_stock(tape.code, base=None, market=tape.instrument.market)

        accepted = order(tape.code, price=None)

        from apps.marketdata.broker_services import kis_client_sync, kis_config

        with kis_client_sync(kis_config()) as client:  # the broker's own limits, over real HTTP
            quote = client.current_price(tape.code)
    stored = ReferencePrice.objects.get(stock__code=tape.code, trading_date=TRADING_DATE)
    assert (stored.price, stored.source) == (tape.prev_close, "broker_quote")
    upper, lower = price_limits(tape.prev_close, TRADING_DATE, tape.instrument.market)
    assert (upper, lower) == (quote.upper_limit, quote.lower_limit)
    assert accepted.reserve_price == upper  # a MARKET buy reserves at the day's upper limit


def test_no_source_at_all_is_a_clear_refusal_that_changes_nothing(make_stock, order, account, no_broker):
    make_stock("000030", base=None)
    before = (Order.objects.count(), ReferencePrice.objects.count(), account.reserved_cash)

    with pytest.raises(ApplicationError) as err:
        order("000030", price=10_000)

    assert (err.value.code, err.value.status_code) == ("no_reference_price", 400)
    message = err.value.message
    assert "No reference price (기준가) of 000030 for 2026-03-03" in message
    assert "the broker gave no base price" in message
    assert "python manage.py backfill_daily --codes 000030" in message
    account.refresh_from_db()
    assert (Order.objects.count(), ReferencePrice.objects.count(), account.reserved_cash) == before


class RefusingBroker:
    """A broker port that takes each TCP connection and closes it at once (a broker that fails every request),
    counting the connections: every question Hoga asks, a token request or a quotation, is one connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()
        self._thread.join(timeout=5)


@pytest.fixture
def refusing_broker(settings):
    broker = RefusingBroker()
    settings.MARKET_BROKER = "sandbox"
    settings.KIS_ENV = "paper"
    settings.SANDBOX_CONNECT_HOST = "127.0.0.1"
    settings.SANDBOX_PAPER_REST_PORT = broker.port
    yield broker
    broker.close()


def test_a_flood_of_orders_asks_the_broker_once(make_stock, order, clean_redis, refusing_broker):
    """Orders for a stock the broker gives no base price for do not each spend a call of the key's shared
    rate limit: after one failed question the broker is not asked again for BROKER_MISS_SECONDS. Counted at the
    broker's port, whether the question is the quotation or the token request before it (a token stored by an
    earlier test skips the latter)."""
    make_stock("000030", base=None)
    for _ in range(20):
        with pytest.raises(ApplicationError):
            order("000030", price=10_000)

    assert refusing_broker.connections == 1


def test_a_stale_close_is_not_the_days_base(make_stock, order, clean_redis, no_broker):
    """The newest stored close is from a week before the previous trading day (the stack was down): the live
    tick's base is used instead."""
    make_stock("000660", base=50_000, bar_date=TRADING_DATE - dt.timedelta(days=10))
    _tick_snapshot(clean_redis, "000660", price=60_500, change=500)

    accepted = order("000660", price=78_000)  # upper limit of 60,000 is 78,000; of 50,000 it would be 65,000

    assert accepted.limit_price == 78_000
    assert ReferencePrice.objects.get(stock__code="000660").price == 60_000


def test_a_tick_of_another_day_is_not_used(make_stock, order, clean_redis, no_broker):
    make_stock("000660", base=None)
    _tick_snapshot(clean_redis, "000660", price=10_000, change=60, day=TRADING_DATE - dt.timedelta(days=1))

    with pytest.raises(ApplicationError) as err:
        order("000660", price=10_000)
    assert err.value.code == "no_reference_price"


def test_an_order_queued_for_the_next_session_takes_the_newest_close(make_stock, order, settings, no_broker):
    """After the close the day's own close may not be collected yet: the queued order is checked against the
    newest stored close now, and against its session's base at that session's first tick."""
    settings.PAPER_MARKET_CLOSED = "queue"
    make_stock("000660", base=70_000, bar_date=TRADING_DATE - dt.timedelta(days=1))

    queued = order("000660", price=70_000, market=closed_market())

    assert (queued.queued, queued.trading_date) == (True, dt.date(2026, 3, 4))
    assert ReferencePrice.objects.count() == 0


def test_the_first_stored_base_of_the_day_wins(make_stock, order, clean_redis, no_broker):
    make_stock("000660", base=None)
    _tick_snapshot(clean_redis, "000660", price=10_000, change=60)
    order("000660", price=10_000)
    _tick_snapshot(clean_redis, "000660", price=11_000, change=500)  # a later tick says 10,500

    order("000660", price=12_920)  # still inside the band of 9,940

    assert list(ReferencePrice.objects.values_list("price", "source")) == [(9_940, "live_tick")]
