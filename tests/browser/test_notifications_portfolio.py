"""A trader in Chromium: sets up the browser-toast notification channel on /notifications/, sees the toast of
a fill the replay makes (sent by the real worker through the Channels layer), finds it in the history, and
sees the equity curve and drawdown drawn on the portfolio page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.support import API, CODE
from tests.integration.harness import poll, price_limits, ticks_up

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
LIVE = 30_000  # ms: the fill waits for the replay to print at or below the limit


def _channels(api) -> list[dict]:
    return api.get("/api/notifications/channels").json()


def test_a_fill_toast_after_setting_up_the_channel_and_the_equity_curve(page, stack, api, js_errors):
    try:
        page.goto("/notifications/")
        form = page.locator("#channel-add")
        form.locator('select[name="kind"]').select_option("browser")
        form.locator('button[type="submit"]').click()
        row = page.locator('tr[data-kind="browser"]')
        expect(row).to_have_count(1)
        expect(row.locator("[data-verified]")).to_be_visible()
        expect(page.locator("#toasts")).to_have_attribute("data-socket", "open", timeout=10_000)

        quote = next(q for q in api.get("/api/marketdata/quotes", params={"codes": CODE}).json()["quotes"])
        upper, _ = price_limits(quote["price"] - quote["change"], stack.replay_day)
        limit = min(ticks_up(quote["price"], 5, stack.replay_day), upper)
        placed = api.post(
            f"{API}/orders",
            json={"code": CODE, "side": "BUY", "order_type": "LIMIT", "quantity": 1, "limit_price": limit},
        )
        assert placed.status_code == 201, placed.text
        order = placed.json()

        toast = page.locator("#toasts .toast", has_text=f"주문 #{order['id']}").filter(has_text="[체결]")
        expect(toast).to_have_count(1, timeout=LIVE)
        expect(toast).to_contain_text(f"({CODE}) 매수 1주")
        assert api.get(f"{API}/orders/{order['id']}").json()["status"] == "FILLED"

        history = poll(
            lambda: api.get("/api/notifications/history").json()["results"],
            lambda rows: any(r["key"] == f"order.{order['id']}.filled" for r in rows),
            timeout=10,
            what="the fill's notification in the history",
        )
        [told] = [r for r in history if r["key"] == f"order.{order['id']}.filled"]
        assert [(d["kind"], d["status"]) for d in told["deliveries"]] == [("browser", "sent")]
        page.goto("/notifications/")
        expect(page.locator(f'#notification-history tr[data-notification="{told["id"]}"]')).to_contain_text("[체결]")

        page.goto("/portfolio/")
        chart = page.locator("#equity-chart")
        expect(chart).to_have_attribute("data-rendered", "1", timeout=10_000)
        assert int(chart.get_attribute("data-points")) >= 1
        expect(chart.locator("canvas").first).to_be_visible()
        expect(page.locator("#drawdown-chart canvas").first).to_be_visible()
        expect(page.locator('#analytics-figures [data-figure="fees_taxes"]')).not_to_have_text("0원 / 0원")
        assert js_errors == [], js_errors
    finally:
        for channel in _channels(api):
            api.delete(f"/api/notifications/channels/{channel['id']}")
