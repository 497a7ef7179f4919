"""A trader in Chromium against the real stack: logging in and out, live prices on the dashboard, the stock
page's chart, order book and prints moving, a limit order the replay crosses filling while the portfolio
changes without a reload, a resting order cancelled from the orders page, a rejected order showing why.
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, USERNAME
from tests.browser.pages import (
    assert_not_reloaded,
    fill_ticket,
    mark_no_reload,
    number,
    status_of,
    submit_ticket,
)
from tests.browser.support import API, CODE, api_for, log_in
from tests.integration.harness import grid_floor, poll, price_limits, ticks_up

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
LIVE = 8_000  # ms: at SPEED the first names print several times a second; a few seconds is plenty


def _live_quote(api) -> dict:
    quote = next(q for q in api.get("/api/marketdata/quotes", params={"codes": CODE}).json()["quotes"])
    assert quote["source"] == "ws", quote
    return quote


def _band(stack, api) -> tuple[int, int, int]:
    """(last price, upper limit, lower limit) of CODE from the live quote and its change."""
    quote = _live_quote(api)
    upper, lower = price_limits(quote["price"] - quote["change"], stack.replay_day)
    return quote["price"], upper, lower


def _orders(api, **params) -> list[dict]:
    body = api.get(f"{API}/orders", params=params).json()
    return body["results"] if isinstance(body, dict) else body


def test_login_redirects_to_the_dashboard_and_logout_ends_the_session(anonymous_page, stack):
    page = anonymous_page
    page.goto("/")
    assert "/accounts/login/" in page.url, "the dashboard must require a login"

    page.locator('input[name="username"]').fill(USERNAME)
    page.locator('input[name="password"]').fill("not-the-password")
    page.locator('main form button[type="submit"]').first.click()
    page.wait_for_load_state()
    assert "/accounts/login/" in page.url
    assert not any(c["name"] == "sessionid" for c in page.context.cookies())

    log_in(page, USERNAME, PASSWORD)
    expect(page.locator("#watchlist")).to_be_visible()
    expect(page.locator(f'#watchlist tr[data-code="{CODE}"]')).to_be_visible()

    logout = page.locator('form[action="/accounts/logout/"] button, form[action="/accounts/logout/"] [type=submit]')
    expect(logout.first).to_be_visible()
    logout.first.click()
    page.wait_for_load_state()
    page.goto("/")
    assert "/accounts/login/" in page.url, "still logged in after logging out"


def test_signing_up_opens_a_paper_account_and_logs_in(anonymous_page, stack):
    page = anonymous_page
    page.goto("/accounts/signup/")
    page.locator('input[name="username"]').fill("new-trader")
    page.locator('input[name="password1"]').fill("Kospi-ticks-7731")
    page.locator('input[name="password2"]').fill("pw-something-else")
    page.locator('main form button[type="submit"]').first.click()
    page.wait_for_load_state()
    assert "/accounts/signup/" in page.url
    expect(page.locator('main [role="alert"]').first).to_be_visible()

    page.locator('input[name="password1"]').fill("Kospi-ticks-7731")
    page.locator('input[name="password2"]').fill("Kospi-ticks-7731")
    page.locator('main form button[type="submit"]').first.click()
    page.wait_for_url(lambda url: httpx.URL(url).path == "/", timeout=10_000)
    expect(page.locator("#watchlist")).to_be_visible()
    api = api_for(page.context, stack.url)
    accounts = api.get(f"{API}/accounts").json()
    api.close()
    assert [(a["initial_cash"], a["cash"], a["reserved_cash"]) for a in accounts] == [(10_000_000, 10_000_000, 0)]


def test_dashboard_shows_prices_changing_within_seconds(page, stack, js_errors):
    page.goto("/")
    rows = page.locator("#watchlist tr[data-code]")
    expect(rows.first).to_be_visible()
    assert rows.count() >= min(20, len(stack.universe)), f"{rows.count()} rows in the watch list"
    row = page.locator(f'#watchlist tr[data-code="{CODE}"]')
    for field in ("name", "price", "change", "change_rate", "volume"):
        expect(row.locator(f'td[data-field="{field}"]')).to_have_count(1)
    assert number(row.locator('[data-field="price"]').inner_text()) > 0
    expect(row.locator(f'a[href="/stocks/{CODE}/"]').first).to_be_attached()

    clock = stack.sandbox_clock()
    expect(page.locator("#synthetic-banner")).to_have_count(1 if clock["synthetic"] else 0)
    expect(page.locator("#feed-status")).to_have_attribute("data-status", "connected", timeout=LIVE)
    expect(page.locator("#session-state")).not_to_be_empty()
    expect(page.locator("#market-clock")).to_have_text(re.compile(r"\d{1,2}:\d{2}"))

    mark_no_reload(page)
    # Every class a watch-list cell takes from here on, and the first prices of the first rows.
    page.evaluate(
        """() => {
            window.__flashes = [];
            new MutationObserver(records => records.forEach(r => {
                if (r.target.classList.contains("flash-up") || r.target.classList.contains("flash-down"))
                    window.__flashes.push(r.target.dataset.field);
            })).observe(document.querySelector("#watchlist"),
                        {attributes: true, attributeFilter: ["class"], subtree: true});
        }"""
    )
    before = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll("#watchlist tr[data-code]")].slice(0, 5)
            .map(tr => [tr.dataset.code, tr.querySelector('[data-field="price"]').textContent.trim()]))"""
    )
    clock_before = page.locator("#market-clock").inner_text()
    page.wait_for_function(
        """(before) => Object.entries(before).some(([code, price]) => document
            .querySelector(`#watchlist tr[data-code="${code}"] [data-field="price"]`).textContent.trim() !== price)""",
        arg=before,
        timeout=LIVE,
    )
    page.wait_for_function("() => window.__flashes.length > 0", timeout=LIVE)
    expect(page.locator("#market-clock")).not_to_have_text(clock_before, timeout=LIVE)
    assert_not_reloaded(page)

    row.locator(f'a[href="/stocks/{CODE}/"]').first.click()
    page.wait_for_url(f"**/stocks/{CODE}/")
    assert js_errors == [], js_errors


