"""The sandbox driven by python-kis (PyPI ``python-kis``, pinned in requirements/dev.txt), a maintained KIS client
Hoga does not own, unmodified but for its base URLs (``pykis.kis.REAL_DOMAIN`` and
``pykis.client.websocket.WEBSOCKET_REAL_DOMAIN``: it has no setting for them). Token, quotations, charts,
order book, orders, balance, daily orders and the real-time feed, each parsed by python-kis's own models.

Known python-kis limits against KIS as it is today (the sandbox follows KIS, not the library):
- Its execution-notice model has the older 23-field H0STCNI0 layout; KIS sends 26 fields (kis-api.md §6.7), so
  python-kis rejects the records ("Invalid data length"); tests/sandbox/test_trading.py decrypts them with a plain
  client.
- ``account().balance()`` and ``daily_orders()`` also query overseas TRs the sandbox does not serve; the domestic
  functions are called directly.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from apps.sandbox.server import SandboxThread
from tests.sandbox.conftest import ADMIN, base_config, fresh_credential, rest_url, shared_market

pykis = pytest.importorskip("pykis")
from pykis.api.account.balance import domestic_balance  # noqa: E402
from pykis.api.account.daily_order import _domestic_daily_orders  # noqa: E402

REPLAY_DAY = dt.date(2026, 2, 20)


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxThread]:
    cfg = base_config(speed=30.0)
    with SandboxThread(cfg, shared_market(cfg)) as running:
        httpx.post(
            f"{rest_url(running, 'real')}/sandbox/clock", json={"time": "10:30:00"}, headers={"X-Sandbox-Admin": ADMIN}
        )
        yield running


@pytest.fixture()
def kis(box: SandboxThread, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    import pykis.client.websocket
    import pykis.kis

    monkeypatch.setattr(pykis.kis, "REAL_DOMAIN", rest_url(box, "real"))
    monkeypatch.setattr(pykis.client.websocket, "WEBSOCKET_REAL_DOMAIN", f"ws://127.0.0.1:{box.ports.real_ws}")
    cred = fresh_credential("real")
    client = pykis.PyKis(
        id="hogauser", account="50009999-01", appkey=cred.appkey, secretkey=cred.appsecret, keep_token=False
    )
    yield client
    if client._websocket is not None:
        client.websocket.disconnect()


def test_token_quote_and_product_info(kis: object) -> None:
    token = kis.token  # type: ignore[attr-defined]
    assert token.remaining > dt.timedelta(hours=23)
    stock = kis.stock("005930")  # type: ignore[attr-defined]  # CTPF1604R 상품기본조회
    assert stock.name == "삼성전자" and stock.market == "KRX"
    quote = stock.quote()  # FHKST01010100
    assert quote.symbol == "005930" and quote.price > 0 and quote.volume > 0
    assert quote.high >= quote.price >= quote.low > 0
    assert quote.prev_price == quote.price - quote.change
    assert quote.indicator.per > 0 and quote.indicator.eps > 0  # synthetic fundamentals, flagged in the notes


def test_day_chart_pages_through_the_replayed_session(kis: object) -> None:
    chart = kis.stock("005930").day_chart()  # type: ignore[attr-defined]  # FHKST03010200, 30 rows a call
    bars = chart.bars
    assert len(bars) > 30  # python-kis paged back (HOUR_1 = oldest - 1 minute) more than once
    times = [b.time for b in bars]
    assert times == sorted(times) and times[0].time() == dt.time(9, 0)
    assert all(b.high >= max(b.open, b.close) and b.low <= min(b.open, b.close) for b in bars)


def test_daily_chart_pages_through_every_recorded_day(kis: object) -> None:
    chart = kis.stock("005930").chart(period="day")  # type: ignore[attr-defined]  # FHKST03010100, 100 rows a call
    days = [b.time.date() for b in chart.bars]
    assert days == sorted(days) and days[-1] == REPLAY_DAY
    assert len(days) > 250 and days[0] < dt.date(2021, 1, 1)  # the recorded history, well past one page


def test_order_book(kis: object) -> None:
    book = kis.stock("005930").orderbook()  # type: ignore[attr-defined]  # FHKST01010200
    assert len(book.asks) == 10 and len(book.bids) == 10
    assert book.asks[0].price > book.bids[0].price > 0 and book.asks[0].volume > 0


def test_orders_balance_and_daily_orders(kis: object) -> None:
    stock = kis.stock("005930")  # type: ignore[attr-defined]
    ask = stock.orderbook().asks[0].price
    order = stock.buy(price=ask, qty=2)  # legacy TTTC0802U body, no EXCG_ID_DVSN_CD
    assert len(order.number) == 10
    account = kis.primary_account  # type: ignore[attr-defined]
    deadline = time.monotonic() + 20
    while True:
        balance = domestic_balance(kis, account)  # TTTC8434R
        held = [s for s in balance.stocks if s.symbol == "005930"]
        if (held and held[0].quantity == 2) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert held and held[0].quantity == 2 and held[0].purchase_amount <= ask * 2
    assert balance.deposits["KRW"].amount == Decimal(100_000_000) - held[0].purchase_amount
    orders = _domestic_daily_orders(kis, account, REPLAY_DAY, REPLAY_DAY)  # TTTC8001R or CTSC9115R by date
    mine = [o for o in orders.orders if o.number == order.number]
    assert mine and mine[0].executed_quantity == 2 and mine[0].pending_quantity == 0 and mine[0].type == "buy"


def test_realtime_prices_and_order_book(kis: object) -> None:
    stock = kis.stock("005930")  # type: ignore[attr-defined]
    prices: list[object] = []
    books: list[object] = []
    both = threading.Event()

    def on_price(_sender: object, e: object) -> None:
        prices.append(e.response)  # type: ignore[attr-defined]
        if books:
            both.set()

    def on_book(_sender: object, e: object) -> None:
        books.append(e.response)  # type: ignore[attr-defined]
        if prices:
            both.set()

    price_ticket = stock.on("price", on_price)  # H0STCNT0, parsed by python-kis's 46 columns
    book_ticket = stock.on("orderbook", on_book)  # H0STASP0, 59 columns
    try:
        assert both.wait(20), f"prices {len(prices)}, books {len(books)}"
    finally:
        price_ticket.unsubscribe()
        book_ticket.unsubscribe()
    first = prices[0]
    assert first.symbol == "005930" and first.price > 0 and first.volume > 0  # type: ignore[attr-defined]
    assert books[0].asks[0].price > books[0].bids[0].price  # type: ignore[attr-defined]
