"""MarketConsumer against the real Redis PubSub channel layer, fed through QuotePublisher."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator

from apps.marketdata.realtime import keys

from .conftest import make_book, make_tick

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

SAMSUNG, HYNIX, NAVER = "005930", "000660", "035420"


async def nothing_within(communicator: WebsocketCommunicator, seconds: float = 0.2) -> bool:
    return await communicator.receive_nothing(timeout=seconds)


async def subscribe(communicator: WebsocketCommunicator, *codes: str) -> dict:
    await communicator.send_json_to({"type": "subscribe", "codes": list(codes)})
    return await communicator.receive_json_from()


async def settle() -> None:
    """Lets the PubSub layer's SUBSCRIBE reach Redis before publishing (group_add returns before)."""
    await asyncio.sleep(0.1)


async def test_anonymous_connection_is_refused(realtime_redis):
    from config.asgi import application

    communicator = WebsocketCommunicator(application, "/ws/market/", headers=[(b"origin", b"http://localhost")])
    connected, code = await communicator.connect()
    assert (connected, code) == (False, 4401)


async def test_status_on_connect_is_unknown_without_a_feed(realtime_redis, connect):
    communicator = await connect(skip_status=False)
    assert await communicator.receive_json_from() == {"type": "status", "status": "unknown"}


async def test_status_on_connect_and_on_feed_status_change(realtime_redis, publisher, connect):
    await publisher.publish_status("connected", {"holder": "feed@test"})
    communicator = await connect(skip_status=False)
    assert await communicator.receive_json_from() == {"type": "status", "status": "connected"}
    await settle()

    await publisher.publish_status("reconnecting", {"holder": "feed@test", "reconnects": 1})

    assert await communicator.receive_json_from() == {"type": "status", "status": "reconnecting"}


async def test_subscriber_receives_only_its_stocks(realtime_redis, publisher, connect):
    samsung_viewer = await connect()
    hynix_viewer = await connect()
    assert await subscribe(samsung_viewer, SAMSUNG) == {"type": "subscribed", "codes": [SAMSUNG]}
    assert await subscribe(hynix_viewer, HYNIX) == {"type": "subscribed", "codes": [HYNIX]}
    await settle()

    sent = await publisher.publish_tick(make_tick(SAMSUNG, 1), now=0.0)
    await publisher.publish_tick(make_tick(HYNIX, 2, price=201_500), now=0.0)
    await publisher.publish_tick(make_tick(NAVER, 3, price=215_000), now=0.0)
    book = await publisher.publish_book(make_book(SAMSUNG, 4))

    assert await samsung_viewer.receive_json_from() == {"type": "quote", "quote": sent}
    assert await samsung_viewer.receive_json_from() == {"type": "book", "book": book}
    assert await nothing_within(samsung_viewer)
    hynix_quote = await hynix_viewer.receive_json_from()
    assert (hynix_quote["type"], hynix_quote["quote"]["code"], hynix_quote["quote"]["price"]) == (
        "quote",
        HYNIX,
        201_500,
    )
    assert await nothing_within(hynix_viewer)
    assert sent["price"] == 181_100 and sent["ask"] == 181_200 and sent["bid"] == 181_100
    assert set(sent) >= {"price", "change", "change_rate", "sign", "volume", "cum_volume", "ask", "bid", "time"}


async def test_initial_snapshots_on_subscribe(realtime_redis, publisher, connect):
    quote = await publisher.publish_tick(make_tick(SAMSUNG, 7), now=0.0)
    book = await publisher.publish_book(make_book(SAMSUNG, 8))
    communicator = await connect()

    assert await subscribe(communicator, SAMSUNG, HYNIX) == {"type": "subscribed", "codes": [HYNIX, SAMSUNG]}

    assert await communicator.receive_json_from() == {"type": "quote", "quote": quote}
    assert await communicator.receive_json_from() == {"type": "book", "book": book}
    assert await nothing_within(communicator)  # nothing stored for 000660: nothing invented


async def test_unsubscribe_stops_delivery(realtime_redis, publisher, connect):
    communicator = await connect()
    await subscribe(communicator, SAMSUNG, HYNIX)
    await settle()

    await communicator.send_json_to({"type": "unsubscribe", "codes": [SAMSUNG]})
    assert await communicator.receive_json_from() == {"type": "unsubscribed", "codes": [HYNIX]}
    await settle()
    await publisher.publish_tick(make_tick(SAMSUNG, 1), now=0.0)
    hynix = await publisher.publish_tick(make_tick(HYNIX, 2, price=201_000), now=0.0)

    assert await communicator.receive_json_from() == {"type": "quote", "quote": hynix}
    assert await nothing_within(communicator)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_message"),
        ("[1, 2]", "bad_message"),
        ('"subscribe"', "bad_message"),
        ('{"codes": ["005930"]}', "unknown_type"),
        ('{"type": "buy", "codes": ["005930"]}', "unknown_type"),
        ('{"type": "subscribe"}', "invalid_codes"),
        ('{"type": "subscribe", "codes": "005930"}', "invalid_codes"),
        ('{"type": "subscribe", "codes": []}', "invalid_codes"),
        ('{"type": "subscribe", "codes": ["5930"]}', "invalid_codes"),
        ('{"type": "subscribe", "codes": ["삼성전자"]}', "invalid_codes"),
        ('{"type": "subscribe", "codes": ["005930", 5930]}', "invalid_codes"),
        ('{"type": "subscribe", "codes": ["00593a"]}', "invalid_codes"),
        ('{"type": "unsubscribe", "codes": [null]}', "invalid_codes"),
        ('{"type": "subscribe", "codes": [' + ",".join(f'"{i:06d}"' for i in range(51)) + "]}", "too_many_codes"),
        ('{"type": "ping", "pad": "' + "x" * 9000 + '"}', "message_too_large"),
    ],
)
async def test_bad_message_gets_an_error_frame_and_the_connection_stays_usable(realtime_redis, connect, frame, code):
    communicator = await connect()

    await communicator.send_to(text_data=frame)
    error = await communicator.receive_json_from()

    assert error["type"] == "error" and error["code"] == code and error["message"]
    await communicator.send_json_to({"type": "ping", "id": 1})
    assert await communicator.receive_json_from() == {"type": "pong", "id": 1}
    await communicator.send_json_to({"type": "subscribe", "codes": [SAMSUNG]})
    assert await communicator.receive_json_from() == {"type": "subscribed", "codes": [SAMSUNG]}


