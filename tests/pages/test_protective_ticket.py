"""The order ticket's conditional and bracket fields, and the orders page showing triggers and bracket legs."""

from __future__ import annotations

import re

import pytest

from apps.trading.orders.models import Order

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def _ticket(**overrides) -> dict:
    body = {"side": "BUY", "order_type": "LIMIT", "quantity": "10", "price": "70000", "client_order_id": ""}
    body.update(overrides)
    return body


def test_a_bracket_from_the_ticket_shows_both_legs_on_the_orders_page(web, samsung, market, account):
    html = web.post("/stocks/005930/", _ticket(take_profit_price="75000", stop_loss_price="65000"), **HX)
    html = html.content.decode()
    entry = Order.objects.get(bracket_leg="ENTRY")
    assert re.search(rf'<div id="order-result" class="result" role="status" data-order-id="{entry.pk}">', html)
    assert "이익실현·손절 주문이 붙은 브래킷 진입" in html

    page = web.get("/orders/").content.decode()
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr data-order-id="(\d+)".*?</tr>', page, re.S)}
    legs = {o.bracket_leg: o for o in Order.objects.filter(parent=entry)}
    take_profit, stop_loss = rows[str(legs["TAKE_PROFIT"].pk)], rows[str(legs["STOP_LOSS"].pk)]
    assert "Take-profit leg" in take_profit and "75,000" in take_profit and "Waiting for the entry" in take_profit
    assert "Stop-loss leg" in stop_loss and "65,000" in stop_loss and f"#{entry.pk}" in stop_loss
    assert "Entry" in rows[str(entry.pk)]


def test_a_stop_from_the_ticket_ignores_the_type_buttons(web, samsung, market, account):
    web.post("/stocks/005930/", _ticket(trigger_type="STOP", trigger_price="75000", price="70000"), **HX)
    order = Order.objects.get()
    assert (order.order_type, order.limit_price, order.trigger_type, order.trigger_price) == (
        "MARKET", None, "STOP", 75_000,
    )  # fmt: skip
    page = web.get("/orders/").content.decode()
    assert "Stop (market on trigger) @ 75,000" in page and "Armed" in page


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_ticket(trigger_type="NOPE", trigger_price="75000"), "invalid_trigger"),
        (_ticket(trigger_type="STOP", trigger_price="abc"), "invalid_trigger"),
        (_ticket(trigger_type="STOP"), "invalid_trigger"),
        (_ticket(trigger_type="STOP_LIMIT", trigger_price="75000", price="99000"), "price_out_of_band"),
        (_ticket(trigger_type="TRAILING_STOP", trail_percent="70"), "invalid_trigger"),
        (_ticket(take_profit_price="65000", stop_loss_price="75000"), "invalid_bracket"),
        (_ticket(take_profit_price="75000"), "invalid_trigger"),
    ],
)
def test_malformed_conditional_tickets_are_coded_errors(web, samsung, market, account, body, code):
    response = web.post("/stocks/005930/", body, **HX)
    assert response.status_code == 200
    assert re.search(
        rf'<div id="order-errors" class="errors" role="alert">\s*<p><code>{code}</code>', response.content.decode()
    )
    assert not Order.objects.exists()
