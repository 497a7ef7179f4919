"""Conditional and bracket orders over the REST API: placing them, their trigger fields, owner scoping and coded
400s for malformed input (never a 5xx)."""

from __future__ import annotations

import datetime as dt

import pytest
from rest_framework.test import APIClient

from tests.trading.orders.conftest import TRADING_DATE, open_market

pytestmark = pytest.mark.django_db

URL = "/api/paper-trading/orders"


@pytest.fixture(autouse=True)
def _open_market(monkeypatch, clean_redis):
    monkeypatch.setattr("apps.trading.orders.placement.market_now", lambda calendar: open_market())


@pytest.fixture
def samsung(db):
    from apps.marketdata.models import DailyBar, Stock

    stock = Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    DailyBar.objects.create(
        stock=stock, date=TRADING_DATE - dt.timedelta(days=1), open=70_000, high=70_000, low=70_000, close=70_000,
        volume=1000, source="kis",
    )  # fmt: skip
    return stock


def _bracket(client, **overrides):
    body = {
        "code": "005930", "side": "BUY", "order_type": "LIMIT", "quantity": 10, "limit_price": 70_000,
        "take_profit_price": 75_000, "stop_loss_price": 65_000,
    }  # fmt: skip
    body.update(overrides)
    return client.post(URL, body, format="json")


def test_a_bracket_over_the_api_lists_its_legs(api_client, samsung):
    placed = _bracket(api_client)
    assert placed.status_code == 201, placed.json()
    entry = placed.json()
    assert (entry["bracket_leg"], entry["trigger_type"], entry["parent"]) == ("ENTRY", "", None)
    orders = {o["bracket_leg"]: o for o in api_client.get(URL).json()["results"]}
    tp, sl = orders["TAKE_PROFIT"], orders["STOP_LOSS"]
    assert (tp["trigger_type"], tp["trigger_price"], tp["trigger_state"], tp["side"]) == (
        "TAKE_PROFIT", 75_000, "WAITING", "SELL",
    )  # fmt: skip
    assert (sl["trigger_type"], sl["trigger_price"], sl["parent"], sl["oco_peer"]) == (
        "STOP",
        65_000,
        entry["id"],
        tp["id"],
    )


def test_a_trailing_stop_over_the_api(api_client, samsung):
    placed = api_client.post(
        URL, {"code": "005930", "side": "BUY", "quantity": 1, "trigger_type": "trailing_stop", "trail_percent": "2.5"},
        format="json",
    )  # fmt: skip
    assert placed.status_code == 201, placed.json()
    body = placed.json()
    assert (body["order_type"], body["trigger_state"], body["trail_percent"], body["trigger_price"]) == (
        "MARKET", "ARMED", "2.50", 71_750,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"side": "BUY", "quantity": 1, "trigger_type": "BOGUS", "trigger_price": 75_000}, "invalid_trigger"),
        ({"side": "BUY", "quantity": 1, "trigger_type": "STOP", "trigger_price": {"x": 1}}, "invalid_trigger"),
        ({"side": "BUY", "quantity": 1, "trigger_type": "STOP", "trigger_price": 10**30}, "invalid_trigger"),
        ({"side": "BUY", "quantity": 1, "trigger_type": "STOP", "trigger_price": -5}, "invalid_trigger"),
        ({"side": "BUY", "quantity": 1, "trigger_type": "STOP", "trigger_price": 75_050}, "trigger_off_tick"),
        ({"side": "BUY", "quantity": 1, "trigger_type": "STOP_LIMIT", "trigger_price": 75_000, "limit_price": 99_000},
         "price_out_of_band"),
        ({"side": "BUY", "quantity": 1, "trigger_type": "TRAILING_STOP", "trail_percent": [1]}, "invalid_trigger"),
        ({"side": "BUY", "quantity": 1, "trigger_type": "TRAILING_STOP", "trail_percent": "1e400"}, "invalid_trigger"),
        ({"side": "BUY", "quantity": 1, "trigger_type": "x" * 500}, "validation_error"),
        ({"side": "BUY", "order_type": "LIMIT", "limit_price": 70_000, "quantity": 1, "take_profit_price": 75_000,
          "stop_loss_price": 80_000}, "invalid_bracket"),
        ({"side": "BUY", "order_type": "MARKET", "quantity": 1, "take_profit_price": 75_000, "stop_loss_price": 65_000,
          "trigger_type": "STOP"}, "invalid_bracket"),
        ({"side": "BUY", "order_type": "MARKET", "quantity": 1, "take_profit_price": "75000",
          "stop_loss_price": 65_000}, "invalid_trigger"),
    ],
)  # fmt: skip
def test_malformed_conditional_orders_are_coded_400s(api_client, samsung, body, code):
    response = api_client.post(URL, {"code": "005930", **body}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code


def test_other_users_conditional_orders_are_404(api_client, samsung, django_user_model):
    entry = _bracket(api_client).json()
    legs = [o["id"] for o in api_client.get(URL).json()["results"] if o["parent"] == entry["id"]]
    intruder = APIClient()
    intruder.force_authenticate(django_user_model.objects.create_user(username="other", password="x-pass-123"))
    for order_id in [entry["id"], *legs]:
        assert intruder.get(f"{URL}/{order_id}").status_code == 404
        assert intruder.delete(f"{URL}/{order_id}").status_code == 404
    assert intruder.get(URL).json()["results"] == []


def test_cancelling_the_entry_over_the_api_cancels_its_legs(api_client, samsung):
    entry = _bracket(api_client).json()
    assert api_client.delete(f"{URL}/{entry['id']}").json()["status"] == "CANCELLED"
    statuses = {o["bracket_leg"]: o["status"] for o in api_client.get(URL).json()["results"]}
    assert statuses == {"ENTRY": "CANCELLED", "TAKE_PROFIT": "CANCELLED", "STOP_LOSS": "CANCELLED"}
