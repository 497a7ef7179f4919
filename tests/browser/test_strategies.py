"""A trader configures a condition strategy (with a bracket) on the strategies page and starts it; a condition
alert arrives and the strategy host in the stack's worker turns it into a paper bracket order (an entry and its
two legs), which appears in the audit trail (refreshed while the strategy runs) without a reload.

The alert is recorded as the condition service records one (a ``ConditionEvent`` of the trader's condition),
from a thread of this process with its own committed connection: the sandbox's Kiwoom side streams no alert
for a condition made up by the test."""

from __future__ import annotations

import datetime as dt
import re
import threading

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import USERNAME
from tests.browser.support import API, CODE
from tests.integration.harness import poll

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _committed(work):
    """Run ORM ``work`` in a thread (its own connection, autocommit) so the stack's processes see it."""
    out: list = []

    def run():
        from django.db import connection

        try:
            out.append(work())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    return out[0]


def _condition() -> int:
    from django.contrib.auth import get_user_model

    from apps.conditions.models import BrokerConnection, Condition

    user = get_user_model().objects.get(username=USERNAME)
    link, _ = BrokerConnection.objects.get_or_create(owner=user, key_id="browserkey01", defaults={"label": "test"})
    condition, _ = Condition.objects.get_or_create(owner=user, connection=link, seq="77",
                                                   defaults={"name": "Browser breakout"})  # fmt: skip
    return condition.pk


def _alert(condition_id: int, day: dt.date) -> int:
    from apps.conditions.models import ConditionEvent, EventKind, EventSource
    from apps.core.krx.calendar import KST

    at = dt.datetime.combine(day, dt.time(10, 0), tzinfo=KST)
    event = ConditionEvent.objects.create(condition_id=condition_id, code=CODE, kind=EventKind.IN, at=at,
                                          source=EventSource.REALTIME)  # fmt: skip
    return event.pk


def test_a_condition_strategy_places_its_first_order_and_fills_its_audit_trail(page, api, stack):
    condition_id = _committed(_condition)
    page.goto("/strategies/")
    page.locator("#kind-condition summary").click()
    form = page.locator('form[data-kind="condition"]')
    form.locator('select[name="condition_id"]').select_option(str(condition_id))
    form.locator('input[name="p_quantity"]').fill("1")
    form.locator('input[name="p_stop_loss_pct"]').fill("3")
    form.locator('input[name="p_take_profit_pct"]').fill("5")
    form.locator('input[name="name"]').fill("Browser condition")
    form.locator('input[name="start"]').check()
    form.locator('button[type="submit"]').click()
    page.wait_for_url(re.compile(r"/strategies/\d+/$"))
    expect(page.locator("#strategy-status")).to_have_text("실행 중")
    expect(page.locator("#trail")).to_contain_text("아직 신호가 없습니다")

    _committed(lambda: _alert(condition_id, stack.replay_day))
    row = page.locator("#trail tr.signal").first
    expect(row).to_contain_text("주문 접수됨", timeout=20_000)
    expect(row).to_contain_text(CODE)
    expect(row).to_contain_text(re.compile(r"bracket: take-profit \d+ / stop-loss \d+"))
    expect(row.locator(".order")).to_contain_text(re.compile(r"#\d+"))
    order_id = int(re.search(r"#(\d+)", row.locator(".order").inner_text()).group(1))
    orders = poll(lambda: [o for o in _orders(api) if o["id"] == order_id], bool, timeout=10, what="the order")
    assert orders[0]["side"] == "BUY" and orders[0]["quantity"] == 1
    legs = [o for o in _orders(api) if o["parent"] == order_id]
    assert sorted(leg["side"] for leg in legs) == ["SELL", "SELL"]


def _orders(api) -> list[dict]:
    body = api.get(f"{API}/orders").json()
    return body["results"] if isinstance(body, dict) else body
