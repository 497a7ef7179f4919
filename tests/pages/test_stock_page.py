"""The stock page: chart container, order book and trades from the Redis snapshots, and the order ticket
posted without JavaScript (post/redirect/get with a message) and through htmx (a fragment swap)."""

from __future__ import annotations

import re

import pytest

from apps.trading.accounts.models import PaperAccount
from apps.trading.orders.models import Order

from .conftest import store_book, store_quote

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def _ticket(**overrides) -> dict:
    body = {"side": "BUY", "order_type": "LIMIT", "quantity": "10", "price": "69900", "client_order_id": ""}
    body.update(overrides)
    return body


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)).strip()


def test_stock_page_renders_chart_book_trades_and_ticket(web, samsung, market, clean_redis):
    store_quote(clean_redis, "005930", price=71_000, change=1_000, change_rate="1.43")
    store_book(clean_redis, "005930")

    html = web.get("/stocks/005930/").content.decode()

    assert re.search(r'<div id="chart"[^>]*data-bars="0" data-last-time=""', html, re.S)
    assert re.search(r'data-code="005930" data-interval="1m" data-date="2026-02-20"', html)
    assert re.findall(r'<button type="button" data-interval="([0-9a-z]+)"', html) == ["1m", "5m", "15m", "60m", "1d"]
    assert '<script src="/static/vendor/lightweight-charts.standalone.production.js" defer></script>' in html
    assert re.search(r'<table id="orderbook" class="book" data-updated="0"[^>]* data-base="70000"', html)
    asks = re.findall(r'<tr data-side="ask" data-level="(\d+)">', html)
    bids = re.findall(r'<tr data-side="bid" data-level="(\d+)">', html)
    assert asks == [str(n) for n in range(10, 0, -1)] and bids == [str(n) for n in range(1, 11)]
    best_ask = re.search(r'<tr data-side="ask" data-level="1">(.*?)</tr>', html, re.S).group(1)
    assert '<td class="num price up" data-field="price">71,100</td>' in best_ask  # above the 70,000 base
    assert '<span class="v">1,000</span>' in best_ask
    best_bid = re.search(r'<tr data-side="bid" data-level="10">(.*?)</tr>', html, re.S).group(1)
    assert '<td class="num price up" data-field="price">70,100</td>' in best_bid
    assert 'style="width: 50%"' in best_bid  # 5,000 of the deepest level's 10,000 (ask 10)
    assert re.search(r'<strong id="last-price" class="up" data-price="71000">71,000</strong>', html)
    assert re.search(r'<tbody id="trades">\s*<tr data-trade><td>10:00:05</td>', html)
    for label in ("호가", "체결", "현재가"):
        assert label in html


def test_order_ticket_fields_steppers_and_price_band(web, samsung, market):
    first = web.get("/stocks/005930/").content.decode()
    second = web.get("/stocks/005930/").content.decode()

    form = re.search(r'<form id="order-ticket".*?</form>', first, re.S).group(0)
    assert 'method="post"' in form and 'hx-post="/stocks/005930/"' in form
    assert re.findall(r'name="side" value="(\w+)"', form) == ["BUY", "SELL"]
    assert re.findall(r'name="order_type" value="(\w+)"', form) == [
        "LIMIT", "MARKET", "PRE_CLOSE_PRICE", "POST_CLOSE_PRICE", "AFTER_HOURS_SINGLE",
    ]  # fmt: skip
    assert re.findall(r'name="route" value="(\w+)"', form) == ["KRX", "NXT", "SOR"]
    for name, label_id in (("quantity", "ticket-quantity"), ("price", "ticket-price")):
        assert re.search(rf'<label for="{label_id}">', form) and f'id="{label_id}" name="{name}"' in form
    assert 'data-step="up"' in form and 'data-step="down"' in form
    band = _text(re.search(r'<p id="price-band".*?</p>', form, re.S).group(0))
    assert band == "하한가 49,000 ~ 상한가 91,000 · 기준가 70,000원"
    assert 'data-lower="49000" data-upper="91000"' in form
    ticks = "[[2000, 1], [5000, 5], [20000, 10], [50000, 50], [200000, 100], [500000, 500], [null, 1000]]"
    assert f'data-ticks="{ticks}"' in form  # the KRX tick table in force, for the price steppers
    ids = [re.search(r'name="client_order_id" value="([0-9a-f]{32})"', page).group(1) for page in (first, second)]
    assert ids[0] != ids[1]
    assert 'id="order-errors"' not in form and 'id="order-result"' not in form


