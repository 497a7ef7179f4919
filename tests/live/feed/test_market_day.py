"""The market day through the whole live path: the sandbox replays a VI episode, an after-hours call and NXT prints;
the KIS holder (real mode, over real sockets) subscribes the TRs of each phase; the fill stream and the quote state
carry venue and phase."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
from collections.abc import AsyncIterator

import pytest
from channels.layers import get_channel_layer

from apps.brokers.base import KST
from apps.brokers.kis.config import KisConfig
from apps.core.krx import phases as P
from apps.live.feed.holder import FeedHolder, FeedSettings
from apps.live.realtime import keys
from apps.live.realtime.fillpath import FillTickReader

from .test_holder import eventually

FAST = FeedSettings(status_interval=0.5, demand_interval=0.2, stall_timeout=3.0, backoff_base=0.05, backoff_max=0.4)


class SandboxMarketClock:
    """Market open, on the sandbox's replayed clock (``offset``: what the holder's off-hours window reads)."""

    def __init__(self, box) -> None:
        self.box = box
        self.trading_date = box.server.core.market.date

    @property
    def offset(self) -> dt.timedelta:
        return self.box.server.core.clock.now_dt() - dt.datetime.now(KST)

    async def __call__(self) -> bool:
        return True


@contextlib.asynccontextmanager
async def running(box, config: KisConfig, aredis, settings: FeedSettings) -> AsyncIterator[FeedHolder]:
    async def nothing() -> list[str]:
        return []

    holder = FeedHolder(config, redis=aredis, channel_layer=get_channel_layer(), settings=settings, watchlist=nothing,
                        market_open=SandboxMarketClock(box), bar_store=None)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(holder.run(stop))
    try:
        yield holder
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await get_channel_layer().flush()


def at(ms: int) -> str:
    s = ms // 1000
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def entries(redis_client) -> list[dict[str, str]]:
    rows = redis_client.xrange(keys.FILL_TICKS_STREAM)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _id, fields in rows]


@pytest.mark.asyncio
async def test_vi_after_hours_and_nxt_prints_reach_the_fill_stream_with_venue_and_phase(
    feedbox, feed_admin, aredis, redis_client, shared_keys
) -> None:
    core = feedbox.server.core
    code = next(c for c in core.market.tapes if c in core.days.nxt_eligible)
    day = core.days.day(code)
    config = KisConfig.for_sandbox(env="real", rest_port=feedbox.ports.real_rest, ws_port=feedbox.ports.real_ws,
                                   rate_limit=18.0, redis_prefix="hoga:test:feed:market-day")  # fmt: skip
    settings = dataclasses.replace(FAST, nxt_eligible=frozenset({code}), nxt_registrations=2)
    # Generate the replayed day first (on the sandbox's loop): a long catch-up after a clock jump resumes from "now"
    # and would skip the prints this test waits for (apps.sandbox.ws.CATCH_UP_MAX_HOLD_S).
    feedbox.call(lambda: [t.prepare(len(t.bars) - 1) for t in core.market.tapes.values()], timeout=120)
    feed_admin.post("/sandbox/clock", json={"speed": 60})
    try:
        resp = feed_admin.post("/sandbox/vi", json={"code": code, "time": "11:00:00", "kind": "dynamic"})
        assert resp.status_code == 200, resp.text
        episode = next(e for e in resp.json()["episodes"] if e["forced"])
        assert feed_admin.post("/sandbox/clock", json={"time": "10:59:40"}).status_code == 200
        await aredis.sadd(keys.ORDERS_SET, code)
        async with running(feedbox, config, aredis, settings) as holder:
            await eventually(lambda: holder.status == "connected", 10, "connected")
            await eventually(lambda: any(e["phase"] == P.VI_AUCTION for e in entries(redis_client)), 20, "VI print")
            await eventually(
                lambda: any(e["phase"] == P.CONTINUOUS and e["at"] > "2" and e["venue"] == "KRX"
                            and dt.datetime.fromisoformat(e["at"]).time() > dt.time(11, 2, 30)
                            for e in entries(redis_client)), 20, "continuous again")  # fmt: skip
            await eventually(
                lambda: any(e["venue"] == "NXT" and e["phase"] == P.CONTINUOUS for e in entries(redis_client)),
                20,
                "an NXT main-market print",
            )
            rows = entries(redis_client)
            start = dt.datetime.fromisoformat(rows[0]["at"]).replace(hour=0, minute=0, second=0)
            inside = [
                e for e in rows
                if e["venue"] == "KRX" and e["phase"] == P.CONTINUOUS
                and episode["start_ms"] // 1000 < (dt.datetime.fromisoformat(e["at"]) - start).total_seconds()
                < episode["end_ms"] // 1000
            ]  # fmt: skip
            assert inside == []  # a VI pauses continuous prints
            (vi,) = [e for e in rows if e["phase"] == P.VI_AUCTION]
            assert vi["venue"] == "KRX" and int(vi["price"]) == episode["price"]
            assert int(vi["volume"]) == episode["volume"]
            assert any(e["venue"] == "NXT" and e["phase"] == P.CONTINUOUS for e in rows)  # NXT main market
            # The quote state showed the VI while it ran and clears it with the VI's print.
            state = json.loads(await aredis.hget(keys.STATES_HASH, code))
            assert state["vi"] is None and state["phase"] == P.CONTINUOUS

            # After the close: the holder moves the stock to the off-hours TRs; an after-hours call reaches the
            # fill stream as a single price of phase after_hours_single.
            call = next(p for p in day.krx_extra() if p.phase == P.AFTER_HOURS_SINGLE)
            redis_client.delete(keys.FILL_TICKS_STREAM)
            # Frozen until the holder has registered the off-hours TRs (a loaded machine may take seconds): the call
            # then prints to a registered stock.
            frozen = {"time": at(call.t_ms - 150_000), "speed": 0.001}
            assert feed_admin.post("/sandbox/clock", json=frozen).status_code == 200
            await eventually(lambda: ("H0STOUP0", code) in holder.session.registrations, 10, "off-hours TRs registered")
            assert feed_admin.post("/sandbox/clock", json={"speed": 60}).status_code == 200
            await eventually(
                lambda: any(e["phase"] == P.AFTER_HOURS_SINGLE for e in entries(redis_client)), 20, "after-hours call"
            )
            await eventually(
                lambda: any(e["venue"] == "NXT" and e["phase"] == P.NXT_AFTER for e in entries(redis_client)),
                30,
                "an NXT after-market print",
            )
            rows = entries(redis_client)
            (ah,) = [e for e in rows if e["phase"] == P.AFTER_HOURS_SINGLE][:1]
            assert ah["venue"] == "KRX" and int(ah["price"]) == call.price and int(ah["volume"]) == call.volume
            assert dt.datetime.fromisoformat(ah["at"]).time() == dt.time(
                call.t_ms // 3_600_000, call.t_ms // 60_000 % 60
            )
            reader = FillTickReader(redis_client, group="market-day-test", consumer="t")
            reader.ensure_group(start="0")
            ticks = reader.read(count=1000, block_ms=100)
            assert {(t.venue, t.phase) for t in ticks} >= {("KRX", P.AFTER_HOURS_SINGLE), ("NXT", P.NXT_AFTER)}
    finally:
        feed_admin.post("/sandbox/clock", json={"speed": 120, "time": "10:00:00"})
        await aredis.srem(keys.ORDERS_SET, code)


def test_slot_budget_keeps_room_for_nxt_trades_of_eligible_order_codes_on_real_kis_only(redis_client) -> None:
    settings = dataclasses.replace(FAST, nxt_eligible=frozenset({"005930", "000660", "035420"}), nxt_registrations=5)

    def holder(env: str, **over) -> FeedHolder:
        config = KisConfig.for_sandbox(env=env, rest_port=1, ws_port=1, redis_prefix="hoga:test:feed:budget")
        return FeedHolder(config, redis=redis_client, channel_layer=None,
                          settings=dataclasses.replace(settings, **over), bar_store=None)  # fmt: skip

    real = holder("real")
    assert real.per_connection == 20  # 41 registrations, 2 per stock
    assert real._budget(frozenset()) == (20, frozenset())
    assert real._budget(frozenset({"005930", "111111"})) == (20, frozenset({"005930"}))  # 40 + 1 NXT = 41
    assert real._budget(frozenset({"005930", "000660", "035420"})) == (19, frozenset({"005930", "000660", "035420"}))
    assert holder("real", nxt_registrations=0)._budget(frozenset({"005930"})) == (20, frozenset())
    assert holder("paper")._budget(frozenset({"005930"})) == (20, frozenset())  # KIS paper has no NXT feeds
    assert holder("paper", nxt_in_paper=True)._budget(frozenset({"005930"})) == (20, frozenset({"005930"}))
    assert real.kis_trs("005930", {"005930"})[-1] == "H0NXCNT0" and len(real.kis_trs("000660")) == 2
