import pytest
from channels.testing import WebsocketCommunicator

from config.asgi import application


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_anonymous_websocket_is_refused():
    communicator = WebsocketCommunicator(application, "/ws/ping/", headers=[(b"origin", b"http://localhost")])

    connected, code = await communicator.connect()

    assert connected is False
    assert code == 4401


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_ping_pong_and_bad_message_error(async_db_cleanup):
    from channels.db import database_sync_to_async
    from django.contrib.auth import get_user_model

    from apps.core.consumers import PingConsumer

    user = await database_sync_to_async(get_user_model().objects.create_user)(username="ws", password="pw-12345678")
    # The consumer mounted directly with an authenticated scope (session auth is Django's own).

    communicator = WebsocketCommunicator(PingConsumer.as_asgi(), "/ws/ping/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected

    await communicator.send_json_to({"type": "ping", "id": 7})
    assert await communicator.receive_json_from() == {"type": "pong", "id": 7}

    await communicator.send_to(text_data="not json")
    reply = await communicator.receive_json_from()
    assert reply["type"] == "error" and reply["code"] == "bad_message"
    await communicator.disconnect()
