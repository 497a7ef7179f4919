"""Order updates reach their owner's browser after commit, and nobody else's."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from apps.trading.orders.consumers import OrdersConsumer
from tests.trading.orders.conftest import open_market

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@database_sync_to_async
def _setup():
    import datetime as dt

    from django.contrib.auth import get_user_model

    from apps.marketdata.models import DailyBar, Stock
    from apps.trading.accounts.services import paper_account_create

    owner = get_user_model().objects.create_user(username="owner", password="pw-123456789")
    other = get_user_model().objects.create_user(username="other", password="pw-123456789")
    account = paper_account_create(user=owner, name="ws")
    paper_account_create(user=other, name="ws")
    stock = Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    DailyBar.objects.create(
        stock=stock,
        date=dt.date(2026, 3, 2),
        open=70_000,
        high=70_000,
        low=70_000,
        close=70_000,
        volume=1,
        source="kis",
    )
    return owner, other, account


@database_sync_to_async
def _place(account):
    from apps.trading.orders.placement import order_place

    return order_place(
        account_id=account.pk, code="005930", side="BUY", order_type="LIMIT", quantity=3, limit_price=69_000,
        market=open_market(),
    )  # fmt: skip


async def _connect(user):
    communicator = WebsocketCommunicator(OrdersConsumer.as_asgi(), "/ws/orders/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_owner_receives_order_snapshots_and_others_do_not(clean_redis, async_db_cleanup):
    owner, other, account = await _setup()
    mine, theirs = await _connect(owner), await _connect(other)
    assert (await mine.receive_json_from())["accounts"] == [account.pk]
    await theirs.receive_json_from()

    order = await _place(account)

    update = await mine.receive_json_from(timeout=5)
    assert update["type"] == "order"
    assert (update["order"]["id"], update["order"]["status"], update["order"]["quantity"]) == (order.pk, "PENDING", 3)
    assert await theirs.receive_nothing(timeout=0.5)
    await mine.send_to(text_data="nonsense")
    assert (await mine.receive_json_from())["code"] == "bad_message"
    await mine.disconnect()
    await theirs.disconnect()


async def test_anonymous_is_refused():
    from django.contrib.auth.models import AnonymousUser

    communicator = WebsocketCommunicator(OrdersConsumer.as_asgi(), "/ws/orders/")
    communicator.scope["user"] = AnonymousUser()
    connected, code = await communicator.connect()
    assert (connected, code) == (False, 4401)
