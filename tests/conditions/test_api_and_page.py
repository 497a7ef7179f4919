"""REST API (own conditions only, OpenAPI) and the /conditions/ page (forms without JavaScript)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client

from apps.brokers.base import ConditionInfo
from apps.conditions.models import Condition
from apps.conditions.services import condition_alert_record, conditions_sync

from .conftest import alert, other_user


@pytest.fixture
def api(owner):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(owner)
    return client


@pytest.fixture
def stranger_condition(django_user_model):
    other = other_user(django_user_model)
    conditions_sync(owner=other, infos=[ConditionInfo("0", "남의 조건")])
    return Condition.objects.get(owner=other)


def test_api_lists_only_your_conditions_with_members(api, conditions, stranger_condition):
    condition_alert_record(alert=alert("0", "005930", "IN"))

    body = api.get("/api/conditions/").json()

    assert [(c["seq"], c["name"]) for c in body] == [("0", "등락률 2% 이상"), ("1", "거래량 급증")]
    assert body[0]["members"][0]["code"] == "005930" and body[0]["email_recipients"] == ["trader@example.com"]
    assert api.get(f"/api/conditions/{stranger_condition.pk}").status_code == 404


def test_api_updates_toggles_with_coded_errors(api, conditions, stranger_condition, settings):
    settings.CONDITIONS_SLACK_WEBHOOK_URL = ""
    pk = conditions["0"].pk

    ok = api.patch(f"/api/conditions/{pk}", {"realtime": False}, format="json")
    bad = api.patch(
        f"/api/conditions/{pk}", {"notify_email": True, "email_recipients": ["x@example.com"]}, format="json"
    )
    slack = api.patch(f"/api/conditions/{pk}", {"notify_slack": True}, format="json")
    not_bool = api.patch(f"/api/conditions/{pk}", {"notify_email": "maybe"}, format="json")
    foreign = api.patch(f"/api/conditions/{stranger_condition.pk}", {"enabled": False}, format="json")

    assert ok.status_code == 200 and ok.json()["realtime"] is False
    assert ok.json()["email_recipients"] == ["trader@example.com"] and ok.json()["owned"] is True
    assert (bad.status_code, bad.json()["error"]["code"]) == (403, "operator_only_setting")
    assert (slack.status_code, slack.json()["error"]["code"]) == (403, "operator_only_setting")
    assert (not_bool.status_code, not_bool.json()["error"]["code"]) == (400, "validation_error")
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (404, "condition_not_found")
    assert Condition.objects.get(pk=pk).notify_email is False
    assert Condition.objects.get(pk=stranger_condition.pk).enabled is True


def test_api_events_are_filtered_and_paginated(api, conditions, stranger_condition):
    condition_alert_record(alert=alert("0", "005930", "IN"))
    condition_alert_record(alert=alert("1", "000660", "IN", second=2))
    condition_alert_record(alert=alert("0", "005930", "OUT", second=4))

    everything = api.get("/api/conditions/events").json()
    only_out = api.get("/api/conditions/events", {"kind": "out"}).json()
    one = api.get("/api/conditions/events", {"condition": conditions["1"].pk}).json()
    bad = api.get("/api/conditions/events", {"kind": "SIDEWAYS"})
    foreign = api.get("/api/conditions/events", {"condition": stranger_condition.pk})

    assert everything["count"] == 3 and [e["kind"] for e in everything["results"]] == ["OUT", "IN", "IN"]
    assert [(e["code"], e["source"]) for e in only_out["results"]] == [("005930", "realtime")]
    assert [e["code"] for e in one["results"]] == ["000660"]
    assert bad.json()["error"]["code"] == "invalid_kind" and foreign.status_code == 404


def test_api_requires_authentication_and_is_in_the_schema(client, db):
    assert client.get("/api/conditions/").status_code in (401, 403)

    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_user(username="schema", password="pw-12345678"))
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert {"/api/conditions/", "/api/conditions/{condition_id}", "/api/conditions/events"} <= set(schema["paths"])


def _page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_page_shows_members_events_and_labelled_forms(owner, conditions):
    condition_alert_record(alert=alert("0", "005930", "IN"), price=71_500)
    client = _page_client(owner)

    html = client.get("/conditions/").content.decode()

    assert "등락률 2% 이상" in html and "거래량 급증" in html
    assert "2026-02-20 10:00:00" in html and "71,500원" in html and "실시간" in html
    for field in ("enabled", "realtime", "browser", "email"):
        element_id = f"c{conditions['0'].pk}-{field}"
        assert f'id="{element_id}"' in html and f'for="{element_id}"' in html
    assert html.count('name="quantity"') == 0  # no paper account yet: no order forms
    assert "js/conditions.js" in html and "js/notifications.js" in html


def test_page_settings_form_posts_without_javascript(owner, conditions):
    client = _page_client(owner)
    pk = conditions["0"].pk

    response = client.post(f"/conditions/{pk}/settings", {"enabled": "on", "notify_email": "on"}, follow=True)
    # Slack and recipients are not the user's to set: posted anyway, they change nothing.
    client.post(
        f"/conditions/{pk}/settings",
        {"enabled": "on", "notify_email": "on", "notify_slack": "on", "email_recipients": "x@example.com"},
    )

    condition = Condition.objects.get(pk=pk)
    assert (condition.enabled, condition.realtime, condition.notify_browser, condition.notify_email) == (
        True, False, False, True,
    )  # fmt: skip
    assert condition.notify_slack is False and condition.recipients() == ["trader@example.com"]
    assert "설정을 저장했습니다" in response.content.decode()
    assert client.get(f"/conditions/{pk}/settings").status_code == 405


@pytest.fixture
def orderable(owner, conditions, settings):
    from apps.marketdata.models import DailyBar, Stock
    from apps.trading.accounts.services import paper_account_ensure

    settings.CONDITIONS_ORDER_QUANTITY = 3
    account = paper_account_ensure(user=owner)
    stock = Stock.objects.create(code="005930", name="삼성전자", market="KOSPI")
    DailyBar.objects.create(
        stock=stock, date=dt.date(2026, 2, 19), open=70_000, high=70_000, low=70_000, close=70_000, volume=1,
        source="kis",
    )  # fmt: skip
    entered = condition_alert_record(alert=alert("0", "005930", "IN"))[0]
    left = condition_alert_record(alert=alert("0", "005930", "OUT", second=1))[0]
    return account, entered, left


def test_one_click_order_is_a_market_buy_of_the_default_quantity_on_the_default_account(owner, orderable):
    from apps.conditions.exceptions import EventNotOrderable
    from apps.conditions.services import condition_event_order_place
    from apps.marketdata.market_clock import MarketNow
    from apps.trading.orders.exceptions import InsufficientCash

    account, entered, left = orderable
    market = MarketNow(now=alert("0", "005930", "IN").at, trading_date=dt.date(2026, 2, 20), session="continuous",
                       source="calendar")  # fmt: skip

    order = condition_event_order_place(user=owner, event_id=entered.pk, market=market)
    again = condition_event_order_place(user=owner, event_id=entered.pk, market=market)  # a double click

    assert again.pk == order.pk
    assert (order.account_id, order.side, order.order_type, order.quantity, order.stock.code, order.status) == (
        account.pk, "BUY", "MARKET", 3, "005930", "PENDING",
    )  # fmt: skip
    with pytest.raises(EventNotOrderable):
        condition_event_order_place(user=owner, event_id=left.pk, market=market)
    with pytest.raises(InsufficientCash):
        condition_event_order_place(user=owner, event_id=entered.pk, quantity=10**6, market=market)


def test_one_click_order_form_shows_the_order_service_errors(owner, orderable, settings):
    from apps.trading.orders.models import Order

    _, entered, left = orderable
    settings.MARKET_BROKER = "sandbox"
    settings.SANDBOX_PAPER_REST_PORT = settings.SANDBOX_REAL_REST_PORT = 9  # nothing listens: no market clock
    client = _page_client(owner)

    assert client.get("/conditions/").content.decode().count('name="quantity"') == 1  # the IN event's form
    unavailable = client.post("/conditions/order", {"event": entered.pk, "quantity": 3}, follow=True)
    refused = client.post("/conditions/order", {"event": left.pk, "quantity": 3}, follow=True)
    not_a_number = client.post("/conditions/order", {"event": entered.pk, "quantity": "many"}, follow=True)

    assert "[market_clock_unavailable]" in unavailable.content.decode()
    assert "[event_not_orderable]" in refused.content.decode()
    assert "[invalid_quantity]" in not_a_number.content.decode()
    assert Order.objects.count() == 0


def test_page_requires_login(client, db):
    response = client.get("/conditions/")
    assert response.status_code == 302 and "login" in response["Location"]


def test_admin_shows_history_read_only(admin_client, conditions, settings):
    from apps.conditions.models import ConditionEvent

    event = condition_alert_record(alert=alert("0", "005930", "IN"))[0]
    condition = conditions["0"]

    for path in ("condition", "conditionrun", "conditionevent", "conditionmember"):
        assert admin_client.get(f"/admin/conditions/{path}/").status_code == 200, path
    assert admin_client.get(f"/admin/conditions/conditionevent/{event.pk}/change/").status_code == 200
    assert admin_client.get("/admin/conditions/conditionevent/add/").status_code == 403
    admin_client.post(f"/admin/conditions/conditionevent/{event.pk}/change/", {"kind": "OUT"})
    assert ConditionEvent.objects.get(pk=event.pk).kind == "IN"

    settings.CONDITIONS_SLACK_WEBHOOK_URL = "https://hooks.slack.invalid/T000/B000/XXX"
    response = admin_client.post(
        f"/admin/conditions/condition/{condition.pk}/change/",
        {"enabled": "on", "notify_browser": "on", "notify_slack": "on"},
    )
    assert response.status_code == 302
    changed = Condition.objects.get(pk=condition.pk)
    assert (changed.realtime, changed.notify_slack, changed.name) == (False, True, "등락률 2% 이상")