def test_stock_page_chart_order_book_and_prints_update_live(page, stack, js_errors):
    page.goto(f"/stocks/{CODE}/")
    chart = page.locator("#chart")
    expect(chart).to_have_attribute("data-bars", re.compile(r"^[1-9]\d*$"), timeout=LIVE)
    for interval in ("1m", "5m", "15m", "60m", "1d"):
        expect(page.locator(f'button[data-interval="{interval}"]')).to_have_count(1)

    book = page.locator("#orderbook")
    for side in ("ask", "bid"):
        for level in range(1, 11):
            expect(book.locator(f'tr[data-side="{side}"][data-level="{level}"]')).to_have_count(1)
    expect(book).to_have_attribute("data-updated", re.compile(r"^[1-9]\d*$"), timeout=LIVE)
    best_ask = number(book.locator('tr[data-side="ask"][data-level="1"] [data-field="price"]').inner_text())
    best_bid = number(book.locator('tr[data-side="bid"][data-level="1"] [data-field="price"]').inner_text())
    assert best_ask > best_bid > 0
    assert number(book.locator('tr[data-side="bid"][data-level="1"] [data-field="qty"]').inner_text()) > 0
    expect(page.locator("#last-price")).to_have_attribute("data-price", re.compile(r"^[1-9]\d*$"))
    expect(page.locator("#trades [data-trade]").first).to_be_attached(timeout=LIVE)

    mark_no_reload(page)
    updated = int(book.get_attribute("data-updated"))
    last_time = int(chart.get_attribute("data-last-time"))
    first_trade = page.locator("#trades [data-trade]").first.evaluate("e => e.outerHTML")
    page.wait_for_function(
        "(n) => Number(document.querySelector('#orderbook').dataset.updated) > n", arg=updated, timeout=LIVE
    )
    page.wait_for_function(
        "(html) => document.querySelector('#trades [data-trade]').outerHTML !== html", arg=first_trade, timeout=LIVE
    )
    # A new minute bar: at SPEED a market minute lasts 3 s (a slow machine may lag a minute or two behind).
    page.wait_for_function(
        "(t) => Number(document.querySelector('#chart').dataset.lastTime) > t", arg=last_time, timeout=2 * LIVE
    )
    assert_not_reloaded(page)

    minute_bars = int(chart.get_attribute("data-bars"))
    page.locator('button[data-interval="1d"]').click()
    # Daily bars: the loaded history before the replay day (about 20 sessions) plus today's.
    page.wait_for_function(
        "(n) => { const b = Number(document.querySelector('#chart').dataset.bars); return b >= 15 && b !== n; }",
        arg=minute_bars,
        timeout=LIVE,
    )
    assert js_errors == [], js_errors


