"""The market day in Chromium against the whole stack. The stock page across a phase change of the replayed day: the
sandbox clock is driven back to 08:56 (four minutes of market time, 12 seconds at the suite's replay speed, before
the open), where the opening auction's book builds and its expected price is published (from 08:50); without a
reload the page shows the expected price, then the phase bar turns to continuous trading when its countdown runs
out and the expected price goes with the opening print. A VI forced on the replay shows on the dashboard and the
stock page while it lasts."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.pages import assert_not_reloaded, mark_no_reload, number
from tests.browser.support import CODE, SPEED, csp_violations
from tests.integration.harness import poll

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

CROSSING = 40_000  # ms: at most 12 s to the open at the suite's speed, then one poll of the status JSON
EXPECTED = 45_000  # ms: published every 10 s of market time (0.5 s here); the first needs the day built up to 08:50
AHEAD = "08:56:00"
OPEN = "09:00:00"


def _set_clock(stack, body: dict) -> None:
    """``stack.set_clock`` with time for the sandbox to build the replayed day up to the new time."""
    response = httpx.post(
        stack._admin_url("/sandbox/clock"), json=body, headers={"X-Sandbox-Admin": stack.admin_token}, timeout=120
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def opening_auction_ahead(stack, api):
    """The replay at 08:56, once the web process sees it (it reuses the sandbox clock's answer for a second);
    afterwards the session restarts at the open as a fresh one, as the other tests expect it."""
    assert float(stack.sandbox_clock()["speed"]) == float(SPEED)
    _set_clock(stack, {"time": AHEAD})
    poll(
        lambda: api.get("/market/status.json").json(),
        lambda body: AHEAD <= (body.get("now") or "")[11:19] < "08:59:00",
        timeout=10,
        what="the web process still shows the clock before the jump",
    )
    yield
    _set_clock(stack, {"action": "restart"})
    _forget_live_bars_after(f"{stack.replay_day.isoformat()}T{OPEN}+09:00")


def _forget_live_bars_after(moment: str) -> None:
    """The live minute bars stored before the jump back are in the future of the restarted replay: removed
    (committed, on the stack's database), so the next page's chart extends from the open as in a fresh session."""
    import psycopg
    from django.db import connection

    params = connection.settings_dict
    with psycopg.connect(
        dbname=params["NAME"], user=params["USER"], password=params["PASSWORD"] or None, host=params["HOST"],
        port=params["PORT"] or None, autocommit=True,
    ) as db:  # fmt: skip
        db.execute("DELETE FROM marketdata_minutebar WHERE source = 'ws' AND ts >= %s", (moment,))


def test_stock_page_shows_the_opening_auctions_expected_price_and_crosses_into_continuous_trading(
    page, stack, opening_auction_ahead, js_errors
):
    page.goto(f"/stocks/{CODE}/")
    krx = page.locator('#phase-bar .phase-line[data-venue="KRX"]')
    expect(krx).to_have_attribute("data-phase", "opening_auction")
    expect(krx.locator('[data-field="label"]')).to_have_text("장 시작 동시호가")
    expect(krx.locator('[data-field="next"]')).to_have_text("정규장")
    left = krx.locator('[data-field="countdown"]').inner_text()
    assert re.fullmatch(r"[0-3]:[0-5]\d|4:00", left), left  # at most 4 minutes to 09:00:00
    expect(page.locator('#phase-bar .phase-line[data-venue="NXT"]')).to_have_attribute("data-phase", "closed")
    mark_no_reload(page)

    # While the book builds: the expected price and volume of the opening print.
    expected = page.locator("#expected")
    expect(expected).to_be_visible(timeout=EXPECTED)
    price = number(page.locator("#expected-price").inner_text())
    assert price > 0 and int(expected.get_attribute("data-price")) == price
    assert number(page.locator("#expected-quantity").inner_text()) > 0
    last = number(page.locator("#last-price").inner_text())
    assert abs(price - last) * 100 <= last * 30, (price, last)  # inside the daily band around the market
    expect(page.locator("#last-phase")).to_have_attribute("data-phase", "opening_auction")

    # The open: the phase bar turns when its countdown runs out; the opening print ends the expected price.
    expect(krx).to_have_attribute("data-phase", "continuous", timeout=CROSSING)
    expect(krx.locator('[data-field="label"]')).to_have_text("정규장")
    expect(krx.locator('[data-field="next"]')).to_have_text("장 마감 동시호가")
    assert re.fullmatch(r"6:[0-2]\d:[0-5]\d", krx.locator('[data-field="countdown"]').inner_text())  # to 15:20
    expect(expected).to_be_hidden(timeout=EXPECTED)
    expect(page.locator("#last-phase")).to_have_attribute("data-phase", "continuous", timeout=EXPECTED)
    # NXT's main market opens 30 s later.
    expect(page.locator('#phase-bar .phase-line[data-venue="NXT"]')).to_have_attribute(
        "data-phase", "continuous", timeout=CROSSING
    )
    limit = page.locator('#order-ticket input[name="order_type"][value="LIMIT"]').locator("xpath=ancestor::label")
    expect(limit.locator("[data-accepted-mark]")).to_have_class("accepted-now")
    assert_not_reloaded(page)
    assert csp_violations(page) == []
    assert js_errors == []


def test_a_vi_shows_live_on_the_dashboard_and_the_stock_page(page, stack, api, js_errors):
    """A dynamic VI forced on the replay a few market seconds ahead: both pages, open before it starts, show the
    VI badge without a reload while the 2-minute call runs, and the stock page names the phase; when the call's
    print ends it, the badges go. The replay runs at 2x while the call lasts (60-75 s instead of 6-7.5 s at the
    suite's speed), so that a loaded machine cannot let the call end before a page has drawn it: a page whose
    frames wait holds only the latest state of a stock, and the call's end replaces its start."""
    dashboard = page
    dashboard.goto("/")
    row_badges = dashboard.locator(f'#watchlist tr[data-code="{CODE}"] [data-badges]')
    expect(row_badges).to_be_attached()
    expect(row_badges.locator('[data-badge="vi"]')).to_have_count(0)
    stock = page.context.new_page()
    stock.goto(f"/stocks/{CODE}/")
    expect(stock.locator("#feed-status")).to_have_attribute("data-status", "connected", timeout=10_000)
    for tab in (dashboard, stock):
        mark_no_reload(tab)

    _set_clock(stack, {"speed": 2})
    try:
        now = stack.sandbox_clock()["now"][11:19]
        hh, mm, ss = (int(x) for x in now.split(":"))
        start = (hh * 3600 + mm * 60 + ss) + 6  # 6 s of market time ahead: 3 s at 2x
        at = f"{start // 3600:02d}:{start % 3600 // 60:02d}:{start % 60:02d}"
        response = httpx.post(
            stack._admin_url("/sandbox/vi"),
            json={"code": CODE, "time": at, "kind": "dynamic"},
            headers={"X-Sandbox-Admin": stack.admin_token},
            timeout=30,
        )
        assert response.status_code == 200, response.text

        vi_badge = stock.locator('.stock-head [data-badge="vi"]')
        expect(vi_badge).to_be_attached(timeout=30_000)
        expect(vi_badge).to_contain_text("VI")
        expect(stock.locator("#last-phase")).to_have_attribute("data-phase", "vi_auction")
        expect(row_badges.locator('[data-badge="vi"]')).to_be_attached(timeout=30_000)
    finally:
        _set_clock(stack, {"speed": float(SPEED)})
    # The rest of the call (at most 2.5 minutes of market time) at the suite's speed: when its single print ends
    # it, the badges go again.
    expect(vi_badge).to_have_count(0, timeout=30_000)
    expect(row_badges.locator('[data-badge="vi"]')).to_have_count(0, timeout=30_000)
    for tab in (dashboard, stock):
        assert_not_reloaded(tab)
        assert csp_violations(tab) == []
    assert js_errors == []
