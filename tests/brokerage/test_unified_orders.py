"""A broker-linked account through the same order API, pages and lists as a paper-engine account, against the
sandbox's KIS servers: orders routed to the broker and filled through decrypted notices, every order and execution
saying where it was executed; fills missed while the socket was down reconciled once; the balance inquiry's cash and
holdings taken over what Hoga expected (the difference recorded and shown); real-account rules; hostile input."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.brokerage.models import BrokerBalance, BrokerDisagreement, BrokerExecution, BrokerLink, BrokerOrder
from apps.brokerage.selectors import broker_expected_state, broker_positions
from apps.brokerage.services import broker_balance_reconcile, broker_reconcile
from apps.brokers.kis.orders import BUY
from apps.marketdata.models import Stock
from apps.trading.orders.models import Order
from tests.brokerage.conftest import REPLAY_DAY
from tests.brokerage.test_broker_orders import CODE, Running, _link, _upper_limit, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ORDERS = "/api/paper-trading/orders"


@pytest.fixture(autouse=True)
def _close_worker_thread_connections():
    yield
    from channels.db import database_sync_to_async
    from django.db import connections

    asyncio.run(database_sync_to_async(connections.close_all)())


def _order(api_client, price: int | None, qty: int = 3, **extra):
    body = {"code": CODE, "side": "BUY", "order_type": "LIMIT", "quantity": qty, "limit_price": price,
            "client_order_id": uuid.uuid4().hex, **extra}  # fmt: skip
    return api_client.post(ORDERS, body, format="json")


def test_the_paper_trading_api_routes_a_linked_accounts_order_to_the_broker_and_lists_both_kinds(
    sandbox, factory, api_client, user
):
    link = _link(user, sandbox)
    price = _upper_limit(factory, link)
    earlier = Order.objects.create(  # an order of the paper engine from before the link
        account=link.account, stock=Stock.objects.get(code=CODE), side="BUY", order_type="LIMIT", quantity=1,
        limit_price=1000, status="CANCELLED", trading_date=REPLAY_DAY, commission_rate=Decimal("0.00015"),
    )  # fmt: skip

    with Running(link, factory) as running:
        response = _order(api_client, price, route="KRX")
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["executed_by"], body["executed_where"], body["route"]) == (
            "kis_paper", "KIS 모의투자 (paper) · KRX", "KRX")  # fmt: skip
        assert body["ref"] == f"broker:{body['id']}" and body["broker_order_no"]
        wait_for(lambda: BrokerOrder.objects.get(pk=body["id"]).status == "FILLED")
    assert running.listener.stats["applied"] >= 1
    assert not Order.objects.exclude(pk=earlier.pk).exists()  # nothing went to the paper engine

    listed = api_client.get(ORDERS).json()["results"]
    assert [(o["ref"], o["executed_by"]) for o in listed] == [
        (f"broker:{body['id']}", "kis_paper"), (f"paper:{earlier.pk}", "paper_engine")]  # fmt: skip
    assert listed[1]["executed_where"] == "Hoga 모의 엔진 (paper engine) · KRX"
    assert listed[0]["status"] == "FILLED" and listed[0]["filled_quantity"] == 3
    assert [o["ref"] for o in api_client.get(ORDERS, {"status": "FILLED"}).json()["results"]] == [listed[0]["ref"]]
    detail = api_client.get(f"{ORDERS}/broker/{body['id']}").json()
    assert (detail["filled_quantity"], detail["executed_by"]) == (3, "kis_paper")

    executions = api_client.get("/api/paper-trading/executions").json()
    assert executions and {(e["executed_by"], e["venue"], e["source"]) for e in executions} == {
        ("kis_paper", "KRX", "notice")}  # fmt: skip
    assert sum(e["quantity"] for e in executions) == 3 and executions[0]["order_ref"] == body["ref"]

    # The same client_order_id is the same order (200, not a second one at the broker).
    again = _order(api_client, price, client_order_id=body["client_order_id"])
    assert (again.status_code, again.json()["id"], BrokerOrder.objects.count()) == (200, body["id"], 1)


def test_fills_missed_while_down_are_reconciled_once_and_the_balance_agrees(sandbox, factory, api_client, user):
    link = _link(user, sandbox)
    price = _upper_limit(factory, link)
    with Running(link, factory):
        assert _order(api_client, price, qty=2).status_code == 201
        wait_for(lambda: BrokerOrder.objects.filter(status="FILLED").count() == 1)
    missed = _order(api_client, price, qty=4).json()  # the socket is down: its notices go nowhere
    with Running(link, factory) as again:
        assert again.listener.stats["reconciled"] == 1
    order = BrokerOrder.objects.get(pk=missed["id"])
    assert (order.status, order.filled_qty, order.noticed_qty) == ("FILLED", 4, 4)
    assert list(order.executions.values_list("source", "quantity")) == [("reconcile", 4)]

    assert broker_reconcile(link=link, day=REPLAY_DAY)["adjusted"] == 0  # the scheduled run adds nothing
    assert broker_balance_reconcile(link=link) == {"positions_differ": 0, "cash_differs": 0}
    assert sum(e["quantity"] for e in api_client.get("/api/paper-trading/executions").json()) == 6
    assert broker_positions(link=link) == [{"code": CODE, "quantity": 6}]
    assert not BrokerDisagreement.objects.exclude(kind="missed_notices").exists()


def test_the_brokers_balance_wins_and_the_difference_is_recorded_and_shown(sandbox, factory, api_client, client, user):
    link = _link(user, sandbox)
    price = _upper_limit(factory, link)
    with Running(link, factory):  # connecting reads the first balance: nothing held, nothing to disagree about
        assert _order(api_client, price, qty=3).status_code == 201
        wait_for(lambda: BrokerOrder.objects.filter(status="FILLED").count() == 1)
    assert broker_balance_reconcile(link=link) == {"positions_differ": 0, "cash_differs": 0}
    cash_before = broker_expected_state(link=link)[1]

    async def order_outside_hoga():  # e.g. from the broker's own app
        async with factory(link) as kis:
            await kis.order_cash(account=link.cano, product="01", side=BUY, code=CODE, quantity=2, price=price)

    asyncio.run(order_outside_hoga())
    wait_for(lambda: broker_reconcile(link=link, day=REPLAY_DAY)["foreign"] == 1)
    assert broker_balance_reconcile(link=link) == {"positions_differ": 1, "cash_differs": 1}

    position = BrokerDisagreement.objects.get(kind="position_mismatch")
    assert (position.ours, position.broker) == ({"code": CODE, "quantity": 3}, {"code": CODE, "quantity": 5})
    cash = BrokerDisagreement.objects.get(kind="cash_mismatch")
    assert cash.ours == {"cash": cash_before} and cash.broker["cash"] < cash_before
    assert broker_positions(link=link) == [{"code": CODE, "quantity": 5}]  # the broker wins
    assert broker_expected_state(link=link)[1] == cash.broker["cash"]
    assert broker_balance_reconcile(link=link) == {"positions_differ": 0, "cash_differs": 0}  # and agrees after

    link_view = api_client.get("/api/brokerage/link").json()
    assert link_view["positions"] == [{"code": CODE, "quantity": 5}] and link_view["cash"] == cash.broker["cash"]
    assert {"position_mismatch", "cash_mismatch"} <= {d["kind"] for d in link_view["disagreements"]}
    client.force_login(user)
    page = client.get("/broker/").content.decode()
    assert "position_mismatch" in page and "cash_mismatch" in page and 'id="broker-balance"' in page


def test_a_real_account_order_through_the_unified_api_needs_the_opt_in_and_the_confirmation(
    sandbox, factory, api_client, user
):
    link = _link(user, sandbox, env="real", limit=1_000_000)
    price = _upper_limit(factory, link)
    refused = _order(api_client, price, qty=1, confirm=True)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "real_account_not_opted_in"
    BrokerLink.objects.filter(pk=link.pk).update(real_opt_in=True)
    unconfirmed = _order(api_client, price, qty=1)
    assert unconfirmed.status_code == 409 and unconfirmed.json()["error"]["code"] == "confirmation_required"
    over = _order(api_client, price, qty=1_000_000 // price + 1, confirm=True)
    assert over.status_code == 409 and over.json()["error"]["code"] == "daily_limit_exceeded"
    assert not BrokerOrder.objects.exists() and not Order.objects.exists()

    placed = _order(api_client, price, qty=1, confirm=True, route="SOR")
    assert placed.status_code == 201, placed.content
    assert (placed.json()["executed_by"], placed.json()["executed_where"]) == ("kis_real", "KIS 실전 (real) · SOR")


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"quantity": "x" * 5000}, "invalid_broker_order", "quantity"),
        ({"quantity": 0}, "invalid_broker_order", "quantity"),
        ({"limit_price": -5}, "invalid_broker_order", "price"),
        ({"order_type": "PRE_CLOSE_PRICE", "limit_price": None}, "invalid_broker_order", "order_type"),
        ({"route": "NXT"}, "invalid_broker_order", "venue"),  # the paper server trades KRX only
        ({"route": "NYSE"}, "invalid_order", "route"),
        ({"side": "HOLD"}, "invalid_order", "side"),
        ({"code": "999999"}, "invalid_broker_order", "code"),
        # conditional and bracket orders are evaluated by the paper engine on the tape, not at the broker
        ({"trigger_type": "STOP", "trigger_price": 65_000}, "conditional_not_at_broker", "trigger_type"),
        ({"take_profit_price": 80_000, "stop_loss_price": 60_000}, "conditional_not_at_broker", "stop_loss_price"),
    ],
)
def test_malformed_orders_of_a_linked_account_are_refused_with_a_code(
    sandbox, factory, api_client, user, body, code, field
):
    _link(user, sandbox)
    payload = {"code": CODE, "side": "BUY", "order_type": "LIMIT", "quantity": 1, "limit_price": 70_000, **body}
    response = api_client.post(ORDERS, payload, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code and field in response.json()["error"]["fields"]
    assert not BrokerOrder.objects.exists() and not Order.objects.exists()


def test_another_users_linked_account_and_orders_are_not_found(sandbox, factory, api_client, user, django_user_model):
    other = django_user_model.objects.create_user(username="other", password="x-very-long-9")
    other_link = _link(other, sandbox)
    foreign = BrokerOrder.objects.create(
        link=other_link, client_order_id="x", code=CODE, side="BUY", order_type="LIMIT", quantity=1, limit_price=1,
        env="paper", value_reserved=1, status="FILLED", filled_qty=1, filled_value=1,
    )  # fmt: skip
    BrokerExecution.objects.create(order=foreign, quantity=1, price=1, source="notice", dedupe_key="k")
    _link(user, sandbox)

    response = _order(api_client, 70_000, account=other_link.account_id)
    assert response.status_code == 404 and response.json()["error"]["code"] == "account_not_found"
    assert api_client.get(ORDERS, {"account": other_link.account_id}).status_code == 404
    for path in (f"broker/{foreign.pk}", "broker/abc", f"broker/{'9' * 40}", "broker/-1", f"nope/{foreign.pk}"):
        response = api_client.get(f"{ORDERS}/{path}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "order_not_found", path
    assert api_client.get(ORDERS).json()["results"] == []
    assert api_client.get("/api/paper-trading/executions").json() == []
    assert BrokerOrder.objects.filter(link=other_link).count() == 1


def test_the_orders_page_and_the_stock_ticket_serve_a_linked_account(sandbox, factory, client, user):
    link = _link(user, sandbox, env="real", limit=10_000_000)
    BrokerLink.objects.filter(pk=link.pk).update(real_opt_in=True)
    price = _upper_limit(factory, link)
    client.force_login(user)
    ticket = client.get(f"/stocks/{CODE}/").content.decode()
    assert 'data-executed-by="kis_real"' in ticket and 'name="confirm" value="yes"' in ticket

    form = {"side": "BUY", "order_type": "LIMIT", "route": "KRX", "quantity": "1", "price": str(price),
            "client_order_id": uuid.uuid4().hex, "account": str(link.account_id)}  # fmt: skip
    unconfirmed = client.post(f"/stocks/{CODE}/", form, HTTP_HX_REQUEST="true").content.decode()
    assert "confirmation_required" in unconfirmed and not BrokerOrder.objects.exists()
    placed = client.post(f"/stocks/{CODE}/", {**form, "confirm": "yes"}, HTTP_HX_REQUEST="true").content.decode()
    order = BrokerOrder.objects.get()
    assert f'data-order-id="broker:{order.pk}"' in placed and "KIS 실전 · KRX" in placed

    page = client.get("/orders/").content.decode()
    rows = re.findall(r'<tr data-order-ref="(broker:\d+)" data-executed-by="(\w+)"', page)
    assert rows == [(f"broker:{order.pk}", "kis_real")]
    assert "KIS 실전 · KRX" in page and f"/orders/{order.pk}/cancel/" not in page


def test_the_scheduled_run_reconciles_orders_then_the_balance(sandbox, factory, api_client, user, monkeypatch):
    from apps.brokerage import services, tasks

    monkeypatch.setattr(services, "market_day", lambda: REPLAY_DAY)
    link = _link(user, sandbox)
    price = _upper_limit(factory, link)
    placed = _order(api_client, price, qty=2).json()  # no listener: nobody tells its fill

    async def broker_filled() -> int:
        async with factory(link) as kis:
            rows = await kis.daily_orders(account=link.cano, product="01", day=REPLAY_DAY)
            return sum(r.filled_qty for r in rows)

    wait_for(lambda: asyncio.run(broker_filled()) == 2)
    fresh = tasks.reconcile_links()[link.pk]
    assert (fresh["settling"], "positions_differ" in fresh) == (1, False)  # changed just now: left to its notices
    BrokerOrder.objects.filter(pk=placed["id"]).update(updated_at=timezone.now() - dt.timedelta(minutes=1))

    counts = tasks.reconcile_links()[link.pk]
    assert (counts["adjusted"], counts["positions_differ"], counts["cash_differs"]) == (1, 0, 0)
    assert BrokerOrder.objects.get(pk=placed["id"]).filled_qty == 2
    assert broker_positions(link=link) == [{"code": CODE, "quantity": 2}]
    assert BrokerBalance.objects.get(link=link).holdings[0]["quantity"] == 2


def test_where_an_order_goes_is_read_with_the_account_and_an_unlink_counts_at_once(user):
    """The order API reads the account's active link with the account (one query, nothing kept per process):
    linking and unlinking take effect on the very next order, and an account read without the hint asks."""
    from apps.brokerage.services import broker_link_save
    from apps.trading.accounts.selectors import paper_account_for_user
    from apps.trading.accounts.services import paper_account_ensure
    from apps.trading.orders.executors import executor_account_annotations, executor_for

    def read():
        return paper_account_ensure(user=user, annotations=executor_account_annotations())

    paper_account_ensure(user=user)  # created (a new account is read without the hint)
    account = read()
    assert executor_for(account) is None and vars(account)["broker_link_env"] is None
    link = broker_link_save(
        account=account, env="paper", cano="87654321", product_code="01", hts_id="hogauser1",
        app_key="P" * 36, app_secret="S" * 180, daily_value_limit=0,
    )  # fmt: skip
    for found in (read(), paper_account_for_user(user=user, account_id=account.pk,
                                                 annotations=executor_account_annotations())):  # fmt: skip
        assert executor_for(found) is not None and executor_for(found).handles(found) == "kis_paper"
    BrokerLink.objects.filter(pk=link.pk).update(active=False)
    assert executor_for(read()) is None
    assert executor_for(paper_account_ensure(user=user)) is None  # no hint: the executor asks the database
