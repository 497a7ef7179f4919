"""Orders of a broker-linked paper account against the sandbox's KIS paper server over real sockets: placed and
acknowledged over REST, filled through decrypted H0STCNI9 notices; fills whose notices were lost while the
WebSocket was down reconciled exactly once from the order inquiry; a real-account order refused without the opt-in,
without the confirmation and over the daily limit. The keys live encrypted in the link and are decrypted to build
the client."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid

import pytest

from apps.brokerage.models import BrokerDisagreement, BrokerExecution, BrokerLink, BrokerOrder
from apps.brokerage.notices import NoticeListener
from apps.brokerage.selectors import broker_positions
from apps.brokerage.services import broker_link_save, broker_reconcile
from apps.marketdata.models import Stock
from tests.brokerage.conftest import REPLAY_DAY

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CODE = "005930"


@pytest.fixture(autouse=True)
def _close_worker_thread_connections():
    yield
    from channels.db import database_sync_to_async
    from django.db import connections

    asyncio.run(database_sync_to_async(connections.close_all)())


_CANOS = itertools.count(1)


def _link(user, sandbox, env: str = "paper", *, limit: int = 0) -> BrokerLink:
    """A link to a fresh account at the sandbox (its own CANO: the sandbox keeps the module's orders and holdings)."""
    from apps.trading.accounts.services import paper_account_ensure

    account = paper_account_ensure(user=user)
    cred = sandbox.creds[env]
    Stock.objects.update_or_create(code=CODE, defaults={"name": "삼성전자", "market": "KOSPI", "rank": 1})
    return broker_link_save(
        account=account, env=env, cano=f"1234{next(_CANOS):04d}", product_code="01", hts_id="hogauser1",
        app_key=cred.appkey, app_secret=cred.appsecret, daily_value_limit=limit,
    )  # fmt: skip


class Running:
    """A notice listener on its own thread and event loop."""

    def __init__(self, link, factory) -> None:
        self.listener = NoticeListener(link, client_factory=factory, day=REPLAY_DAY)
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        from channels.db import database_sync_to_async
        from django.db import connections

        try:
            await self.listener.run(self.stop)
        finally:
            await database_sync_to_async(connections.close_all)()

    def __enter__(self) -> Running:
        self.thread.start()
        wait_for(lambda: self.listener.stats["subscribed"] >= 1)
        return self

    def drop_socket(self) -> None:
        asyncio.run_coroutine_threadsafe(self.listener.socket.close(), self.loop).result(5)

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(15)


def wait_for(check, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def _upper_limit(factory, link) -> int:
    async def go():
        async with factory(link) as client:
            return (await client.current_price(CODE)).upper_limit

    return asyncio.run(go())


def _order(api_client, price: int, qty: int = 3, **extra):
    body = {"code": CODE, "side": "BUY", "order_type": "LIMIT", "quantity": qty, "price": price,
            "client_order_id": uuid.uuid4().hex, **extra}  # fmt: skip
    return api_client.post("/api/brokerage/orders", body, format="json")


def test_an_order_on_a_linked_paper_account_is_acknowledged_and_filled_through_decrypted_notices(
    sandbox, factory, api_client, user
):
    link = _link(user, sandbox)
    assert "PSBRK" not in link.app_key_encrypted and link.app_key_hint == "PSBR"
    price = _upper_limit(factory, link)

    with Running(link, factory) as running:
        response = _order(api_client, price)
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["status"], body["env"], body["venue"]) in {(s, "paper", "KRX") for s in ("ACKNOWLEDGED", "FILLED")}
        assert body["executed_at"] == "KIS 모의투자 (paper) · KRX" and body["broker_order_no"]
        order = BrokerOrder.objects.get(pk=body["id"])
        wait_for(lambda: BrokerOrder.objects.get(pk=order.pk).status == "FILLED")

    order.refresh_from_db()
    executions = list(order.executions.all())
    assert {e.source for e in executions} == {"notice"} and {e.venue for e in executions} == {"KRX"}
    assert sum(e.quantity for e in executions) == order.filled_qty == 3
    assert order.filled_value == sum(e.quantity * e.price for e in executions)
    assert running.listener.stats["ack"] >= 1 and running.listener.stats["applied"] == len(executions)
    assert broker_positions(link=link) == [{"code": CODE, "quantity": 3}]
    # The broker agrees: reconciling changes nothing and records no disagreement.
    assert broker_reconcile(link=link, day=REPLAY_DAY)["adjusted"] == 0
    assert not BrokerDisagreement.objects.exists()
    # The same client_order_id is the same order.
    again = api_client.post("/api/brokerage/orders", {"code": CODE, "side": "BUY", "order_type": "LIMIT", "quantity": 3,
                            "price": price, "client_order_id": order.client_order_id}, format="json")  # fmt: skip
    assert again.json()["id"] == order.pk and BrokerOrder.objects.count() == 1


def test_fills_missed_while_the_socket_was_down_are_reconciled_once_after_the_reconnect(
    sandbox, factory, api_client, user
):
    link = _link(user, sandbox)
    price = _upper_limit(factory, link)
    with Running(link, factory) as first:
        assert _order(api_client, price, qty=2).status_code == 201
        wait_for(lambda: BrokerOrder.objects.filter(status="FILLED").count() == 1)
        first.drop_socket()  # the listener reconnects by itself and reconciles before subscribing again
        wait_for(lambda: first.listener.connections == 2 and first.listener.stats["subscribed"] >= 2)
        assert first.listener.stats["reconciled"] == 2
    # The socket is down: these fills' notices go nowhere.
    missed = _order(api_client, price, qty=4).json()
    assert BrokerOrder.objects.get(pk=missed["id"]).filled_qty == 0

    with Running(link, factory) as second:
        assert second.listener.stats["reconciled"] == 1
        order = BrokerOrder.objects.get(pk=missed["id"])
        assert (order.status, order.filled_qty) == ("FILLED", 4)
        assert list(order.executions.values_list("source", "quantity")) == [("reconcile", 4)]
        disagreement = BrokerDisagreement.objects.get(order=order)
        assert (disagreement.kind, disagreement.ours["filled_qty"], disagreement.broker["filled_qty"]) == (
            "missed_notices", 0, 4)  # fmt: skip

    # Every later reconciliation finds the broker and Hoga agreeing: nothing is counted twice.
    assert broker_reconcile(link=link, day=REPLAY_DAY)["adjusted"] == 0
    assert BrokerExecution.objects.filter(order_id=missed["id"]).count() == 1
    assert broker_positions(link=link) == [{"code": CODE, "quantity": 6}]


def test_a_real_account_order_needs_the_opt_in_the_confirmation_and_room_under_the_daily_limit(
    sandbox, factory, api_client, user
):
    link = _link(user, sandbox, env="real", limit=1_000_000)
    price = _upper_limit(factory, link)

    refused = _order(api_client, price, qty=1, confirm=True)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "real_account_not_opted_in"
    wrong = api_client.post("/api/brokerage/link/opt-in-real", {"confirm_cano": "87654321"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "opt_in_mismatch"
    assert api_client.post("/api/brokerage/link/opt-in-real", {"confirm_cano": link.cano}, format="json").json()[
        "real_opt_in"
    ]
    unconfirmed = _order(api_client, price, qty=1)
    assert unconfirmed.status_code == 409 and unconfirmed.json()["error"]["code"] == "confirmation_required"
    over = _order(api_client, price, qty=1_000_000 // price + 1, confirm=True)
    assert over.status_code == 409 and over.json()["error"]["code"] == "daily_limit_exceeded"
    assert not BrokerOrder.objects.exists()  # nothing was sent

    placed = _order(api_client, price, qty=1, confirm=True, venue="SOR")
    assert placed.status_code == 201, placed.content
    assert placed.json()["executed_at"] == "KIS 실전 (real) · SOR"
    link_view = api_client.get("/api/brokerage/link").json()
    assert link_view["app_key_hint"] == "RLBR…" and "RLBRK" not in str(link_view)
    assert link_view["account"] == "1234****-01"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "999999", "quantity": 1, "price": 1000}, "code"),
        ({"code": CODE, "quantity": 0, "price": 1000}, "quantity"),
        ({"code": CODE, "quantity": 1, "price": -5}, "price"),
        ({"code": CODE, "quantity": 1, "price": 1000, "venue": "NYSE"}, "venue"),
        ({"code": CODE, "quantity": "x" * 5000, "price": 1000}, "quantity"),
        ({"code": CODE, "quantity": 1, "price": 1000, "side": "HOLD"}, "side"),
    ],
)
def test_bad_orders_are_refused_with_a_code_before_anything_is_sent(sandbox, factory, api_client, user, body, field):
    _link(user, sandbox)
    payload = {"side": "BUY", "order_type": "LIMIT", "client_order_id": uuid.uuid4().hex, **body}
    response = api_client.post("/api/brokerage/orders", payload, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_broker_order"
    assert field in response.json()["error"]["fields"]
    assert not BrokerOrder.objects.exists()


def test_paper_accounts_trade_krx_only_and_unlinked_accounts_cannot_place(sandbox, factory, api_client, user):
    Stock.objects.create(code=CODE, name="삼성전자", market="KOSPI", rank=1)
    assert _order(api_client, 70_000).json()["error"]["code"] == "not_linked"
    _link(user, sandbox)
    response = _order(api_client, 70_000, venue="NXT")
    assert response.status_code == 400 and "venue" in response.json()["error"]["fields"]


def test_another_users_order_is_not_found(sandbox, factory, api_client, user, django_user_model):
    from apps.trading.accounts.services import paper_account_ensure

    other = django_user_model.objects.create_user(username="other", password="x-very-long-9")
    _link(other, sandbox)
    foreign = BrokerOrder.objects.create(
        link=other.paper_accounts.get().broker_link, client_order_id="x", code=CODE, side="BUY", order_type="LIMIT",
        quantity=1, limit_price=1, env="paper", value_reserved=1,
    )  # fmt: skip
    paper_account_ensure(user=user)
    for oid in (str(foreign.pk), "abc", "9" * 40, "-1"):
        response = api_client.get(f"/api/brokerage/orders/{oid}")
        assert response.status_code == 404, oid
        assert response.json()["error"]["code"] == "order_not_found"


def test_the_broker_page_sends_a_real_order_only_from_its_confirmation_step(sandbox, factory, client, user):
    link = _link(user, sandbox, env="real", limit=10_000_000)
    client.force_login(user)
    price = _upper_limit(factory, link)
    form = {"code": CODE, "side": "BUY", "order_type": "LIMIT", "quantity": "1", "price": str(price),
            "venue": "KRX", "client_order_id": uuid.uuid4().hex}  # fmt: skip

    refused = client.post("/broker/order", form, follow=True).content.decode()
    assert "real_account_not_opted_in" in refused and not BrokerOrder.objects.exists()

    BrokerLink.objects.filter(pk=link.pk).update(real_opt_in=True)
    review = client.post("/broker/order", form).content.decode()
    assert 'id="broker-confirm"' in review and 'name="confirm" value="yes"' in review
    assert not BrokerOrder.objects.exists()  # reviewing sends nothing

    sent = client.post("/broker/order", {**form, "confirm": "yes"}, follow=True).content.decode()
    order = BrokerOrder.objects.get()
    assert (order.env, order.client_order_id, order.status != "REFUSED") == ("real", form["client_order_id"], True)
    assert "KIS 실전 · KRX" in sent
    page = client.get("/broker/").content.decode()
    assert f'data-order-id="{order.pk}"' in page and "1234****-01" in page and "RLBRK" not in page


def test_the_broker_page_without_a_link_says_so(client, user):
    client.force_login(user)
    assert "증권사 계좌와 연결되어 있지 않습니다" in client.get("/broker/").content.decode()
    response = client.post("/broker/order", {"code": "005930", "quantity": "abc"}, follow=True)
    assert response.status_code == 200 and not BrokerOrder.objects.exists()
