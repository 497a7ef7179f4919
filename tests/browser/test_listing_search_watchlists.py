"""Any listed stock, search, watchlists and chart studies in Chromium against the real stack: a stock found by its
initial consonants (초성) from the keyboard, outside the collection universe, its chart filled from bars fetched on
demand and an order placed on it; a watchlist built from the search box shown live (and reordered) on the
dashboard; a study toggled on the chart and remembered.

The stack's listing is loaded from the sandbox's stock master files (every KRX stock); one stock the sandbox
replays is taken out of the collection universe for this module (and put back afterwards), with no bar stored.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from tests.browser.pages import assert_not_reloaded, fill_ticket, mark_no_reload, number, submit_ticket
from tests.browser.support import API, CODE, OTHER_CODE, csp_violations
from tests.integration.harness import grid_floor, poll, price_limits

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
LIVE = 8_000  # ms
FILL = 30_000  # ms: the first open asks the broker for the stock's history (a few calls)


@pytest.fixture(scope="module")
def outside(stack, django_db_blocker):
    """A replayed stock outside the universe, with no bar stored; the listing loaded from the master files."""
    from django.db import connections

    from apps.brokers.kis.master import fetch_masters
    from apps.marketdata.listing import listing_sync
    from apps.marketdata.models import DailyBar, Stock
    from apps.marketdata.search import chosung

    url = f"http://127.0.0.1:{stack.ports['paper_rest']}/common/master"

    def load():  # in a thread of its own: Playwright's event loop may be running in this one
        from channels.db import database_sync_to_async

        try:
            return asyncio.run(listing_sync(as_of=stack.replay_day, fetch=lambda _url: fetch_masters(url)))
        finally:
            asyncio.run(database_sync_to_async(connections.close_all)())
            connections.close_all()

    with django_db_blocker.unblock():
        with ThreadPoolExecutor(1) as pool:
            run = pool.submit(load).result()
        assert run.status == "succeeded", run.error_summary
        names = {}
        for code, name in Stock.objects.filter(active=True).values_list("code", "name"):
            names.setdefault(chosung(name), []).append(code)
        priced = stack.priced_codes() - {CODE, OTHER_CODE}
        without_bars = [
            c for c in stack.universe[::-1] if c in priced and not DailyBar.objects.filter(stock__code=c).exists()
        ]
        code = next(c for c in without_bars if names[chosung(Stock.objects.get(code=c).name)] == [c])
        stock = Stock.objects.get(code=code)
        Stock.objects.filter(pk=stock.pk).update(in_universe=False)
        connections.close_all()
    yield stock
    with django_db_blocker.unblock():
        Stock.objects.filter(pk=stock.pk).update(in_universe=True)
        connections.close_all()


def test_search_by_initial_consonants_opens_a_stock_outside_the_universe_and_trades_it(
    page, stack, api, outside, axe, js_errors
):
    from apps.marketdata.search import chosung

    page.goto("/orders/")
    page.keyboard.press("/")  # the shortcut focuses the search box from any page
    box = page.locator("#stock-search")
    expect(box).to_be_focused()
    box.press_sequentially(chosung(outside.name), delay=30)
    first = page.locator("#stock-search-results li").first
    expect(first).to_have_attribute("data-code", outside.code, timeout=LIVE)
    expect(first).to_have_attribute("aria-selected", "true")
    box.press("Enter")
    page.wait_for_url(f"**/stocks/{outside.code}/")

    expect(page.locator("#stock-listing")).to_contain_text("수집 대상 외")
    axe(page, "stock outside the universe")
    chart = page.locator("#chart")
    expect(chart).to_have_attribute("data-bars", re.compile(r"^[1-9]\d*$"), timeout=FILL)
    page.locator('button[data-interval="1d"]').click()
    page.wait_for_function("() => Number(document.querySelector('#chart').dataset.bars) >= 15", timeout=FILL)
    source = page.locator("#quote-source")
    expect(source).to_have_attribute("data-source", re.compile(r"^(ws|poll)$"), timeout=FILL)

    quote = poll(
        lambda: api.get("/api/marketdata/quotes", params={"codes": outside.code}).json()["quotes"],
        lambda quotes: bool(quotes) and quotes[0]["source"] in ("ws", "poll") and quotes[0].get("change") is not None,
        timeout=FILL / 1000,
        what=f"no live or polled quote of {outside.code}",
        logs=stack.logs,
    )[0]
    upper, lower = price_limits(quote["price"] - quote["change"], stack.replay_day, outside.market)
    resting = max(grid_floor(int(quote["price"] * 0.9), stack.replay_day, outside.market), lower)
    mark_no_reload(page)
    client_order_id = fill_ticket(page, side="BUY", order_type="LIMIT", quantity=1, price=resting)
    submit_ticket(page)
    expect(page.locator("#order-result")).to_contain_text(re.compile(r"PENDING|접수"), timeout=LIVE)
    orders = api.get(f"{API}/orders", params={"code": outside.code}).json()
    orders = orders["results"] if isinstance(orders, dict) else orders
    placed = next(o for o in orders if o["client_order_id"] == client_order_id)
    assert (placed["limit_price"], placed["status"]) == (resting, "PENDING") and resting <= upper
    assert_not_reloaded(page)
    api.post(f"{API}/orders/{placed['id']}/cancel")
    assert js_errors == [], js_errors


def test_a_watchlist_built_from_the_search_box_is_live_on_the_dashboard(page, stack, api, axe, js_errors):
    try:
        page.goto("/watchlists/")
        page.locator("#watchlist-new-name").fill("브라우저 목록")
        page.locator("#watchlist-create button[type=submit]").click()
        section = page.locator("section[data-watchlist-id]")
        expect(section).to_have_count(1, timeout=LIVE)
        expect(section).to_contain_text("브라우저 목록")

        for code in (CODE, OTHER_CODE):
            page.keyboard.press("Control+K")
            page.locator("#stock-search").fill(code)
            option = page.locator(f'#stock-search-results li[data-code="{code}"]')
            expect(option).to_be_visible(timeout=LIVE)
            option.locator("button").click()
            expect(page.locator("#stock-search-status")).to_contain_text(code, timeout=LIVE)
        page.reload()
        expect(section.locator("li[data-code]")).to_have_count(2)
        axe(page, "watchlists")
        page.keyboard.press("/")
        page.locator("#stock-search").fill("ㅅㅅ")
        expect(page.locator("#stock-search-results li").first).to_be_visible(timeout=LIVE)
        axe(page, "search results")
        page.keyboard.press("Escape")

        page.goto("/")
        rows = page.locator("#watchlist tr[data-code]")
        expect(rows).to_have_count(2)
        assert [rows.nth(i).get_attribute("data-code") for i in range(2)] == [CODE, OTHER_CODE]
        expect(page.locator("#watchlist-shown")).to_contain_text("브라우저 목록")
        expect(page.locator("#feed-status")).to_have_attribute("data-status", "connected", timeout=LIVE)
        mark_no_reload(page)
        price = page.locator(f'#watchlist tr[data-code="{CODE}"] [data-field="price"]')
        before = price.inner_text().strip()
        page.wait_for_function(
            "(before) => document.querySelector("
            '\'#watchlist tr[data-code="005930"] [data-field="price"]\').textContent.trim() !== before',
            arg=before,
            timeout=LIVE,
        )
        assert number(price.inner_text()) > 0
        assert_not_reloaded(page)

        page.goto("/watchlists/")
        section.locator(f'li[data-code="{CODE}"] button[data-action="item-down"]').click()
        expect(section.locator("li[data-code]").first).to_have_attribute("data-code", OTHER_CODE, timeout=LIVE)
        page.goto("/")
        assert [rows.nth(i).get_attribute("data-code") for i in range(2)] == [OTHER_CODE, CODE]
        assert js_errors == [], js_errors
    finally:
        for watchlist in api.get("/api/watchlists/").json():
            api.delete(f"/api/watchlists/{watchlist['id']}/")


def test_a_study_toggled_on_the_chart_is_drawn_and_remembered(page, stack, api, js_errors):
    try:
        page.goto(f"/stocks/{CODE}/")
        expect(page.locator("#chart")).to_have_attribute("data-bars", re.compile(r"^[1-9]\d*$"), timeout=LIVE)
        studies = page.locator("#chart-studies")
        expect(studies).to_have_attribute("data-drawn", "ma5,ma20,ma60,ma120", timeout=LIVE)
        assert page.evaluate("() => document.getElementById('chart').hogaChart.chart.panes().length") == 1

        studies.locator('input[value="rsi"]').check()
        expect(studies).to_have_attribute("data-drawn", "ma5,ma20,ma60,ma120,rsi", timeout=LIVE)
        assert page.evaluate("() => document.getElementById('chart').hogaChart.chart.panes().length") == 2
        studies.locator('input[value="ma60"]').uncheck()
        expect(studies).to_have_attribute("data-drawn", "ma5,ma20,ma120,rsi", timeout=LIVE)
        poll(
            lambda: api.get("/api/marketdata/chart-studies").json()["studies"],
            lambda saved: saved == ["ma5", "ma20", "ma120", "rsi"],
            timeout=5,
            what="the chosen studies were not saved",
        )

        page.reload()
        expect(page.locator('#chart-studies input[value="rsi"]')).to_be_checked()
        expect(page.locator('#chart-studies input[value="ma60"]')).not_to_be_checked()
        expect(studies).to_have_attribute("data-drawn", "ma5,ma20,ma120,rsi", timeout=LIVE)
        assert csp_violations(page) == []
        assert js_errors == [], js_errors
    finally:
        api.put("/api/marketdata/chart-studies", json={"studies": ["ma5", "ma20", "ma60", "ma120"]})