def test_limit_order_crossed_by_the_replay_fills_and_the_portfolio_changes_live(page, stack, api, js_errors):
    balance = api.get(f"{API}/balance").json()
    held = sum(p["quantity"] for p in api.get(f"{API}/positions").json() if p["code"] == CODE)

    portfolio = page.context.new_page()
    portfolio.goto("/portfolio/")
    cash = portfolio.locator('#balance [data-field="cash"]')
    assert number(cash.get_attribute("data-value")) == balance["cash"]
    mark_no_reload(portfolio)
    orders_page = page.context.new_page()
    orders_page.goto("/orders/")
    mark_no_reload(orders_page)

    page.goto(f"/stocks/{CODE}/")
    expect(page.locator("#feed-status")).to_have_attribute("data-status", "connected", timeout=LIVE)
    mark_no_reload(page)
    last, upper, _ = _band(stack, api)
    limit = min(ticks_up(last, 5, stack.replay_day), upper)
    client_order_id = fill_ticket(page, side="BUY", order_type="LIMIT", quantity=3, price=limit)
    submit_ticket(page)

    result = page.locator("#order-result")
    expect(result).to_be_visible()
    order = poll(
        lambda: [o for o in _orders(api, code=CODE) if o["client_order_id"] == client_order_id],
        bool,
        timeout=5,
        what=f"no order with client_order_id {client_order_id}",
    )[0]
    expect(result).to_contain_text(str(order["id"]))
    expect(result).to_contain_text(re.compile(r"PENDING|FILLED|PARTIALLY_FILLED|접수|체결", re.I))
    assert_not_reloaded(page)

    filled = poll(
        lambda: api.get(f"{API}/orders/{order['id']}").json(),
        lambda o: o["status"] == "FILLED",
        timeout=30,
        what=f"order {order['id']} (BUY 3 @ {limit}, last {last}) not FILLED",
        logs=stack.logs,
    )
    executions = [e for e in api.get(f"{API}/executions", params={"code": CODE}).json() if e["order"] == order["id"]]
    assert sum(e["quantity"] for e in executions) == 3 and all(e["price"] <= limit for e in executions)
    after = api.get(f"{API}/balance").json()
    assert after["cash"] == balance["cash"] - sum(e["amount"] for e in executions) - filled["commission_total"]

    # The ticket's result, the orders page and the portfolio page show the fill: none of them reloaded.
    # the ticket's status follows the order live: its code in data-value, its name in the page language
    expect(result.locator("[data-order-status]")).to_have_attribute("data-value", "FILLED", timeout=LIVE)
    expect(result.locator("[data-order-status]")).to_have_text("체결")
    row = orders_page.locator(f'tr[data-order-id="{order["id"]}"]').first
    expect(row).to_be_attached(timeout=LIVE)
    poll(lambda: status_of(row), lambda s: "FILLED" in s or "체결" in s, timeout=LIVE / 1000, what="status FILLED")
    for execution in executions:
        expect(orders_page.locator(f'#executions tr[data-execution-id="{execution["id"]}"]')).to_be_attached()
    # Where it was executed: the paper engine, on the route it was placed with (a broker-linked account says KIS).
    assert (filled["executed_by"], filled["executed_where"]) == (
        "paper_engine",
        f"Hoga 모의 엔진 (paper engine) · {filled['route']}",
    )
    # The page names it in its language (Korean here): the API's bilingual label's Korean half.
    expect(row.locator('td[data-field="executed-by"]')).to_have_text(
        f"Hoga 모의 엔진 · {filled['route']}", timeout=LIVE
    )
    position = portfolio.locator(f'#positions tr[data-code="{CODE}"]')
    expect(position.locator('[data-field="quantity"]')).to_have_text(
        re.compile(rf"(^|\D){held + 3}(\D|$)"), timeout=LIVE
    )
    expect(cash).to_have_attribute("data-value", str(after["cash"]), timeout=LIVE)
    for field in ("avg_price", "price", "unrealized_pnl"):
        expect(position.locator(f'[data-field="{field}"]')).not_to_be_empty()
    assert_not_reloaded(portfolio)
    assert_not_reloaded(orders_page)
    assert_not_reloaded(page)
    assert js_errors == [], js_errors


