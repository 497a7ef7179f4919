"""Every page passes axe-core's checks for form labels, colour contrast, button and link names, the document
language and title, with its live content on screen; each has ``<html lang="ko">``, a title and the top bar."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.pages import fill_ticket, submit_ticket
from tests.browser.support import API, CODE, ROOT, csp_violations
from tests.integration.harness import grid_floor, price_limits

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

ANONYMOUS_PAGES = {"login": "/accounts/login/", "signup": "/accounts/signup/"}
PAGES = {
    "dashboard": "/",
    "stock": f"/stocks/{CODE}/",
    "portfolio": "/portfolio/",
    "orders": "/orders/",
    "data-quality": "/data-quality/",
    "notifications": "/notifications/",
    "strategies": "/strategies/",
    "backtests": "/strategies/backtests/",
}
if (ROOT / "templates" / "conditions").is_dir():
    PAGES["conditions"] = "/conditions/"
LIVE = 8_000
POSITIVE = re.compile(r"^[1-9]\d*$")


def _common(page, name: str) -> None:
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    assert page.title().strip(), f"{name}: empty <title>"
    expect(page.locator("header a[href='/']").first).to_be_attached()


@pytest.mark.parametrize("name", ANONYMOUS_PAGES)
def test_anonymous_page_is_accessible(anonymous_page, axe, name):
    anonymous_page.goto(ANONYMOUS_PAGES[name])
    _common(anonymous_page, name)
    expect(anonymous_page.locator('input[name="username"]')).to_be_visible()
    assert csp_violations(anonymous_page) == []
    axe(anonymous_page, name)


@pytest.mark.parametrize("name", PAGES)
def test_page_is_accessible_with_live_content(page, axe, name, js_errors, stack):
    page.goto(PAGES[name])
    _common(page, name)
    expect(page.locator('header form[action="/accounts/logout/"]')).to_have_count(1)
    if page.locator("#feed-status").count():
        expect(page.locator("#feed-status")).to_have_attribute("data-status", "connected", timeout=LIVE)
    if name == "dashboard":  # checked with a live update's flash on screen
        expect(page.locator("#watchlist .flash-up, #watchlist .flash-down").first).to_be_attached(timeout=LIVE)
    if name == "stock":
        expect(page.locator("#orderbook")).to_have_attribute("data-updated", POSITIVE, timeout=LIVE)
        expect(page.locator("#chart")).to_have_attribute("data-bars", POSITIVE, timeout=LIVE)
    if name == "data-quality":  # the daily collection and the validation run of the stack's data
        expect(page.locator("#collection-runs tr").nth(1)).to_be_attached()
        expect(page.locator("#validation-report")).to_be_visible()
        if stack.validated:  # only recorded data has a second source to validate against
            expect(page.locator("#validation-chart")).to_be_visible()
    assert csp_violations(page) == []  # the ES modules, htmx and the chart all ran under the policy
    axe(page, name)
    assert js_errors == [], js_errors


def test_order_ticket_error_and_cancel_dialog_are_accessible(page, stack, api, axe):
    """The states a person reaches by acting: a rejected order's alert, the cancel confirmation dialog."""
    page.goto(f"/stocks/{CODE}/")
    quote = api.get("/api/marketdata/quotes", params={"codes": CODE}).json()["quotes"][0]
    fill_ticket(page, side="BUY", order_type="LIMIT", quantity=10_000_000, price=quote["price"])
    submit_ticket(page)
    expect(page.locator("#order-errors")).to_contain_text("insufficient_cash")
    axe(page, "stock page with a rejected order")

    _, lower = price_limits(quote["price"] - quote["change"], stack.replay_day)
    price = max(grid_floor(int(quote["price"] * 0.8), stack.replay_day), lower)
    placed = api.post(
        f"{API}/orders", json={"code": CODE, "side": "BUY", "order_type": "LIMIT", "quantity": 1, "limit_price": price}
    )
    assert placed.status_code == 201, placed.text
    page.goto("/orders/")
    page.locator(f'#open-orders tr[data-order-id="{placed.json()["id"]}"] button[data-action="cancel"]').click()
    expect(page.locator("dialog#confirm-cancel")).to_be_visible()
    axe(page, "orders page with the cancel dialog open")
    page.locator("#confirm-cancel-no").click()
    api.delete(f"{API}/orders/{placed.json()['id']}")
