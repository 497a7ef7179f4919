"""Portfolio (balance and positions valued at the live quote) and orders (open, past, executions, cancel with
and without JavaScript), including their live fragments."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from apps.core.krx.calendar import KST
from apps.live.realtime.fillpath import FillTick
from apps.trading.orders.fills import order_fill_apply
from apps.trading.orders.models import Order
from apps.trading.orders.placement import order_place

from .conftest import TRADING_DATE, store_quote

pytestmark = pytest.mark.django_db


def _field(html: str, field: str) -> tuple[str, str]:
    """(data-value, text) of the first element with ``data-field=field``."""
    match = re.search(rf'data-field="{field}" data-value="([^"]*)"[^>]*>(.*?)</', html, re.S)
    assert match, field
    return match.group(1), match.group(2).strip()


def _buy_and_fill(account, stock, market, *, quantity=10, price=70_000) -> Order:
    order = order_place(
        account_id=account.pk, code=stock.code, side="BUY", order_type="LIMIT", quantity=quantity,
        limit_price=price, market=market,
    )  # fmt: skip
    tick = FillTick(
        stream_id="9000000000000-0", code=stock.code, price=price, volume=quantity, cum_volume=quantity,
        at=dt.datetime.combine(TRADING_DATE, dt.time(10, 1), tzinfo=KST), ask=price, bid=price,
    )  # fmt: skip
    assert len(order_fill_apply(tick=tick)) == 1
    order.refresh_from_db()
    return order


def test_portfolio_balance_and_positions_at_the_live_price(web, samsung, market, account, clean_redis):
    _buy_and_fill(account, samsung, market)  # 10 x 70,000 + commission 105
    store_quote(clean_redis, "005930", price=72_000)

    html = web.get("/portfolio/").content.decode()

    balance = re.search(r'<dl id="balance".*?</dl>', html, re.S).group(0)
    assert _field(balance, "cash") == ("9299895", "9,299,895원")
    assert _field(balance, "reserved") == ("0", "0원")
    assert _field(balance, "equity") == ("10019895", "10,019,895원")
    assert _field(balance, "realized_pnl") == ("0", "0원")
    assert _field(balance, "unrealized_pnl") == ("20000", "+20,000원")
    assert _field(balance, "return_pct") == ("0.20", "+0.20%")
    row = re.search(r'<tr data-code="005930">.*?</tr>', html, re.S).group(0)
    assert _field(row, "quantity") == ("10", "10")
    assert _field(row, "avg_price") == ("70000.0000", "70,000")
    assert _field(row, "price") == ("72000", "72,000")
    assert _field(row, "unrealized_pnl") == ("20000", "+20,000")
    assert 'data-codes="005930"' in html  # the JS watches the held stocks


def test_portfolio_live_fragment(web, samsung, market, account):
    html = web.get("/portfolio/live/").content.decode()

    assert html.startswith('<div id="portfolio-live"') and "<html" not in html
    assert _field(html, "cash") == ("10000000", "10,000,000원")
    assert "보유종목이 없습니다" in html


def test_portfolio_of_another_users_account_is_404(web, django_user_model, samsung, market):
    from apps.trading.accounts.services import paper_account_ensure

    other = paper_account_ensure(user=django_user_model.objects.create_user(username="other", password="x"))

    assert web.get(f"/portfolio/?account={other.pk}").status_code == 404
    assert web.get("/portfolio/?account=nope").status_code == 404


def test_orders_page_lists_open_and_past_orders_and_executions(web, samsung, market, account):
    filled = _buy_and_fill(account, samsung, market, quantity=2)
    open_order = order_place(
        account_id=account.pk, code="005930", side="BUY", order_type="LIMIT", quantity=5, limit_price=69_000,
        market=market,
    )  # fmt: skip

    html = web.get("/orders/").content.decode()

    open_table = re.search(r'<table id="open-orders">.*?</table>', html, re.S).group(0)
    assert re.findall(r'<tr data-order-id="(\d+)"', open_table) == [str(open_order.pk)]
    assert '<td data-field="status" data-value="PENDING">접수</td>' in open_table
    assert f'<form method="post" action="/orders/{open_order.pk}/cancel/" class="cancel-form">' in open_table
    assert f'data-action="cancel" data-order-id="{open_order.pk}"' in open_table
    past = re.search(r'<table id="past-orders">.*?</table>', html, re.S).group(0)
    assert re.findall(r'<tr data-order-id="(\d+)"', past) == [str(filled.pk)]
    assert "FILLED" in past
    executions = re.search(r'<table id="executions">.*?</table>', html, re.S).group(0)
    execution = filled.executions.get()
    assert f'<tr data-execution-id="{execution.pk}" data-order-id="{filled.pk}">' in executions
    assert "2026-02-20 10:01:00 KST" in executions and "140,000" in executions
    assert '<dialog id="confirm-cancel"' in html
    assert 'id="confirm-cancel-yes"' in html and 'id="confirm-cancel-no"' in html


def test_cancel_without_javascript_posts_straight_through(web, samsung, market, account):
    order = order_place(
        account_id=account.pk, code="005930", side="BUY", order_type="LIMIT", quantity=5, limit_price=69_000,
        market=market,
    )  # fmt: skip

    response = web.post(f"/orders/{order.pk}/cancel/")

    assert (response.status_code, response["Location"]) == (302, "/orders/")
    order.refresh_from_db()
    account.refresh_from_db()
    assert (order.status, account.reserved_cash) == ("CANCELLED", 0)
    html = web.get("/orders/").content.decode()
    assert f"주문 #{order.pk} 취소됨 (CANCELLED)" in html
    assert re.findall(r'<tr data-order-id="(\d+)"', re.search(r'id="past-orders">.*?</table>', html, re.S).group(0))
    again = web.post(f"/orders/{order.pk}/cancel/", follow=True).content.decode()
    assert "order_not_cancellable" in again


def test_cancel_through_htmx_returns_the_tables(web, samsung, market, account):
    order = order_place(
        account_id=account.pk, code="005930", side="BUY", order_type="LIMIT", quantity=5, limit_price=69_000,
        market=market,
    )  # fmt: skip

    html = web.post(f"/orders/{order.pk}/cancel/", HTTP_HX_REQUEST="true").content.decode()

    assert html.startswith('<div id="orders-live"') and "<html" not in html
    assert f"주문 #{order.pk} 취소됨 (CANCELLED)" in html
    assert "미체결 주문이 없습니다" in html


def test_cancelling_someone_elses_order_changes_nothing(client, django_user_model, samsung, market, account):
    order = order_place(
        account_id=account.pk, code="005930", side="BUY", order_type="LIMIT", quantity=5, limit_price=69_000,
        market=market,
    )  # fmt: skip
    client.force_login(django_user_model.objects.create_user(username="mallory", password="x"))

    html = client.post(f"/orders/{order.pk}/cancel/", follow=True).content.decode()

    assert "order_not_found" in html
    order.refresh_from_db()
    assert order.status == "PENDING"


def test_orders_live_fragment(web, samsung, market, account):
    html = web.get("/orders/live/").content.decode()

    assert html.startswith('<div id="orders-live" data-url="/orders/live/"')
    assert all(f'id="{table}"' in html for table in ("open-orders", "past-orders", "executions"))
