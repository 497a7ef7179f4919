"""QuotePublisher.publish: one Redis round trip and one group message per quote bucket per batch."""

from __future__ import annotations

import asyncio
import json

import pytest

from apps.core import groups
from apps.live.realtime import keys

from .conftest import make_book, make_tick

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def codes_in_two_buckets() -> tuple[str, str, str]:
    """Two codes sharing a bucket and one in another bucket (from the universe-shaped 000000-000099)."""
    by_bucket: dict[int, list[str]] = {}
    for i in range(100):
        code = f"{i:06d}"
        by_bucket.setdefault(groups.quote_bucket(code), []).append(code)
    pair = next(codes for codes in by_bucket.values() if len(codes) >= 2)
    other = next(codes[0] for bucket, codes in by_bucket.items() if bucket != groups.quote_bucket(pair[0]))
    return pair[0], pair[1], other


async def test_a_batch_is_one_message_per_bucket_with_the_latest_snapshot_of_each_stock(realtime_redis, publisher):
    from channels.layers import get_channel_layer

    a, b, c = codes_in_two_buckets()
    layer = get_channel_layer()
    channel = await layer.new_channel()
    for bucket in range(groups.QUOTE_BUCKETS):
        await layer.group_add(groups.bucket_group(bucket), channel)
    await asyncio.sleep(0.1)  # the SUBSCRIBEs reach Redis
    realtime_redis.sadd(keys.ORDERS_SET, a)  # a has open orders: every print of it enters the fill stream
    try:
        events = [make_tick(a, 1), make_tick(b, 2), make_book(a, 3), make_tick(a, 4), make_tick(c, 5)]
        snapshots = await publisher.publish(events, now=10.0)  # past the fill codes' refresh interval

        messages = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(2)]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.receive(channel), 0.3)
    finally:
        for bucket in range(groups.QUOTE_BUCKETS):
            await layer.group_discard(groups.bucket_group(bucket), channel)

    assert [s["code"] for s in snapshots] == [a, b, a, a, c]
    assert publisher.published == 5 and publisher.batches == 2
    by_codes = {tuple(sorted(m["quotes"])): m for m in messages}
    shared = by_codes[tuple(sorted((a, b)))]
    assert shared["type"] == "quote.batch" and isinstance(shared["at"], float)
    # Only the latest quote of a; every payload is the JSON text of a snapshot.
    assert {code: json.loads(text) for code, text in shared["quotes"].items()} == {a: snapshots[3], b: snapshots[1]}
    assert {code: json.loads(text) for code, text in shared["books"].items()} == {a: snapshots[2]}
    alone = by_codes[(c,)]
    assert json.loads(alone["quotes"][c]) == snapshots[4] and alone["books"] == {}
    # Redis holds the latest snapshots; the fill stream has both prints of a, in order, and nothing else.
    assert json.loads(realtime_redis.hget(keys.QUOTES_HASH, a)) == snapshots[3]
    assert json.loads(realtime_redis.hget(keys.BOOKS_HASH, a)) == snapshots[2]
    fills = realtime_redis.xrange(keys.FILL_TICKS_STREAM)
    assert [(f[b"code"].decode(), int(f[b"cum_volume"])) for _, f in fills] == [
        (a, snapshots[0]["cum_volume"]),
        (a, snapshots[3]["cum_volume"]),
    ]


async def test_an_empty_batch_sends_nothing_and_a_foreign_event_is_refused(realtime_redis, publisher):
    assert await publisher.publish([], now=0.0) == []
    assert publisher.batches == 0 and realtime_redis.hlen(keys.QUOTES_HASH) == 0
    with pytest.raises(TypeError):
        await publisher.publish([make_tick("005930", 1), {"code": "005930"}], now=0.0)
    assert realtime_redis.hlen(keys.QUOTES_HASH) == 0  # nothing of a refused batch was stored