async def test_binary_frame_and_too_many_codes_over_several_messages(realtime_redis, connect):
    communicator = await connect()
    await communicator.send_to(bytes_data=b"\x00\x01")
    assert (await communicator.receive_json_from())["code"] == "bad_message"

    await subscribe(communicator, *(f"{i:06d}" for i in range(40)))
    await communicator.send_json_to({"type": "subscribe", "codes": [f"{i:06d}" for i in range(40, 51)]})
    error = await communicator.receive_json_from()

    assert error["code"] == "too_many_codes"
    await communicator.send_json_to({"type": "subscribe", "codes": [f"{i:06d}" for i in range(40, 50)]})
    reply = await communicator.receive_json_from()
    assert reply["type"] == "subscribed" and len(reply["codes"]) == 50


async def test_invalid_codes_are_listed_and_nothing_is_subscribed(realtime_redis, connect):
    communicator = await connect()

    await communicator.send_json_to({"type": "subscribe", "codes": [SAMSUNG, "bad"]})

    assert await communicator.receive_json_from() == {
        "type": "error",
        "code": "invalid_codes",
        "message": "stock codes are 6 characters of 0-9 and A-Z",
        "codes": ["bad"],
    }
    await communicator.send_json_to({"type": "unsubscribe", "codes": [SAMSUNG]})
    assert await communicator.receive_json_from() == {"type": "unsubscribed", "codes": []}


async def test_slow_consumer_is_coalesced_while_a_fast_one_gets_every_tick_in_order(realtime_redis, publisher, connect):
    """A browser that does not read (its server-side send buffer of 4 frames is full) ends up with the
    newest snapshot, not 1,000 queued messages; a browser that keeps up receives all 1,000 in order."""
    slow = await connect(send_buffer=4)
    fast = await connect()
    await subscribe(slow, SAMSUNG)
    await subscribe(fast, SAMSUNG)
    await settle()
    count = 1000
    received: list[int] = []

    async def read_fast() -> None:
        while len(received) < count:
            message = await fast.receive_json_from(timeout=10)
            received.append(message["quote"]["cum_volume"])

    reader = asyncio.create_task(read_fast())
    last = None
    for seq in range(count):
        last = await publisher.publish_tick(make_tick(SAMSUNG, seq), now=0.0)
    await asyncio.wait_for(reader, timeout=15)

    assert received == [1_000_000 + 13 * seq for seq in range(count)]
    await asyncio.sleep(0.2)  # let the slow connection's handlers see the last group message
    frames = []
    while not slow.output_queue.empty():
        frames.append(slow.output_queue.get_nowait())
        await asyncio.sleep(0.01)  # the freed buffer slots let the sender write what is pending
    quotes = [f for f in frames if f["type"] == "websocket.send"]
    # The 4 buffered frames, the one the sender was blocked on, and the latest pending snapshot.
    assert len(quotes) == 4 + 1 + 1

    assert json.loads(quotes[-1]["text"]) == {"type": "quote", "quote": last}


async def test_viewer_registration_enters_and_leaves_the_demand_set(realtime_redis, connect):
    import time

    communicator = await connect()
    await subscribe(communicator, SAMSUNG, HYNIX)

    members = {m.decode(): s for m, s in realtime_redis.zrange(keys.VIEWERS_ZSET, 0, -1, withscores=True)}
    assert sorted(m.split("|")[0] for m in members) == [HYNIX, SAMSUNG]
    assert len({m.split("|")[1] for m in members}) == 1
    assert all(abs(score - time.time()) < 5 for score in members.values())

    await communicator.send_json_to({"type": "unsubscribe", "codes": [HYNIX]})
    await communicator.receive_json_from()
    assert [m.decode().split("|")[0] for m in realtime_redis.zrange(keys.VIEWERS_ZSET, 0, -1)] == [SAMSUNG]

    await communicator.disconnect()
    assert realtime_redis.zcard(keys.VIEWERS_ZSET) == 0


async def test_heartbeat_refreshes_viewer_scores(realtime_redis, connect, monkeypatch):
    from apps.marketdata import consumers

    monkeypatch.setattr(consumers.keys, "VIEWER_HEARTBEAT", 0.05)
    communicator = await connect()
    await subscribe(communicator, SAMSUNG)
    member = realtime_redis.zrange(keys.VIEWERS_ZSET, 0, -1)[0]
    first = realtime_redis.zscore(keys.VIEWERS_ZSET, member)

    await asyncio.sleep(0.3)

    assert realtime_redis.zscore(keys.VIEWERS_ZSET, member) > first
