"""With JavaScript disabled the pages still work: the server renders the prices and the orders, the order
ticket posts and the answer page shows the service's error or the new order, and cancelling posts too."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.pages import fill_ticket, number, submit_ticket
from tests.browser.support import API, CODE, api_for, new_context
from tests.integration.harness import grid_floor, price_limits

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def static_page(stack, browser, login_state):
    context = new_context(browser, stack.url, storage_state=login_state, java_script_enabled=False)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def static_api(static_page, stack):
    client = api_for(static_page.context, stack.url)
    yield client
    client.close()


def _resting_price(stack, api) -> int:
    quote = api.get("/api/marketdata/quotes", params={"codes": CODE}).json()["quotes"][0]
    _, lower = price_limits(quote["price"] - quote["change"], stack.replay_day)
    return max(grid_floor(int(quote["price"] * 0.8), stack.replay_day), lower)


def test_dashboard_prices_are_rendered_on_the_server(static_page, stack):
    static_page.goto("/")
    row = static_page.locator(f'#watchlist tr[data-code="{CODE}"]')
    expect(row).to_be_visible()
    assert row.locator('[data-field="name"]').inner_text().strip()
    assert number(row.locator('[data-field="price"]').inner_text()) > 0
    texts = static_page.locator('#watchlist tr[data-code] [data-field="price"]').all_inner_texts()
    codes = static_page.locator("#watchlist tr[data-code]").evaluate_all("rows => rows.map(r => r.dataset.code)")
    replayed = stack.priced_codes()
    priced = [text for code, text in zip(codes, texts, strict=True) if code in replayed]
    shown = sum(1 for text in priced if any(ch.isdigit() for ch in text))  # the feed holds at most 40 codes
    assert shown >= min(20, len(replayed)), priced
    expect(static_page.locator("#market-clock")).not_to_be_empty()
    expect(static_page.locator("#feed-status")).to_have_attribute("data-status")


def test_orders_are_listed_and_the_ticket_and_cancel_forms_post(static_page, stack, static_api):
    page, api = static_page, static_api
    price = _resting_price(stack, api)
    placed = api.post(
        f"{API}/orders", json={"code": CODE, "side": "BUY", "order_type": "LIMIT", "quantity": 1, "limit_price": price}
    )
    assert placed.status_code == 201, placed.text
    page.goto("/orders/")
    expect(page.locator(f'#open-orders tr[data-order-id="{placed.json()["id"]}"]')).to_be_visible()

    # A rejected order: the answer page names the service's error and nothing was placed.
    page.goto(f"/stocks/{CODE}/")
    assert number(page.locator("#last-price").get_attribute("data-price")) > 0
    fill_ticket(page, side="BUY", order_type="LIMIT", quantity=10_000_000, price=price)
    submit_ticket(page)
    page.wait_for_load_state()
    expect(page.locator("#order-errors")).to_contain_text("insufficient_cash")

    # An accepted order: the answer page shows the new order's id and status.
    client_order_id = fill_ticket(page, side="BUY", order_type="LIMIT", quantity=1, price=price)
    submit_ticket(page)
    page.wait_for_load_state()
    orders = api.get(f"{API}/orders", params={"code": CODE}).json()
    orders = orders["results"] if isinstance(orders, dict) else orders
    mine = [o for o in orders if o["client_order_id"] == client_order_id]
    assert len(mine) == 1, f"the ticket's order {client_order_id} was not placed exactly once: {orders}"
    expect(page.locator("#order-result")).to_contain_text(str(mine[0]["id"]))
    assert mine[0]["status"] == "PENDING" and mine[0]["limit_price"] == price

    # Cancelling without the dialog: the row's form posts straight to /orders/<id>/cancel/.
    page.goto("/orders/")
    row = page.locator(f'#open-orders tr[data-order-id="{mine[0]["id"]}"]')
    expect(row.locator(f'form[action="/orders/{mine[0]["id"]}/cancel/"]')).to_have_count(1)
    row.locator('button[data-action="cancel"]').click()
    page.wait_for_load_state()
    assert api.get(f"{API}/orders/{mine[0]['id']}").json()["status"] == "CANCELLED"
    expect(page.locator(f'#open-orders tr[data-order-id="{mine[0]["id"]}"]')).to_have_count(0)
    api.delete(f"{API}/orders/{placed.json()['id']}")
