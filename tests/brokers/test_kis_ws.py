"""The KIS real-time client (apps.brokers.kis.ws / .realtime).

Parsing is checked against the reference layouts and real KIS frames; the connection and the session run
against an in-process sandbox broker over real sockets, with a short PINGPONG interval and timeout so that
keep-alive, drops and stalls happen within seconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from apps.brokers.base import KST, BrokerProtocolError, OrderBook, PriceSign, Tick, TradeSide
from apps.brokers.kis import realtime
from apps.brokers.kis.client import AsyncKisClient
from apps.brokers.kis.config import KisConfig
from apps.brokers.kis.realtime import (
    TR_BOOK,
    TR_TRADES,
    Ack,
    EncryptedFrame,
    PingPong,
    ack_error,
    parse_control,
    parse_frame,
)
from apps.brokers.kis.ws import KisRealtimeConnection, KisRealtimeSession, endpoint
from apps.brokers.tokens import MemoryTokenStore
from apps.brokers.websocket import DropOldestQueue, SubscriptionLimitExceeded
from apps.sandbox.config import AppCredential
from apps.sandbox.server import SandboxThread

from .conftest import ADMIN, sandbox_config

REAL_FRAMES = Path("/work/shared/data/ticks/kis_websocket_real_frames_005930.txt")
RECEIVED = dt.datetime(2026, 2, 20, 10, 0, tzinfo=KST)
PINGPONG_INTERVAL = 0.3
PINGPONG_TIMEOUT = 1.5

# --- pure parsing ----------------------------------------------------------------------------------------------


def test_field_maps_match_the_reference_and_the_sandbox() -> None:
    from apps.sandbox import layouts

    assert len(realtime.H0STCNT0_FIELDS) == 46 and len(set(realtime.H0STCNT0_FIELDS)) == 46
    assert len(realtime.H0STASP0_FIELDS) == 59 and len(set(realtime.H0STASP0_FIELDS)) == 59
    # kis-api.md §6.5 / §6.6 positions used by the parser
    cnt = realtime.H0STCNT0_FIELDS
    assert (cnt[2], cnt[12], cnt[13], cnt[21], cnt[33], cnt[43], cnt[45]) == (
        "STCK_PRPR",
        "CNTG_VOL",
        "ACML_VOL",
        "CCLD_DVSN",
        "BSOP_DATE",
        "HOUR_CLS_CODE",
        "VI_STND_PRC",
    )
    asp = realtime.H0STASP0_FIELDS
    assert (asp[3], asp[12], asp[13], asp[23], asp[33], asp[43], asp[53], asp[58]) == (
        "ASKP1",
        "ASKP10",
        "BIDP1",
        "ASKP_RSQN1",
        "BIDP_RSQN1",
        "TOTAL_ASKP_RSQN",
        "ACML_VOL",
        "STCK_DEAL_CLS_CODE",
    )
    assert realtime.H0STCNT0_FIELDS == layouts.H0STCNT0_FIELDS
    assert realtime.H0STASP0_FIELDS == layouts.H0STASP0_FIELDS


def _real_frames() -> list[str]:
    return [line for line in REAL_FRAMES.read_text().splitlines() if line.startswith("0|")]


def test_real_kis_frames_parse_to_the_recorded_values() -> None:
    frames = _real_frames()
    assert len(frames) == 4
    first = parse_frame(frames[0], received_at=RECEIVED)
    assert len(first) == 1 and isinstance(first[0], Tick)
    tick = first[0]
    assert tick.code == "005930"
    assert tick.at == dt.datetime(2023, 3, 24, 11, 26, 16, tzinfo=KST)
    assert (tick.price, tick.volume, tick.cum_volume, tick.cum_value) == (62700, 125, 9694968, 607878273600)
    assert (tick.change, tick.sign, tick.change_rate) == (400, PriceSign.UP, Decimal("0.64"))
    assert (tick.open, tick.high, tick.low, tick.ask1, tick.bid1) == (62700, 63000, 62300, 62700, 62600)
    assert (tick.side, tick.session, tick.received_at) == (TradeSide.BUY, "0", RECEIVED)

    down = parse_frame(frames[1], received_at=RECEIVED)[0]
    assert isinstance(down, Tick)
    assert (down.price, down.change, down.sign, down.change_rate) == (250500, -19500, PriceSign.DOWN, Decimal("-7.22"))
    assert down.at == dt.datetime(2026, 7, 24, 11, 52, 14, tzinfo=KST) and down.volume == 2

    book = parse_frame(frames[2], received_at=RECEIVED, book_date=dt.date(2023, 3, 24))[0]
    assert isinstance(book, OrderBook)
    assert book.at == dt.datetime(2023, 3, 24, 11, 30, 19, tzinfo=KST)
    assert book.asks[0] == (77900, 265881) and book.bids[0] == (77800, 14941)
    assert book.asks[9] == (78800, 63546) and book.bids[9] == (76900, 214927)
    assert len(book.asks) == len(book.bids) == 10
    assert (book.total_ask_qty, book.total_bid_qty, book.cum_volume) == (1760795, 1855978, 10358640)
    assert [p for p, _ in book.asks] == sorted(p for p, _ in book.asks)
    assert [p for p, _ in book.bids] == sorted((p for p, _ in book.bids), reverse=True)
    undated = parse_frame(frames[3], received_at=RECEIVED)[0]
    assert isinstance(undated, OrderBook) and undated.at == dt.datetime(2026, 2, 20, 12, 7, 55, tzinfo=KST)
    assert undated.asks[0] == (71500, 224894) and undated.bids[0] == (71400, 255687)
    assert sum(q for _, q in undated.asks) == undated.total_ask_qty == 1420444


def test_multi_record_frames_and_malformed_counts() -> None:
    payload = _real_frames()[0].split("|", 3)[3]
    other = payload.replace("005930", "000660", 1).replace("^112616^", "^112617^", 1)
    two = parse_frame(f"0|H0STCNT0|002|{payload}^{other}", received_at=RECEIVED)
    assert [t.code for t in two] == ["005930", "000660"]
    assert two[1].at.time() == dt.time(11, 26, 17)
    with pytest.raises(BrokerProtocolError):
        parse_frame(f"0|H0STCNT0|003|{payload}^{other}")  # count does not match
    with pytest.raises(BrokerProtocolError):
        parse_frame(f"0|H0STCNT0|001|{payload}^extra")  # not a multiple of 46
    with pytest.raises(BrokerProtocolError):
        parse_frame(f"0|H0STXXX0|001|{payload}")
    with pytest.raises(BrokerProtocolError):
        parse_frame(f"0|H0STCNT0|001|{payload.replace('62700', 'abc', 1)}")
    with pytest.raises(EncryptedFrame):
        parse_frame("1|H0STCNI0|001|c2VjcmV0")


@pytest.mark.parametrize(("level", "value"), [(3, "abc"), (7, ""), (10, "\u00b2"), (1, "1_0")])
def test_a_malformed_book_level_is_refused_by_its_name_and_a_blank_quantity_is_zero(level, value) -> None:
    """The 40 level numbers are read in one pass when they are all plain digits; otherwise field by field, as
    every other number: a blank is 0, anything else is refused naming the field."""
    fields = _real_frames()[3].split("|", 3)[3].split("^")
    names = realtime.H0STASP0_FIELDS
    fields[names.index(f"BIDP_RSQN{level}")] = value
    text = "0|H0STASP0|001|" + "^".join(fields)
    if value == "":
        book = parse_frame(text, received_at=RECEIVED)[0]
        assert isinstance(book, OrderBook) and book.bids[level - 1][1] == 0
        assert book.asks[0] == (71500, 224894)
        return
    with pytest.raises(BrokerProtocolError, match=f"BIDP_RSQN{level}"):
        parse_frame(text, received_at=RECEIVED)


def test_control_frames_and_ack_classification() -> None:
    ping = parse_control('{"header":{"tr_id":"PINGPONG","datetime":"20250102093000"}}')
    assert isinstance(ping, PingPong) and ping.datetime == "20250102093000"
    ack = parse_control(
        '{"header":{"tr_id":"H0STCNT0","tr_key":"005930","encrypt":"N"},"body":{"rt_cd":"0","msg_cd":"OPSP0000",'
        '"msg1":"SUBSCRIBE SUCCESS","output":{"iv":"0123456789abcdef","key":"abcdefghijklmnopqrstuvwxyzabcdef"}}}'
    )
    assert isinstance(ack, Ack) and (ack.tr_id, ack.tr_key, ack.msg_cd) == ("H0STCNT0", "005930", "OPSP0000")
    assert "0123456789abcdef" not in repr(ack)

    def make(code: str, msg1: str, rt_cd: str = "1") -> Ack:
        return Ack("H0STCNT0", "005930", rt_cd, code, msg1)

    assert ack_error(make("OPSP0002", "ALREADY IN SUBSCRIBE"), subscribe=True) is None
    assert ack_error(make("OPSP0001", "UNSUBSCRIBE SUCCESS", "0"), subscribe=False) is None
    assert ack_error(make("OPSP0003", "UNSUBSCRIBE ERROR (not found!)"), subscribe=False) is None
    assert isinstance(ack_error(make("OPSP0008", "MAX SUBSCRIBE OVER"), subscribe=True), SubscriptionLimitExceeded)
    assert isinstance(ack_error(make("OPSP8996", "ALREADY IN USE appkey"), subscribe=True), realtime.ApprovalKeyInUse)
    bad_key = ack_error(make("OPSP0011", "invalid approval : NOT FOUND"), subscribe=True)
    assert isinstance(bad_key, realtime.ApprovalKeyRejected)
    other = ack_error(make("OPSP8992", "invalid tr_key"), subscribe=True)
    assert isinstance(other, realtime.SubscriptionRefused) and other.msg_cd == "OPSP8992"
    with pytest.raises(BrokerProtocolError):
        parse_control('{"header":{"tr_id":"H0STCNT0"}}')


def test_subscription_message_and_endpoint() -> None:
    import json

    msg = json.loads(realtime.subscription_message("K" * 36, "H0STASP0", "005930", subscribe=False, custtype="P"))
    assert msg == {
        "header": {"approval_key": "K" * 36, "custtype": "P", "tr_type": "2", "content-type": "utf-8"},
        "body": {"input": {"tr_id": "H0STASP0", "tr_key": "005930"}},
    }
    assert endpoint("ws://127.0.0.1:31000") == "ws://127.0.0.1:31000/tryitout"
    assert endpoint("ws://h:1/custom") == "ws://h:1/custom"


@pytest.mark.asyncio
async def test_drop_oldest_queue() -> None:
    dropped: list[int] = []
    queue: DropOldestQueue[int] = DropOldestQueue(3, on_drop=lambda: dropped.append(1))
    for i in range(5):
        queue.put_nowait(i)
    assert len(dropped) == 2 and [queue.get_nowait() for _ in range(3)] == [2, 3, 4]
    with pytest.raises(TimeoutError):
        await queue.get(timeout=0.05)
    queue.put_nowait(9)
    queue.close()
    assert await queue.get(timeout=0.1) == 9


# --- against the sandbox -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wsbox() -> Iterator[SandboxThread]:
    cfg = sandbox_config(
        speed=120.0, pingpong_interval=PINGPONG_INTERVAL, pingpong_timeout=PINGPONG_TIMEOUT, ws_flush_interval_s=0.05
    )
    with SandboxThread(cfg) as box:
        resp = httpx.post(
            f"http://127.0.0.1:{box.ports.paper_rest}/sandbox/clock",
            json={"time": "10:00:00"},
            headers={"X-Sandbox-Admin": ADMIN},
            trust_env=False,
        )
        assert resp.status_code == 200, resp.text
        yield box


@pytest.fixture()
def ws_admin(wsbox: SandboxThread) -> Iterator[httpx.Client]:
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{wsbox.ports.paper_rest}",
        headers={"X-Sandbox-Admin": ADMIN},
        timeout=10,
        trust_env=False,
    )
    yield client
    client.delete("/sandbox/faults")
    client.close()


def codes(box: SandboxThread, n: int) -> list[str]:
    market = box.server.core.market  # type: ignore[union-attr]
    return list(market.tapes)[:n]


def ws_config(box: SandboxThread, cred: AppCredential) -> KisConfig:
    return KisConfig.for_sandbox(
        env="paper",
        rest_port=box.ports.paper_rest,
        ws_port=box.ports.paper_ws,
        app_key=cred.appkey,
        app_secret=cred.appsecret,
    )


class CountingKeys:
    """An approval-key provider that fetches real keys from the sandbox and counts the calls."""

    def __init__(self, box: SandboxThread, cred: AppCredential) -> None:
        self.url = f"http://127.0.0.1:{box.ports.paper_rest}/oauth2/Approval"
        self.cred = cred
        self.calls = 0
        self.override: str | None = None

    async def __call__(self) -> str:
        self.calls += 1
        if self.override is not None:
            key, self.override = self.override, None
            return key
        async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
            resp = await client.post(
                self.url,
                json={"grant_type": "client_credentials", "appkey": self.cred.appkey, "secretkey": self.cred.appsecret},
            )
        return str(resp.json()["approval_key"])


def session_for(box: SandboxThread, cred: AppCredential, keys: CountingKeys, **kwargs: object) -> KisRealtimeSession:
    values: dict[str, object] = {
        "stall_timeout": 1.0,
        "backoff_base": 0.05,
        "backoff_max": 0.4,
        "healthy_after": 2.0,
        "ack_timeout": 3.0,
        "open_timeout": 3.0,
    }
    values.update(kwargs)
    return KisRealtimeSession(ws_config(box, cred), keys, **values)  # type: ignore[arg-type]


async def collect(
    session: KisRealtimeSession, seconds: float, until: Callable[[list[Tick | OrderBook]], bool] | None = None
) -> list[Tick | OrderBook]:
    """Events read from the session for at most ``seconds`` (or until ``until(events)`` holds)."""
    events: list[Tick | OrderBook] = []
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            events.append(await session.get(timeout=remaining))
        except TimeoutError:
            break
        if until is not None and until(events):
            break
    return events


def trade_codes(events: list[Tick | OrderBook]) -> set[str]:
    return {e.code for e in events if isinstance(e, Tick)}


def book_codes(events: list[Tick | OrderBook]) -> set[str]:
    return {e.code for e in events if isinstance(e, OrderBook)}


def hub_registrations(box: SandboxThread) -> list[int]:
    """Registration count of every open sandbox connection (read on the sandbox's loop)."""
    return box.call(lambda: [len(c.subs) for c in box.server.core.hub.connections])  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_session_two_stocks_trades_and_books_with_pingpong(wsbox: SandboxThread, credential) -> None:
    cred = credential("paper")
    keys = CountingKeys(wsbox, cred)
    a, b, c = codes(wsbox, 3)
    async with session_for(wsbox, cred, keys) as session:
        await session.subscribe(a)
        await session.subscribe(b)
        await session.wait_connected(5)
        assert session.status == "connected" and session.active_registrations == {
            (tr, code) for tr in (TR_TRADES, TR_BOOK) for code in (a, b)
        }
        # Longer than the sandbox's PINGPONG timeout: a silent client would have been dropped.
        events = await collect(session, PINGPONG_TIMEOUT * 2 + 0.5)
        stats = session.stats
        assert trade_codes(events) == {a, b} and book_codes(events) == {a, b}
        assert c not in {e.code for e in events}
        assert stats.pingpongs >= 3 and stats.reconnects == 0 and stats.connect_failures == 0
        assert stats.stalls == 0 and session.status == "connected" and keys.calls == 1
        assert stats.frames > 0 and stats.ticks >= sum(isinstance(e, Tick) for e in events)
        assert stats.last_frame_at is not None and stats.protocol_errors == 0
        ticks = [e for e in events if isinstance(e, Tick)]
        for code in (a, b):
            cum = [t.cum_volume for t in ticks if t.code == code]
            assert cum == sorted(cum)
        assert all(t.at.tzinfo is not None and t.price > 0 and t.side is not None for t in ticks)
        # unsubscribe one stock: only the other one keeps flowing
        await session.unsubscribe(b)
        assert session.registrations == {(TR_TRADES, a), (TR_BOOK, a)}
        assert session.active_registrations == session.registrations
        await collect(session, 0.3)  # frames already in flight
        later = await collect(session, 1.0)
        assert trade_codes(later) | book_codes(later) == {a}
    assert session.status == "stopped"


@pytest.mark.asyncio
async def test_connection_multi_record_frames_async_iteration_and_local_limit(wsbox: SandboxThread, credential) -> None:
    cred = credential("paper")
    key = await CountingKeys(wsbox, cred)()
    code = codes(wsbox, 1)[0]
    url = endpoint(f"ws://127.0.0.1:{wsbox.ports.paper_ws}")
    async with KisRealtimeConnection(url, key, max_registrations=41) as conn:
        ack = await conn.subscribe(TR_TRADES, code)
        assert ack.msg_cd == "OPSP0000"
        assert (await conn.subscribe(TR_TRADES, code)).msg_cd == "OPSP0002"  # duplicate = success
        seen: list[Tick | OrderBook] = []
        frames_before = conn.stats.frames

        async def read() -> None:
            async for event in conn:
                seen.append(event)
                if len(seen) >= 60:
                    return

        await asyncio.wait_for(read(), 10)
        frames = conn.stats.frames - frames_before
        assert all(isinstance(e, Tick) and e.code == code for e in seen)
        assert frames < len(seen)  # several records per frame
        # fill up to 41 registrations, then the 42nd is refused locally without sending
        for i in range(40):
            await conn.subscribe(TR_BOOK, f"{100000 + i:06d}")
        assert len(conn.registrations) == 41 and hub_registrations(wsbox) == [41]
        with pytest.raises(SubscriptionLimitExceeded) as info:
            await conn.subscribe(TR_BOOK, "100099")
        assert info.value.kind == "local_limit" and info.value.msg_cd == ""
        assert hub_registrations(wsbox) == [41] and len(conn.registrations) == 41
        assert (await conn.unsubscribe(TR_BOOK, "100000")).msg_cd == "OPSP0001"
        assert (await conn.unsubscribe(TR_BOOK, "100000")).msg_cd == "OPSP0003"  # not subscribed = fine
        assert len(conn.registrations) == 40 and hub_registrations(wsbox) == [40]
    assert not conn.is_open


@pytest.mark.asyncio
async def test_session_local_registration_cap(wsbox: SandboxThread, credential) -> None:
    cred = credential("paper")
    keys = CountingKeys(wsbox, cred)
    async with session_for(wsbox, cred, keys, max_registrations=3) as session:
        await session.subscribe("100001")
        await session.wait_connected(5)
        with pytest.raises(SubscriptionLimitExceeded):
            await session.subscribe("100002")
        assert session.registrations == {(TR_TRADES, "100001"), (TR_BOOK, "100001")}
        await session.subscribe("100002", tr_ids=(TR_TRADES,))
        assert len(session.active_registrations) == 3 and hub_registrations(wsbox) == [3]


@pytest.mark.asyncio
async def test_ws_drop_reconnects_and_restores_every_subscription(wsbox: SandboxThread, credential, ws_admin) -> None:
    cred = credential("paper")
    keys = CountingKeys(wsbox, cred)
    wanted = codes(wsbox, 3)
    async with session_for(wsbox, cred, keys) as session:
        for code in wanted:
            await session.subscribe(code)
        await session.wait_connected(5)
        await collect(session, 5, until=lambda ev: trade_codes(ev) == set(wanted))
        resp = await asyncio.to_thread(ws_admin.post, "/sandbox/faults", json={"fault": "ws_drop"})
        assert resp.status_code == 200 and resp.json()["dropped"] >= 1

        async def reconnected() -> None:
            while session.stats.reconnects < 1 or session.status != "connected":
                await asyncio.sleep(0.02)

        await asyncio.wait_for(reconnected(), 5)
        assert session.active_registrations == session.registrations and len(session.registrations) == 6
        assert hub_registrations(wsbox) == [6]
        restored_at = dt.datetime.now(KST)

        def fresh(ev: list[Tick | OrderBook]) -> list[Tick | OrderBook]:
            return [e for e in ev if e.received_at >= restored_at]  # skip events queued before the drop

        after = fresh(
            await collect(
                session,
                6,
                until=lambda ev: trade_codes(fresh(ev)) == set(wanted) and book_codes(fresh(ev)) == set(wanted),
            )
        )
        assert trade_codes(after) == set(wanted) and book_codes(after) == set(wanted)
        assert session.stats.reconnects == 1 and session.stats.stalls == 0


@pytest.mark.asyncio
async def test_ws_stall_is_detected_and_the_connection_replaced(wsbox: SandboxThread, credential, ws_admin) -> None:
    cred = credential("paper")
    keys = CountingKeys(wsbox, cred)
    code = codes(wsbox, 1)[0]
    stall_timeout = 1.0
    async with session_for(wsbox, cred, keys, stall_timeout=stall_timeout) as session:
        await session.subscribe(code)
        await session.wait_connected(5)
        await collect(session, 5, until=lambda ev: len(ev) >= 5)
        resp = await asyncio.to_thread(ws_admin.post, "/sandbox/faults", json={"fault": "ws_stall", "seconds": 2.5})
        assert resp.status_code == 200
        stalled_at = time.monotonic()

        async def detected() -> None:
            while session.stats.stalls < 1:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(detected(), stall_timeout + 2.0)
        assert time.monotonic() - stalled_at < stall_timeout + 1.5
        # once the stall ends, a fresh connection carries data again
        frames = session.stats.frames

        async def flowing() -> None:
            while session.stats.frames == frames or session.status != "connected":
                await asyncio.sleep(0.05)

        await asyncio.wait_for(flowing(), 8)
        assert session.stats.reconnects >= 1
        assert session.active_registrations == {(TR_TRADES, code), (TR_BOOK, code)}


@pytest.mark.asyncio
async def test_refused_approval_key_is_replaced(wsbox: SandboxThread, credential) -> None:
    cred = credential("paper")
    keys = CountingKeys(wsbox, cred)
    keys.override = "00000000-0000-4000-8000-000000000000"  # unknown to the broker
    code = codes(wsbox, 1)[0]
    async with session_for(wsbox, cred, keys) as session:
        await session.subscribe(code)
        await session.wait_connected(5)
        assert keys.calls == 2 and session.stats.connect_failures == 1
        assert session.active_registrations == {(TR_TRADES, code), (TR_BOOK, code)}
        events = await collect(session, 5, until=lambda ev: bool(trade_codes(ev)))
        assert trade_codes(events) == {code}


@pytest.mark.asyncio
async def test_with_the_rest_client_approval_key_and_callback_delivery(
    wsbox: SandboxThread, credential, redis_prefix
) -> None:
    from django.conf import settings

    cred = credential("paper")
    config = KisConfig.for_sandbox(
        env="paper",
        rest_port=wsbox.ports.paper_rest,
        ws_port=wsbox.ports.paper_ws,
        app_key=cred.appkey,
        app_secret=cred.appsecret,
        redis_prefix=redis_prefix,
    )
    received: list[Tick | OrderBook] = []
    code = codes(wsbox, 1)[0]
    async with AsyncKisClient(config, token_store=MemoryTokenStore(), redis_url=settings.REDIS_URL) as client:
        session = KisRealtimeSession(config, client.approval_key, on_event=received.append, stall_timeout=5.0)
        async with session:
            await session.subscribe(code, tr_ids=(TR_TRADES,))
            await session.wait_connected(5)
            deadline = time.monotonic() + 5
            while len(received) < 10 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
    assert len(received) >= 10 and all(isinstance(e, Tick) and e.code == code for e in received)
    assert session.status == "stopped" and session.stats.approval_keys == 1
