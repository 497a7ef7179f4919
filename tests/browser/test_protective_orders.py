"""A bracket placed from the stock page's ticket in Chromium against the real stack, then its entry and both
legs (take-profit and stop-loss, waiting for the entry) on the orders page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.pages import fill_ticket, submit_ticket
from tests.browser.support import API, CODE
from tests.integration.harness import grid_floor, poll, price_limits, ticks_up

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_a_bracket_from_the_stock_page_shows_both_legs_on_the_orders_page(page, stack, api, js_errors):
    quote = next(q for q in api.get("/api/marketdata/quotes", params={"codes": CODE}).json()["quotes"])
    last = quote["price"]
    upper, lower = price_limits(last - quote["change"], stack.replay_day)
    entry_price = max(grid_floor(int(last * 0.85), stack.replay_day), lower)  # rests: the legs keep waiting
    stop_loss = max(grid_floor(int(entry_price * 0.95), stack.replay_day), lower)
    take_profit = min(ticks_up(last, 5, stack.replay_day), upper)
    assert stop_loss < entry_price < take_profit

    page.goto(f"/stocks/{CODE}/")
    client_order_id = fill_ticket(page, side="BUY", order_type="LIMIT", quantity=2, price=entry_price)
    ticket = page.locator("#order-ticket")
    ticket.locator("#ticket-conditional summary").click()
    ticket.locator('input[name="take_profit_price"]').fill(str(take_profit))
    ticket.locator('input[name="stop_loss_price"]').fill(str(stop_loss))
    submit_ticket(page)
    expect(page.locator("#order-result")).to_contain_text("브래킷")

    entry = poll(
        lambda: [o for o in api.get(f"{API}/orders").json()["results"] if o["client_order_id"] == client_order_id],
        bool,
        timeout=5,
        what="the bracket entry",
    )[0]
    orders = api.get(f"{API}/orders").json()["results"]
    legs = {o["bracket_leg"]: o for o in orders if o["parent"] == entry["id"]}
    assert set(legs) == {"TAKE_PROFIT", "STOP_LOSS"}

    page.goto("/orders/")
    for leg, price in (("TAKE_PROFIT", take_profit), ("STOP_LOSS", stop_loss)):
        row = page.locator(f'#open-orders tr[data-order-id="{legs[leg]["id"]}"]')
        expect(row).to_be_visible()
        expect(row.locator('[data-field="bracket_leg"]')).to_contain_text("leg")
        expect(row.locator('[data-field="bracket_leg"]')).to_contain_text(f"#{entry['id']}")
        expect(row.locator('[data-field="trigger"]')).to_contain_text(f"{price:,}")
        expect(row.locator('[data-field="trigger_state"]')).to_contain_text("Waiting")
    expect(page.locator(f'#open-orders tr[data-order-id="{entry["id"]}"] [data-field="bracket_leg"]')).to_contain_text(
        "Entry"
    )
    assert api.delete(f"{API}/orders/{entry['id']}").json()["status"] == "CANCELLED"  # its legs go with it
    assert not js_errors