def test_unknown_or_malformed_stock_is_404(web, samsung, market):
    assert web.get("/stocks/999999/").status_code == 404
    assert web.get("/stocks/abc/").status_code == 404


def test_order_without_javascript_redirects_and_shows_the_order(web, samsung, market, account):
    response = web.post("/stocks/005930/", _ticket(client_order_id="c-1"))

    order = Order.objects.get(account=account)
    assert (response.status_code, response["Location"]) == (302, f"/stocks/005930/?order={order.pk}")
    assert (order.side, order.order_type, order.quantity, order.limit_price, order.status) == (
        "BUY",
        "LIMIT",
        10,
        69_900,
        "PENDING",
    )
    page = web.get(response["Location"]).content.decode()
    result = _text(re.search(r'<div id="order-result".*?</div>', page, re.S).group(0))
    assert f"#{order.pk}" in result and "상태 접수" in result
    assert f"주문 #{order.pk} 접수 (PENDING)" in page  # the Django message
    # Reloading the same form (same client_order_id) does not place a second order.
    web.post("/stocks/005930/", _ticket(client_order_id="c-1"))
    assert Order.objects.filter(account=account).count() == 1


def test_rejected_order_without_javascript_shows_the_coded_error_and_changes_nothing(web, samsung, market, account):
    response = web.post("/stocks/005930/", _ticket(quantity="200", price="70000"))

    html = response.content.decode()
    assert response.status_code == 200
    errors = _text(re.search(r'<div id="order-errors" class="errors" role="alert">.*?</div>', html, re.S).group(0))
    # 70,000 x 200 + commission truncate(14,000,000 x 0.00015) = 2,100
    assert errors == "insufficient_cash Needs 14,002,100 KRW (price x quantity + commission); 10,000,000 free."
    assert not Order.objects.exists()
    account.refresh_from_db()
    assert (account.cash, account.reserved_cash) == (10_000_000, 0)
    # The ticket keeps what was typed.
    assert 'name="quantity" min="1" step="1" inputmode="numeric" required value="200"' in html


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_ticket(price="69950"), "price_off_tick"),
        (_ticket(price="91100"), "price_out_of_band"),
        (_ticket(quantity="abc"), "invalid_quantity"),
        (_ticket(quantity="0"), "invalid_quantity"),
        (_ticket(side="HOLD"), "invalid_side"),
        (_ticket(price=""), "invalid_price"),
        (_ticket(side="SELL"), "insufficient_holding"),
    ],
)
def test_htmx_ticket_errors_are_inline(web, samsung, market, account, body, code):
    response = web.post("/stocks/005930/", body, **HX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.startswith('<form id="order-ticket"') and "<html" not in html
    assert re.search(rf'<div id="order-errors" class="errors" role="alert">\s*<p><code>{code}</code>', html)
    assert not Order.objects.exists()
    assert PaperAccount.objects.get(pk=account.pk).reserved_cash == 0


def test_htmx_order_shows_the_result_in_place(web, samsung, market, account):
    response = web.post("/stocks/005930/", _ticket(side="BUY", order_type="MARKET", price="12345", quantity="3"), **HX)

    html = response.content.decode()
    order = Order.objects.get(account=account)
    assert (order.order_type, order.limit_price, order.quantity) == ("MARKET", None, 3)  # price ignored
    assert re.search(rf'<div id="order-result" class="result" role="status" data-order-id="{order.pk}">', html)
    assert f'<strong data-order-status data-order-id="{order.pk}" data-value="PENDING">접수</strong>' in html
    # The fresh ticket keeps the order type and gets a new client_order_id.
    assert 'name="order_type" value="MARKET" data-kind="market" checked' in html
    assert not re.search(r'name="client_order_id" value=""', html)


def test_order_while_the_market_is_closed_is_refused(web, samsung, pin_market):
    pin_market("closed")

    html = web.post("/stocks/005930/", _ticket(), **HX).content.decode()

    assert "<code>market_closed</code>" in html
    assert not Order.objects.exists()
