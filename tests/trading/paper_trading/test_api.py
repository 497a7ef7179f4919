"""The paper-trading REST API over the services: owner scoping, coded errors, idempotency, cancel, fills
through the fill path, positions and balance. The market clock is pinned to an open session."""

from __future__ import annotations

import datetime as dt

import pytest
from rest_framework.test import APIClient

from tests.trading.orders.conftest import TRADING_DATE, open_market

pytestmark = pytest.mark.django_db


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


def _order(client, **overrides):
    body = {"code": "005930", "side": "BUY", "order_type": "LIMIT", "quantity": 10, "limit_price": 69_900}
    body.update(overrides)
    return client.post("/api/paper-trading/orders", body, format="json")


def test_place_list_get_and_cancel_an_order(api_client, samsung):
    placed = _order(api_client, client_order_id="strat-1")

    assert placed.status_code == 201
    order = placed.json()
    assert (order["status"], order["code"], order["quantity"], order["limit_price"]) == (
        "PENDING",
        "005930",
        10,
        69_900,
    )
    # 69,900 x 10 + commission truncate(699,000 x 0.00015) = 104
    assert order["reserved_cash"] == 699_104
    balance = api_client.get("/api/paper-trading/balance").json()
    assert (balance["cash"], balance["reserved_cash"], balance["free_cash"]) == (10_000_000, 699_104, 9_300_896)

    again = _order(api_client, client_order_id="strat-1")
    assert (again.status_code, again.json()["id"]) == (200, order["id"])
    conflict = _order(api_client, client_order_id="strat-1", quantity=11)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "client_order_id_conflict"

    listed = api_client.get("/api/paper-trading/orders", {"status": "OPEN", "code": "005930"}).json()
    assert [o["id"] for o in listed["results"]] == [order["id"]]
    assert api_client.get(f"/api/paper-trading/orders/{order['id']}").json()["status"] == "PENDING"

    cancelled = api_client.delete(f"/api/paper-trading/orders/{order['id']}")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "CANCELLED")
    assert api_client.get("/api/paper-trading/balance").json()["reserved_cash"] == 0
    again = api_client.delete(f"/api/paper-trading/orders/{order['id']}")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "order_not_cancellable")


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"limit_price": 69_950}, "price_off_tick", None),
        ({"limit_price": 91_100}, "price_out_of_band", None),
        ({"quantity": 0}, "invalid_quantity", None),
        ({"quantity": 1.5}, "invalid_quantity", None),
        ({"code": "999999"}, "unknown_stock", None),
        ({"quantity": 1_000}, "insufficient_cash", None),
        ({"side": "HOLD"}, "invalid_order", "side"),
        ({"side": "SELL"}, "insufficient_holding", None),
        ({"route": "NYSE"}, "invalid_order", "route"),
        ({"route": ["KRX"]}, "validation_error", "route"),
        ({"route": "x" * 5000}, "validation_error", "route"),
        ({"route": "NXT"}, "nxt_not_eligible", "route"),
        ({"order_type": "PRE_CLOSE_PRICE", "limit_price": None}, "phase_rejects_order_type", "order_type"),
        ({"order_type": "AFTER_HOURS_SINGLE"}, "phase_rejects_order_type", "order_type"),
        ({"order_type": "POST_CLOSE_PRICE"}, "invalid_price", "limit_price"),
    ],
)
def test_rejected_orders_get_a_coded_error_and_change_nothing(api_client, samsung, overrides, code, field, settings):
    from apps.trading.orders.models import Order

    settings.NXT_ELIGIBLE_CODES = ["000660"]

    response = _order(api_client, **overrides)

    assert response.status_code in (400, 409, 422), response.json()
    error = response.json()["error"]
    assert error["code"] == code
    if field:
        assert field in error["fields"]
    assert Order.objects.count() == 0
    assert api_client.get("/api/paper-trading/balance").json()["reserved_cash"] == 0


def test_users_see_only_their_own_accounts_and_orders(api_client, samsung, django_user_model):
    mine = _order(api_client).json()
    other = APIClient()
    other.force_authenticate(django_user_model.objects.create_user(username="mallory", password="x-123456789"))

    assert other.get(f"/api/paper-trading/orders/{mine['id']}").status_code == 404
    assert other.delete(f"/api/paper-trading/orders/{mine['id']}").status_code == 404
    assert other.get("/api/paper-trading/orders").json()["results"] == []
    my_account = api_client.get("/api/paper-trading/accounts").json()[0]["id"]
    assert other.get("/api/paper-trading/balance", {"account": my_account}).status_code == 404
    assert other.post(f"/api/paper-trading/accounts/{my_account}/reset").status_code == 404


