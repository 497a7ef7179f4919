"""Cancelling an order of a broker-linked account through the same order API and orders page as a paper-engine
order, against the sandbox's KIS paper server (``order-rvsecncl``): the resting remainder is taken off the broker's
book, its reserved cash released, the cancel recorded once whether the confirm notice or the read-back inquiry
brings it first; a fill that reached the broker before the cancel stays filled; refusals are coded. The portfolio
of a linked account shows the broker's last reconciled balance with its as-of time."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid

import pytest

from apps.brokerage import services
from apps.brokerage.models import BrokerDisagreement, BrokerExecution, BrokerOrder
from apps.brokerage.services import broker_balance_reconcile, broker_notice_apply, broker_reconcile
from apps.brokers.kis.orders import parse_notice_record
from apps.sandbox.orders import notice_fields
from tests.brokerage.conftest import ADMIN, REPLAY_DAY
from tests.brokerage.test_broker_orders import CODE, Running, _link, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ORDERS = "/api/paper-trading/orders"
DEPOSIT = 10**13  # enough to buy the whole best ask level: an order that fills in part and rests in part


@pytest.fixture(scope="module")
def sandbox():
    """This module's sandbox: a deposit large enough to take a whole book level."""
    import httpx

    from apps.sandbox.config import LIGHT_TAPE, AppCredential, SandboxConfig
    from apps.sandbox.server import SandboxThread

    creds = (
        AppCredential(f"PSCNL{uuid.uuid4().hex}"[:36].ljust(36, "0"), "p" * 180, "paper"),
        AppCredential(f"RLCNL{uuid.uuid4().hex}"[:36].ljust(36, "0"), "r" * 180, "real"),
    )
    cfg = SandboxConfig(
        data_dir=None, replay_date=REPLAY_DAY, real_rest_port=0, paper_rest_port=0, real_ws_port=0, paper_ws_port=0,
        speed=1.0, admin_token=ADMIN, app_credentials=creds, paper_rate_limit=400.0, real_rate_limit=400.0,
        token_issue_interval_s=1.0, tape_density=LIGHT_TAPE, order_deposit=DEPOSIT,
    )  # fmt: skip
    with SandboxThread(cfg) as running:
        running.creds = {c.mode: c for c in creds}
        r = httpx.post(
            f"http://127.0.0.1:{running.ports.paper_rest}/sandbox/clock",
            json={"time": "10:00:00", "speed": 0.0001},  # the book stands still: nothing prints during a test
            headers={"X-Sandbox-Admin": ADMIN},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        yield running


@pytest.fixture(autouse=True)
def _close_worker_thread_connections():
    yield
    from channels.db import database_sync_to_async
    from django.db import connections

    asyncio.run(database_sync_to_async(connections.close_all)())


@pytest.fixture(autouse=True)
def _replay_day(monkeypatch):
    monkeypatch.setattr(services, "market_day", lambda: REPLAY_DAY)


def _book(sandbox):
    core = sandbox.server.core
    tape = core.market.tape(CODE)
    return tape, tape.order_book_at(core.clock.now_ms())


def _sandbox_order(sandbox, number: str):
    return next(o for o in sandbox.server.core.orders.orders if o.number.lstrip("0") == number.lstrip("0"))


def _place(api_client, price: int, qty: int):
    body = {"code": CODE, "side": "BUY", "order_type": "LIMIT", "quantity": qty, "limit_price": price,
            "client_order_id": uuid.uuid4().hex}  # fmt: skip
    response = api_client.post(ORDERS, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_resting_order_is_cancelled_through_the_api_once_and_its_cash_released(sandbox, factory, api_client, user):
    link = _link(user, sandbox)
    tape, _ = _book(sandbox)
    with Running(link, factory) as running:
        placed = _place(api_client, tape.lower_limit, 3)  # rests: nothing prints at the lower limit
        at_broker = _sandbox_order(sandbox, placed["broker_order_no"])
        assert at_broker.reserved == tape.lower_limit * 3

        response = api_client.delete(f"{ORDERS}/broker/{placed['id']}")
        assert response.status_code == 200, response.content
        body = response.json()
        assert (body["status"], body["cancelled_quantity"], body["filled_quantity"]) == ("CANCELLED", 3, 0)
        assert body["ref"] == f"broker:{placed['id']}" and body["executed_by"] == "kis_paper"
        wait_for(lambda: running.listener.stats["cancelled"] + running.listener.stats["duplicate"] >= 1)

    # Whichever came first (the read-back or the confirm notice) recorded the cancel; the other changed nothing.
    assert running.listener.stats["cancelled"] + running.listener.stats["duplicate"] == 1
    order = BrokerOrder.objects.get(pk=placed["id"])
    assert (order.status, order.cancelled_qty, order.filled_qty, order.value_reserved) == ("CANCELLED", 3, 0, 0)
    assert order.cancel_order_no and order.cancel_order_no != order.broker_order_no
    assert not order.executions.exists()
    # At the broker: nothing left open, the reserved cash back, a cancel order of its own naming the original.
    assert (at_broker.remaining, at_broker.cancelled, at_broker.reserved) == (0, 3, 0)
    account = sandbox.server.core.orders.accounts[(at_broker.appkey, "paper", at_broker.account)]
    assert account.cash == DEPOSIT
    cancel = _sandbox_order(sandbox, order.cancel_order_no)
    assert (cancel.kind, cancel.original, cancel.quantity) == ("cancel", at_broker.number, 3)

    # The scheduled reconciliation finds it agreeing; cancelling again is refused (closed).
    assert broker_reconcile(link=link, day=REPLAY_DAY)["cancelled"] == 0
    again = api_client.delete(f"{ORDERS}/broker/{placed['id']}")
    assert again.status_code == 409 and again.json()["error"]["code"] == "order_not_cancellable"
    listed = api_client.get(ORDERS, {"status": "CANCELLED"}).json()["results"]
    assert [o["ref"] for o in listed] == [body["ref"]]


def test_the_orders_page_cancels_a_broker_row_and_the_confirm_notice_applies_once(
    sandbox, factory, client, user, monkeypatch
):
    link = _link(user, sandbox)
    tape, _ = _book(sandbox)
    client.force_login(user)
    # The read-back inquiry finds nothing (another day): the confirm notice alone records the cancel.
    monkeypatch.setattr(services, "market_day", lambda: REPLAY_DAY - dt.timedelta(days=1))
    with Running(link, factory) as running:
        from rest_framework.test import APIClient

        api = APIClient()
        api.force_authenticate(user)
        placed = _place(api, tape.lower_limit, 2)
        page = client.get("/orders/").content.decode()
        action = f"/orders/broker/{placed['id']}/cancel/"
        assert re.search(rf'<form method="post" action="{action}"', page)
        assert f'data-order-ref="broker:{placed["id"]}"' in page

        answer = client.post(action, HTTP_HX_REQUEST="true").content.decode()
        assert f"broker:{placed['id']}" in answer and "취소 요청됨" in answer
        wait_for(lambda: BrokerOrder.objects.get(pk=placed["id"]).status == "CANCELLED")
    assert running.listener.stats["cancelled"] == 1
    order = BrokerOrder.objects.get(pk=placed["id"])
    assert (order.cancelled_qty, order.filled_qty) == (2, 0)

    # The same confirm notice again (a repeat after a reconnect) and the reconciliation add nothing.
    cancel = _sandbox_order(sandbox, order.cancel_order_no)
    notice = parse_notice_record(notice_fields(cancel, None, cancel.accepted_ms, "hogauser1"))
    assert (notice.is_cancel, notice.is_fill, notice.accept_state, notice.quantity) == (True, False, "2", 2)
    assert broker_notice_apply(link_id=link.pk, notice=notice, dedupe_key="again") == "duplicate"
    assert broker_reconcile(link=link, day=REPLAY_DAY)["cancelled"] == 0
    order.refresh_from_db()
    assert (order.status, order.cancelled_qty) == ("CANCELLED", 2)

    page = client.get("/orders/").content.decode()
    assert f"/orders/broker/{order.pk}/cancel/" not in page  # closed: no button
    repeat = client.post(f"/orders/broker/{order.pk}/cancel/", HTTP_HX_REQUEST="true").content.decode()
    assert "order_not_cancellable" in repeat


def test_a_cancel_racing_a_fill_keeps_the_filled_part_and_cancels_the_remainder(sandbox, factory, api_client, user):
    """The order takes the whole best ask level at once and rests 3 shares; Hoga has heard of no fill (no listener)
    when the cancel goes: the broker fills first, cancels the rest, and the read-back brings both; the fill's notice
    arriving late adds nothing."""
    link = _link(user, sandbox)
    _, book = _book(sandbox)
    price, level = book.asks[0], book.ask_qty[0]
    placed = _place(api_client, price, level + 3)
    assert BrokerOrder.objects.get(pk=placed["id"]).filled_qty == 0  # nobody told Hoga yet
    at_broker = _sandbox_order(sandbox, placed["broker_order_no"])
    assert (at_broker.filled, at_broker.remaining) == (level, 3)

    body = api_client.delete(f"{ORDERS}/broker/{placed['id']}").json()
    assert (body["status"], body["filled_quantity"], body["cancelled_quantity"]) == ("CANCELLED", level, 3)
    order = BrokerOrder.objects.get(pk=placed["id"])
    assert (order.filled_qty, order.filled_value, order.cancelled_qty) == (level, level * price, 3)
    assert order.value_reserved == level * price  # the cancelled part no longer counts
    assert list(order.executions.values_list("source", "quantity")) == [("reconcile", level)]
    assert (at_broker.remaining, at_broker.reserved) == (0, 0)

    late = parse_notice_record(notice_fields(at_broker, at_broker.fills[0], at_broker.accepted_ms, "hogauser1"))
    assert broker_notice_apply(link_id=link.pk, notice=late, dedupe_key="late-fill") == "counted"
    order.refresh_from_db()
    assert (order.status, order.filled_qty, order.cancelled_qty) == ("CANCELLED", level, 3)
    assert sum(BrokerExecution.objects.filter(order=order).values_list("quantity", flat=True)) == level
    with Running(link, factory) as running:  # connecting reconciles: nothing more to add
        pass
    assert running.listener.stats["reconciled"] == 1
    order.refresh_from_db()
    assert (order.status, order.filled_qty, order.cancelled_qty) == ("CANCELLED", level, 3)
    assert broker_balance_reconcile(link=link) == {"positions_differ": 0, "cash_differs": 0}
    assert not BrokerDisagreement.objects.exclude(kind="missed_notices").exists()


def test_a_cancel_after_the_order_filled_at_the_broker_is_refused_and_the_fill_read_back(
    sandbox, factory, api_client, user
):
    link = _link(user, sandbox)
    _, book = _book(sandbox)
    placed = _place(api_client, book.asks[0], 2)  # filled at once at the broker; Hoga not told (no listener)
    assert placed["status"] == "ACKNOWLEDGED"
    response = api_client.delete(f"{ORDERS}/broker/{placed['id']}")
    assert response.status_code == 409 and response.json()["error"]["code"] == "broker_refused"
    order = BrokerOrder.objects.get(pk=placed["id"])
    assert (order.status, order.filled_qty, order.cancelled_qty, order.cancel_requested_at) == ("FILLED", 2, 0, None)
    assert broker_reconcile(link=link, day=REPLAY_DAY)["adjusted"] == 0


def test_cancel_refusals_are_coded(sandbox, factory, api_client, user, django_user_model):
    other = django_user_model.objects.create_user(username="other", password="x-very-long-9")
    other_link = _link(other, sandbox)
    foreign = BrokerOrder.objects.create(
        link=other_link, client_order_id="x", code=CODE, side="BUY", order_type="LIMIT", quantity=1, limit_price=1,
        env="paper", value_reserved=1, status="ACKNOWLEDGED", broker_order_no="77",
    )  # fmt: skip
    link = _link(user, sandbox)
    mine = {
        status: BrokerOrder.objects.create(
            link=link,
            client_order_id=status,
            code=CODE,
            side="BUY",
            order_type="LIMIT",
            quantity=1,
            limit_price=1,
            env="paper",
            value_reserved=1,
            status=status,
            broker_order_no=str(100 + i),
            filled_qty=1 if status == "FILLED" else 0,
            filled_value=1 if status == "FILLED" else 0,
        )  # fmt: skip
        for i, status in enumerate(("FILLED", "REFUSED", "UNKNOWN"))
    }
    for path in (f"broker/{foreign.pk}", f"broker/{10**15}", f"nope/{mine['FILLED'].pk}"):
        response = api_client.delete(f"{ORDERS}/{path}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "order_not_found", path
    for path in ("broker/abc", f"broker/{'9' * 40}", "broker/-1", "broker/0", f"broker/{'x' * 5000}"):
        response = api_client.delete(f"{ORDERS}/{path}")
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_order_id", path
    for order in mine.values():
        response = api_client.delete(f"{ORDERS}/broker/{order.pk}")
        assert response.status_code == 409 and response.json()["error"]["code"] == "order_not_cancellable"
    # A cancel already on its way is not sent twice.
    pending = BrokerOrder.objects.create(
        link=link, client_order_id="p", code=CODE, side="BUY", order_type="LIMIT", quantity=1, limit_price=1,
        env="paper", value_reserved=1, status="ACKNOWLEDGED", broker_order_no="200",
        cancel_requested_at=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    response = api_client.delete(f"{ORDERS}/broker/{pending.pk}")
    assert response.status_code == 409 and response.json()["error"]["code"] == "cancel_pending"
    foreign.refresh_from_db()
    assert (foreign.status, foreign.cancel_requested_at) == ("ACKNOWLEDGED", None)
    # The page answers the same codes, never a server error.
    from django.test import Client

    page = Client()
    page.force_login(user)
    for path, code in ((f"broker/{foreign.pk}", "order_not_found"), ("broker/abc", "invalid_order_id"),
                       (f"broker/{mine['FILLED'].pk}", "order_not_cancellable")):  # fmt: skip
        response = page.post(f"/orders/{path}/cancel/", HTTP_HX_REQUEST="true")
        assert response.status_code == 200 and code in response.content.decode(), path


def test_the_portfolio_shows_the_brokers_last_balance_with_its_time(sandbox, factory, api_client, client, user):
    link = _link(user, sandbox)
    _, book = _book(sandbox)
    client.force_login(user)
    assert api_client.get("/api/paper-trading/balance").json()["broker_balance"]["as_of"] is None
    assert "브로커 잔고를 아직 조회하지 않았습니다" in client.get("/portfolio/").content.decode()  # not read yet

    _place(api_client, book.asks[0], 4)
    broker_reconcile(link=link, day=REPLAY_DAY)
    broker_balance_reconcile(link=link)

    positions = api_client.get("/api/paper-trading/positions").json()
    assert len(positions) == 1
    row = positions[0]
    assert (row["code"], row["quantity"], row["source"], row["price_source"]) == (
        CODE,
        4,
        "kis_paper",
        "broker_balance",
    )
    assert row["as_of"] and row["market_value"] == 4 * row["last_price"] and row["realized_pnl"] is None
    balance = api_client.get("/api/paper-trading/balance").json()["broker_balance"]
    assert balance["executed_by"] == "kis_paper" and balance["as_of"] == row["as_of"]
    assert balance["cash"] == DEPOSIT - 4 * book.asks[0]  # the deposit the broker told (no D+2 in the sandbox)
    assert balance["total_value"] == balance["cash"] + balance["securities_value"] == balance["cash"] + row[
        "market_value"]  # fmt: skip

    page = client.get("/portfolio/").content.decode()
    assert 'id="broker-holdings" data-source="kis_paper"' in page
    assert re.search(rf'<tr data-code="{CODE}" data-source="kis_paper">', page)
    assert 'data-field="quantity" data-value="4"' in page and "마지막 잔고조회 기준" in page  # as of the last balance


def test_an_unlinked_accounts_positions_say_they_are_the_paper_engines(api_client, user):
    from apps.trading.accounts.services import paper_account_ensure

    paper_account_ensure(user=user)
    assert api_client.get("/api/paper-trading/balance").json()["broker_balance"] is None
    assert api_client.get("/api/paper-trading/positions").json() == []


def test_the_account_admin_page_shows_its_broker_link_without_the_keys(sandbox, admin_client, user):
    link = _link(user, sandbox)
    page = admin_client.get(f"/admin/accounts/paperaccount/{link.account_id}/change/").content.decode()
    assert f"/admin/brokerage/brokerlink/{link.pk}/change/" in page and f"{link.cano[:4]}****" in page
    assert link.cano not in page and sandbox.creds["paper"].appkey not in page and "never" in page
    other = admin_client.get("/admin/accounts/paperaccount/").status_code
    assert other == 200