async def test_market_state_rides_on_the_quote_snapshot_and_fill_entries_carry_venue_and_phase(
    realtime_redis, publisher
):
    import dataclasses
    import datetime as dt

    from apps.brokers.base import ExpectedTrade, MarketStatus
    from apps.core.krx import phases as P
    from apps.live.quotes import market_state, market_states, quote_snapshot

    code = "005930"
    realtime_redis.sadd(keys.ORDERS_SET, code)
    # Before the stock's first print: an expected price is only in the state hash (no quote to merge it into).
    first = make_tick(code, 1)
    expected = ExpectedTrade(code, first.at, 181_500, 3_000, P.OPENING_AUCTION, first.received_at)
    await publisher.publish([expected], now=0.0)
    assert quote_snapshot(code) is None
    state = market_state(code)
    assert state["expected"] == {"price": 181_500, "quantity": 3_000, "phase": P.OPENING_AUCTION}
    assert state["phase"] == P.OPENING_AUCTION
    # The opening print ends the call; continuous prints follow.
    opening = dataclasses.replace(first, phase=P.OPENING_AUCTION, vi_reference=181_500)
    await publisher.publish([opening, make_tick(code, 2)], now=1.0)
    snap = quote_snapshot(code)
    assert snap["expected"] is None and snap["phase"] == P.CONTINUOUS and snap["venue"] == "KRX"
    assert snap["vi"] is None and snap["halted"] is False
    # A VI starts (H0STMKO0), its call's expected price builds, then its single print ends it.
    start = MarketStatus(code, first.at + dt.timedelta(minutes=1), P.VI_AUCTION, False, "dynamic", first.received_at)
    building = ExpectedTrade(code, start.at, 183_000, 700, P.VI_AUCTION, first.received_at)
    await publisher.publish([start, building], now=2.0)
    snap = quote_snapshot(code)
    assert snap["phase"] == P.VI_AUCTION and snap["vi"]["kind"] == "dynamic"
    assert snap["vi"]["reference"] == make_tick(code, 2).price  # a dynamic VI's reference: the last trade
    assert dt.datetime.fromisoformat(snap["vi"]["until"]) == start.at + dt.timedelta(minutes=2)
    assert snap["expected"] == {"price": 183_000, "quantity": 700, "phase": P.VI_AUCTION}
    assert market_states([code, "000660"]) == {code: {k: snap[k] for k in market_state(code)}}
    vi_print = dataclasses.replace(make_tick(code, 3, price=183_000), phase=P.VI_AUCTION)
    nxt_print = dataclasses.replace(make_tick(code, 4, price=182_900), venue=P.NXT, cum_volume=5_000)
    await publisher.publish([vi_print, nxt_print], now=3.0)
    snap = quote_snapshot(code)
    assert snap["vi"] is None and snap["expected"] is None and snap["phase"] == P.CONTINUOUS
    assert snap["price"] == 183_000  # an NXT print does not move the KRX quote ...
    assert snap["nxt"]["price"] == 182_900 and snap["nxt"]["cum_volume"] == 5_000  # ... it is kept apart
    entries = [
        {k.decode(): v.decode() for k, v in f.items()} for _i, f in realtime_redis.xrange(keys.FILL_TICKS_STREAM)
    ]
    assert [(e["venue"], e["phase"], e["price"]) for e in entries] == [
        ("KRX", P.OPENING_AUCTION, str(first.price)),
        ("KRX", P.CONTINUOUS, str(make_tick(code, 2).price)),
        ("KRX", P.VI_AUCTION, "183000"),
        ("NXT", P.CONTINUOUS, "182900"),
    ]
    # A VI seen only through its call's book (no H0STMKO0 slot): kind inferred from the expected price.
    later = first.at + dt.timedelta(minutes=5)
    vi_book = dataclasses.replace(make_book(code, 9), at=later, expected_price=183_500, expected_qty=90,
                                  phase=P.VI_AUCTION, session="C")  # fmt: skip
    await publisher.publish([vi_book], now=3.5)
    snap = quote_snapshot(code)
    assert snap["vi"]["kind"] == "dynamic" and snap["vi"]["reference"] == 183_000 and snap["phase"] == P.VI_AUCTION
    static_book = dataclasses.replace(vi_book, expected_price=201_000)  # >= 10 % from the static reference
    publisher._states[code]["vi"] = None
    await publisher.publish([static_book], now=3.6)
    assert quote_snapshot(code)["vi"] == {
        "kind": "static",
        "reference": 181_500,
        "until": (later + dt.timedelta(minutes=2)).isoformat(),
    }
    # A book older than the last print does not bring a finished call back; the next print clears the VI.
    stale = dataclasses.replace(vi_book, at=later - dt.timedelta(seconds=30))
    await publisher.publish([dataclasses.replace(make_tick(code, 5), at=later)], now=3.7)
    await publisher.publish([stale], now=3.8)
    snap = quote_snapshot(code)
    assert snap["vi"] is None and snap["expected"] is None and snap["phase"] == P.CONTINUOUS
    # A book far older than the last print means the market clock moved back (a replay restarted): it is taken.
    rewound = dataclasses.replace(vi_book, at=first.at - dt.timedelta(minutes=10),
                                  phase=P.OPENING_AUCTION, session="B")  # fmt: skip
    await publisher.publish([rewound], now=3.9)
    assert quote_snapshot(code)["expected"] == {"price": 183_500, "quantity": 90, "phase": P.OPENING_AUCTION}
    # A halt (TRHT_YN / H0STMKO0) shows on the snapshot.
    await publisher.publish([MarketStatus(code, start.at, P.CONTINUOUS, True, "", first.received_at)], now=4.0)
    assert quote_snapshot(code)["halted"] is True
