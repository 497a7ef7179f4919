"""MarketConsumer against the real Redis PubSub channel layer, fed through QuotePublisher."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator

from apps.core import groups
from apps.live.realtime import keys

from .conftest import make_book, make_tick

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

SAMSUNG, HYNIX, NAVER = "005930", "000660", "035420"


async def nothing_within(communicator: WebsocketCommunicator, seconds: float = 0.2) -> bool:
    return await communicator.receive_nothing(timeout=seconds)


async def subscribe(communicator: WebsocketCommunicator, *codes: str) -> dict:
    await communicator.send_json_to({"type": "subscribe", "codes": list(codes)})
    return await communicator.receive_json_from()


async def batches(communicator: WebsocketCommunicator, quiet: float = 0.3) -> list[dict]:
    """Every frame until the connection stays quiet for ``quiet`` s; all must be batch frames."""
    frames = []
    while not await communicator.receive_nothing(timeout=quiet):
        frames.append(await communicator.receive_json_from())
    assert all(f["type"] == "batch" for f in frames), frames
    return frames


def latest(frames: list[dict]) -> dict:
    """The state a page holds after applying ``frames`` in order (seq must count 1, 2, ... without gaps)."""
    state: dict = {"quotes": {}, "books": {}}
    for frame in frames:
        state["quotes"].update(frame["quotes"])
        state["books"].update(frame["books"])
    return state


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

    samsung_frames = await batches(samsung_viewer)
    assert [f["seq"] for f in samsung_frames] == list(range(1, len(samsung_frames) + 1))
    assert latest(samsung_frames) == {"quotes": {SAMSUNG: sent}, "books": {SAMSUNG: book}}
    hynix_frames = await batches(hynix_viewer)
    assert len(hynix_frames) == 1 and hynix_frames[0]["seq"] == 1 and hynix_frames[0]["books"] == {}
    assert list(hynix_frames[0]["quotes"]) == [HYNIX] and hynix_frames[0]["quotes"][HYNIX]["price"] == 201_500
    assert sent["price"] == 181_100 and sent["ask"] == 181_200 and sent["bid"] == 181_100
    assert set(sent) >= {"price", "change", "change_rate", "sign", "volume", "cum_volume", "ask", "bid", "time"}


async def test_initial_snapshots_on_subscribe(realtime_redis, publisher, connect):
    quote = await publisher.publish_tick(make_tick(SAMSUNG, 7), now=0.0)
    book = await publisher.publish_book(make_book(SAMSUNG, 8))
    communicator = await connect()

    assert await subscribe(communicator, SAMSUNG, HYNIX) == {"type": "subscribed", "codes": [HYNIX, SAMSUNG]}

    # The stored snapshots, in one frame; nothing stored for 000660: nothing invented.
    assert await batches(communicator) == [
        {"type": "batch", "seq": 1, "quotes": {SAMSUNG: quote}, "books": {SAMSUNG: book}}
    ]


async def test_unsubscribe_stops_delivery(realtime_redis, publisher, connect):
    communicator = await connect()
    await subscribe(communicator, SAMSUNG, HYNIX)
    await settle()

    await communicator.send_json_to({"type": "unsubscribe", "codes": [SAMSUNG]})
    assert await communicator.receive_json_from() == {"type": "unsubscribed", "codes": [HYNIX]}
    await settle()
    await publisher.publish_tick(make_tick(SAMSUNG, 1), now=0.0)
    hynix = await publisher.publish_tick(make_tick(HYNIX, 2, price=201_000), now=0.0)

    assert latest(await batches(communicator)) == {"quotes": {HYNIX: hynix}, "books": {}}


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


async def test_slow_consumer_is_conflated_and_never_delays_a_fast_one(realtime_redis, publisher, connect):
    """A browser that does not read (its server-side send buffer of 4 frames is full) holds a handful of frames
    and then the newest snapshot, not 1,000 queued messages; a browser that keeps reading meanwhile gets
    frames numbered without gaps, in order, ending with the last tick."""
    slow = await connect(send_buffer=4)
    fast = await connect()
    await subscribe(slow, SAMSUNG)
    await subscribe(fast, SAMSUNG)
    await settle()
    count = 1000
    last_cum = 1_000_000 + 13 * (count - 1)
    frames: list[dict] = []

    async def read_fast() -> None:
        while not frames or frames[-1]["quotes"][SAMSUNG]["cum_volume"] < last_cum:
            frames.append(await fast.receive_json_from(timeout=10))

    reader = asyncio.create_task(read_fast())
    last = None
    for seq in range(count):
        last = await publisher.publish_tick(make_tick(SAMSUNG, seq), now=0.0)
    await asyncio.wait_for(reader, timeout=15)

    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    volumes = [f["quotes"][SAMSUNG]["cum_volume"] for f in frames]
    assert volumes == sorted(volumes) and frames[-1]["quotes"] == {SAMSUNG: last}
    await asyncio.sleep(0.2)  # let the slow connection's outbox see the last batch
    sent = []
    while not slow.output_queue.empty():
        sent.append(slow.output_queue.get_nowait())
        await asyncio.sleep(0.05)  # the freed buffer slots let the sender write what is pending
    slow_frames = [json.loads(f["text"]) for f in sent if f["type"] == "websocket.send"]
    # The 4 buffered frames, the one the sender was blocked on, and one with the latest snapshot.
    assert len(slow_frames) == 4 + 1 + 1
    assert [f["seq"] for f in slow_frames] == [1, 2, 3, 4, 5, 6]
    assert slow_frames[-1]["quotes"] == {SAMSUNG: last}


async def test_snapshots_arriving_during_a_send_are_conflated_into_one_frame(
    realtime_redis, publisher, connect, settings
):
    """At 2 frames/s the first tick goes out at once; everything of the next half second (three quotes of
    one stock, one of another, a book) becomes ONE frame with the latest snapshot of each, counted as
    conflated drops."""
    from prometheus_client import REGISTRY

    from apps.live.realtime import metrics

    settings.MARKET_WS_MAX_FPS = 2
    communicator = await connect()
    await subscribe(communicator, SAMSUNG, HYNIX)
    await settle()
    metrics.TALLY.flush()
    conflated_before = REGISTRY.get_sample_value("hoga_realtime_conflated_snapshots_total") or 0.0
    frames_before = REGISTRY.get_sample_value("hoga_realtime_frames_sent_total") or 0.0

    first = await publisher.publish_tick(make_tick(SAMSUNG, 1), now=0.0)
    assert await communicator.receive_json_from() == {
        "type": "batch", "seq": 1, "quotes": {SAMSUNG: first}, "books": {}
    }  # fmt: skip
    await publisher.publish_tick(make_tick(SAMSUNG, 2), now=0.0)
    await publisher.publish_tick(make_tick(SAMSUNG, 3), now=0.0)
    hynix = await publisher.publish_tick(make_tick(HYNIX, 4, price=201_000), now=0.0)
    samsung = await publisher.publish_tick(make_tick(SAMSUNG, 5), now=0.0)
    book = await publisher.publish_book(make_book(SAMSUNG, 6))

    assert await batches(communicator, quiet=0.8) == [
        {"type": "batch", "seq": 2, "quotes": {SAMSUNG: samsung, HYNIX: hynix}, "books": {SAMSUNG: book}}
    ]
    metrics.TALLY.flush()  # the hub does it every second
    conflated = REGISTRY.get_sample_value("hoga_realtime_conflated_snapshots_total") - conflated_before
    assert conflated == 2  # SAMSUNG seq 2 and 3 never left the process
    assert REGISTRY.get_sample_value("hoga_realtime_frames_sent_total") - frames_before == 2
    assert REGISTRY.get_sample_value("hoga_realtime_snapshots_per_frame_bucket", {"le": "3.0"}) >= 1


async def test_frame_rate_is_capped_per_connection(realtime_redis, publisher, connect, settings):
    """100 ticks/s for a second against a cap of 10 frames/s: at most 10 frames a second (plus the first),
    and the last frame holds the last tick."""
    settings.MARKET_WS_MAX_FPS = 10
    communicator = await connect()
    await subscribe(communicator, SAMSUNG)
    await settle()
    began = asyncio.get_running_loop().time()
    last = None
    for seq in range(100):
        last = await publisher.publish_tick(make_tick(SAMSUNG, seq), now=0.0)
        await asyncio.sleep(0.01)
    elapsed = asyncio.get_running_loop().time() - began

    frames = await batches(communicator)
    assert 2 <= len(frames) <= int(elapsed * 10) + 2
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert frames[-1]["quotes"] == {SAMSUNG: last}


async def test_the_process_joins_each_bucket_group_once_whatever_the_connections(realtime_redis, publisher, connect):
    """Three browsers on the same stock: one subscription of this process to the stock's bucket channel in
    Redis (the hub's), one group message per publish, and every browser gets the tick; when the last browser
    leaves, the process leaves the group."""
    from channels.layers import get_channel_layer

    from apps.live.realtime.hub import get_hub

    layer = get_channel_layer()
    bucket_channel = layer._get_group_channel_name(groups.quote_group(SAMSUNG))
    viewers = [await connect() for _ in range(3)]
    for viewer in viewers:
        await subscribe(viewer, SAMSUNG)
    await settle()

    hub = get_hub(layer)
    assert hub.joins == groups.QUOTE_BUCKETS + 1  # every bucket group and the status group, once
    assert dict(realtime_redis.pubsub_numsub(bucket_channel)) == {bucket_channel.encode(): 1}
    sent = await publisher.publish_tick(make_tick(SAMSUNG, 1), now=0.0)
    assert publisher.batches == 1
    for viewer in viewers:
        assert latest(await batches(viewer)) == {"quotes": {SAMSUNG: sent}, "books": {}}

    for viewer in viewers:
        await viewer.disconnect()
    await settle()
    assert not hub.running
    assert dict(realtime_redis.pubsub_numsub(bucket_channel)) == {bucket_channel.encode(): 0}


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
    from apps.live import consumers

    monkeypatch.setattr(consumers.keys, "VIEWER_HEARTBEAT", 0.05)
    communicator = await connect()
    await subscribe(communicator, SAMSUNG)
    member = realtime_redis.zrange(keys.VIEWERS_ZSET, 0, -1)[0]
    first = realtime_redis.zscore(keys.VIEWERS_ZSET, member)

    await asyncio.sleep(0.3)

    assert realtime_redis.zscore(keys.VIEWERS_ZSET, member) > first