def test_resting_order_is_cancelled_from_the_orders_page(page, stack, api, js_errors):
    last, _, lower = _band(stack, api)
    resting_price = max(grid_floor(int(last * 0.8), stack.replay_day), lower)
    placed = api.post(
        f"{API}/orders",
        json={"code": CODE, "side": "BUY", "order_type": "LIMIT", "quantity": 2, "limit_price": resting_price},
    )
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "PENDING"
    reserved_before = api.get(f"{API}/balance").json()["reserved_cash"]
    assert reserved_before >= order["reserved_cash"] > 0

    page.goto("/orders/")
    mark_no_reload(page)
    row = page.locator(f'#open-orders tr[data-order-id="{order["id"]}"]')
    expect(row).to_be_visible()
    assert "PENDING" in status_of(row) or "접수" in status_of(row) or "대기" in status_of(row)
    dialog = page.locator("dialog#confirm-cancel")

    # "No" keeps the order.
    row.locator('button[data-action="cancel"]').click()
    expect(dialog).to_be_visible()
    page.locator("#confirm-cancel-no").click()
    expect(dialog).to_be_hidden()
    assert api.get(f"{API}/orders/{order['id']}").json()["status"] == "PENDING"

    # "Yes" cancels it; the row changes without a reload and the reservation is released.
    row.locator('button[data-action="cancel"]').click()
    expect(dialog).to_be_visible()
    page.locator("#confirm-cancel-yes").click()
    poll(
        lambda: api.get(f"{API}/orders/{order['id']}").json()["status"],
        lambda s: s == "CANCELLED",
        timeout=10,
        what=f"order {order['id']} not CANCELLED",
    )
    expect(page.locator(f'#open-orders tr[data-order-id="{order["id"]}"]')).to_have_count(0, timeout=LIVE)
    cancelled = page.locator(f'#past-orders tr[data-order-id="{order["id"]}"]')
    expect(cancelled).to_be_visible(timeout=LIVE)
    assert "CANCEL" in status_of(cancelled) or "취소" in status_of(cancelled)
    assert api.get(f"{API}/balance").json()["reserved_cash"] == reserved_before - order["reserved_cash"]
    assert_not_reloaded(page)
    assert js_errors == [], js_errors


def test_rejected_order_shows_its_reason_and_changes_nothing(page, stack, api, js_errors):
    page.goto(f"/stocks/{CODE}/")
    expect(page.locator("#price-band")).not_to_be_empty()
    mark_no_reload(page)
    last, _, _ = _band(stack, api)

    # The steppers move the price one tick on the KRX grid.
    fill_ticket(page, side="BUY", order_type="LIMIT", quantity=1, price=last)
    price = page.locator('#order-ticket input[name="price"]')
    page.locator('#order-ticket button[data-step="up"]').click()
    expect(price).to_have_value(str(ticks_up(last, 1, stack.replay_day)))
    page.locator('#order-ticket button[data-step="down"]').click()
    expect(price).to_have_value(str(last))

    orders_before = len(_orders(api))
    cash_before = {k: v for k, v in api.get(f"{API}/balance").json().items() if k in ("cash", "reserved_cash")}
    # Ten million shares cost far more than the account's cash.
    fill_ticket(page, side="BUY", order_type="LIMIT", quantity=10_000_000, price=last)
    submit_ticket(page)
    errors = page.locator("#order-errors")
    expect(errors).to_be_visible()
    expect(errors).to_have_attribute("role", "alert")
    expect(errors).to_contain_text("insufficient_cash")
    assert len(_orders(api)) == orders_before
    assert {k: v for k, v in api.get(f"{API}/balance").json().items() if k in ("cash", "reserved_cash")} == cash_before
    assert_not_reloaded(page)
    assert js_errors == [], js_errors
