"""Finding 3: bad input answered 500. Attacks: quantities beyond the columns, a JSON body nested 5,000 deep,
NUL and newlines in query parameters and bodies, ids beyond bigint, and malformed, binary, deep or oversized
frames on every WebSocket. Each must get a coded 4xx (or an error frame on an open socket) and change nothing."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from apps.trading.orders.models import Order

from .conftest import api_for

ORDERS = "/api/paper-trading/orders"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("side", "quantity"), [("BUY", 10**16), ("SELL", 10**19), ("BUY", 2**63), ("SELL", -(2**63) - 1)]
)
def test_quantities_beyond_the_columns_are_a_coded_400(attacker, samsung, open_clock, side, quantity):
    response = api_for(attacker).post(
        ORDERS, {"code": "005930", "side": side, "order_type": "LIMIT", "quantity": quantity, "limit_price": 69_900},
        format="json",
    )  # fmt: skip

    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_quantity")
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_a_price_beyond_the_columns_is_a_coded_400(attacker, samsung, open_clock):
    response = api_for(attacker).post(
        ORDERS, {"code": "005930", "side": "BUY", "order_type": "LIMIT", "quantity": 1, "limit_price": 10**30},
        format="json",
    )  # fmt: skip

    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_price")


@pytest.mark.django_db
@pytest.mark.parametrize("path", [ORDERS, "/api/paper-trading/accounts", "/api/conditions/1"])
def test_a_json_body_nested_5000_deep_is_refused_before_parsing(attacker, path):
    client = api_for(attacker)
    body = "[" * 5000 + "]" * 5000
    method = client.patch if path.startswith("/api/conditions/") else client.post

    response = method(path, body, content_type="application/json")

    assert (response.status_code, response.json()["error"]["code"]) == (400, "json_too_deep")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/api/marketdata/bars?code=%00&from=2026-02-20&to=2026-02-20",
        "/api/marketdata/bars?code=0059%0030&from=2026-02-20&to=2026-02-20",
        "/api/paper-trading/orders?code=%00",
        "/api/paper-trading/executions?code=005930%0A",
        "/api/conditions/events?code=%00",
        "/api/marketdata/quotes?codes=005930,%00",
        "/stocks/%00/",
    ],
)
def test_nul_and_control_characters_in_queries_are_a_coded_400(attacker, url):
    client = api_for(attacker)

    response = client.get(url)

    assert response.status_code == 400
    if url.startswith("/api/"):
        assert response.json()["error"]["code"] == "invalid_characters"


@pytest.mark.django_db
def test_nul_in_a_json_string_or_a_form_field_is_a_coded_400(attacker, samsung, open_clock):
    client = api_for(attacker)

    json_body = client.post(
        ORDERS, {"code": "005930\u0000", "side": "BUY", "order_type": "MARKET", "quantity": 1}, format="json"
    )
    form_body = client.post(ORDERS, {"code": "005930\x00", "side": "BUY", "order_type": "MARKET", "quantity": "1"})
    client_id = client.post(
        ORDERS, {"code": "005930", "side": "BUY", "order_type": "MARKET", "quantity": 1, "client_order_id": "a\x00b"},
        format="json",
    )  # fmt: skip

    assert [r.json()["error"]["code"] for r in (json_body, form_body, client_id)] == ["invalid_characters"] * 3
    assert Order.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        f"/api/paper-trading/orders/{10**30}",
        f"/api/paper-trading/accounts/{2**63}/reset",
        f"/api/conditions/{10**25}",
        f"/api/conditions/{10**25}/members",
        f"/api/paper-trading/balance?account={10**30}",
        f"/api/conditions/events?condition={10**30}",
    ],
)
def test_ids_beyond_bigint_are_not_found_or_invalid_never_500(attacker, path):
    client = api_for(attacker)
    response = client.post(path) if path.endswith("/reset") else client.get(path)

    assert response.status_code in (400, 404)
    assert response.json()["error"]["code"]


@pytest.mark.django_db
def test_pagination_has_a_ceiling_and_a_bounded_offset(attacker, settings):
    settings.API_PAGE_MAX_LIMIT = 3
    client = api_for(attacker)

    response = client.get("/api/paper-trading/orders", {"limit": 10**9, "offset": 10**30})

    assert response.status_code == 200 and response.json()["results"] == []
    assert "limit=3" in (response.json()["previous"] or "limit=3")


def _consumers():
    from apps.conditions.consumers import ConditionsConsumer, NotificationsConsumer
    from apps.core.consumers import PingConsumer
    from apps.live.consumers import MarketConsumer
    from apps.trading.orders.consumers import OrdersConsumer

    return [PingConsumer, OrdersConsumer, NotificationsConsumer, ConditionsConsumer, MarketConsumer]


FRAMES = [
    ("[" * 4000 + "]" * 4000, "json_too_deep"),  # 8,000 characters: under the size limit, 4,000 deep
    ('{"type": "ping", "pad": ' + "[" * 20 + "]" * 20 + "}", "json_too_deep"),
    ("not json", "bad_message"),
    ('{"type": "ping", "id": "\\u0000"}', "invalid_characters"),
    ("x" * 20_000, "message_too_large"),
]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("consumer_index", range(5))
async def test_every_websocket_answers_bad_frames_with_an_error_and_stays_open(
    consumer_index, clean_redis, async_db_cleanup
):
    from channels.db import database_sync_to_async
    from django.contrib.auth import get_user_model

    consumer = _consumers()[consumer_index]
    user = await database_sync_to_async(get_user_model().objects.create_user)(username="frames", password="pw-12345678")
    socket = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    socket.scope["user"] = user
    assert (await socket.connect())[0]
    while not await socket.receive_nothing(timeout=0.2):  # the greeting (status / subscribed), if any
        await socket.receive_from()

    for frame, code in FRAMES:
        await socket.send_to(text_data=frame)
        reply = await socket.receive_json_from()
        assert (reply["type"], reply["code"]) == ("error", code), frame[:40]
    await socket.send_to(bytes_data=b"\x00\xff")
    assert (await socket.receive_json_from())["code"] == "bad_message"

    await socket.send_json_to({"type": "ping", "id": 1})
    assert await socket.receive_json_from() == {"type": "pong", "id": 1}  # still open and usable
    await socket.disconnect()