def test_a_crossing_tick_fills_and_positions_and_balance_follow(api_client, samsung, tick):
    from apps.trading.orders.fills import order_fill_apply

    order = _order(api_client, quantity=10, limit_price=70_000).json()

    order_fill_apply(tick=tick(69_900, 4))  # fills 4 at the print (better than the limit)
    order_fill_apply(tick=tick(70_000, 100))  # the remaining 6 at the limit

    got = api_client.get(f"/api/paper-trading/orders/{order['id']}").json()
    assert (got["status"], got["filled_quantity"]) == ("FILLED", 10)
    executions = api_client.get("/api/paper-trading/executions").json()
    assert sorted((e["price"], e["quantity"], e["commission"]) for e in executions) == [
        (69_900, 4, 41),  # truncate(279,600 x 0.00015 = 41.94)
        (70_000, 6, 63),  # truncate(420,000 x 0.00015)
    ]
    positions = api_client.get("/api/paper-trading/positions").json()
    assert [(p["code"], p["quantity"], p["cost_basis"]) for p in positions] == [("005930", 10, 699_600)]
    balance = api_client.get("/api/paper-trading/balance").json()
    assert balance["cash"] == 10_000_000 - 699_600 - 41 - 63
    assert balance["reserved_cash"] == 0
    assert balance["equity"] == balance["cash"] + balance["positions_value"]


def test_accounts_can_be_opened_and_reset(api_client, samsung):
    created = api_client.post("/api/paper-trading/accounts", {"name": "스윙", "initial_cash": 5_000_000}, format="json")
    assert created.status_code == 201
    account = created.json()["id"]
    _order(api_client, account=account)
    assert api_client.get("/api/paper-trading/balance", {"account": account}).json()["reserved_cash"] > 0

    reset = api_client.post(f"/api/paper-trading/accounts/{account}/reset")

    assert (reset.status_code, reset.json()["cash"], reset.json()["reserved_cash"]) == (200, 5_000_000, 0)
    assert reset.json()["reset_at"] is not None
    bad = api_client.post("/api/paper-trading/accounts", {"name": "", "initial_cash": -1}, format="json")
    assert (bad.status_code, set(bad.json()["error"]["fields"])) == (400, {"name", "initial_cash"})


def test_openapi_schema_lists_the_paper_trading_endpoints(client, db):
    schema = client.get("/api/schema/").content.decode()

    for path in ("/api/paper-trading/orders", "/api/paper-trading/orders/{order_id}", "/api/paper-trading/positions",
                 "/api/paper-trading/balance", "/api/paper-trading/accounts/{account_id}/reset",
                 "/api/paper-trading/executions"):  # fmt: skip
        assert path in schema


def test_route_phase_and_venue_are_shown_and_default_for_existing_clients(api_client, samsung, settings):
    from apps.live.realtime.fillpath import FillTick
    from apps.trading.orders.fills import order_fill_apply

    settings.NXT_ELIGIBLE_CODES = ["005930"]
    plain = _order(api_client).json()  # no route: KRX, as before
    routed = _order(api_client, route="sor").json()
    assert (plain["route"], plain["phase"]) == ("KRX", "continuous")
    assert (routed["route"], routed["phase"]) == ("SOR", "continuous")
    assert plain["accepted_at"] == open_market().now.isoformat()

    at = open_market().now + dt.timedelta(seconds=5)
    order_fill_apply(tick=FillTick(stream_id="9000-0", code="005930", price=69_900, volume=100, cum_volume=0, at=at,
                                   ask=69_900, bid=69_900, venue="NXT"))  # fmt: skip
    executions = api_client.get("/api/paper-trading/executions").json()
    assert [(e["order"], e["venue"], e["phase"]) for e in executions] == [(routed["id"], "NXT", "continuous")]


def test_openapi_schema_shows_route_phase_and_venue(client, db):
    schema = client.get("/api/schema/").content.decode()
    for text in ("route", "accepted_at", "venue", "AFTER_HOURS_SINGLE"):
        assert text in schema
