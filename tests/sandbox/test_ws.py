"""WebSocket protocol over real sockets with a plain ``websockets`` client (kis-api.md §6)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from apps.core.krx.rules import TickTable
from apps.sandbox.layouts import H0STASP0_FIELDS, H0STCNT0_FIELDS, parse_frame
from apps.sandbox.server import SandboxThread

from .conftest import ADMIN, base_config, fresh_credential, rest_url, shared_market


@pytest.fixture(scope="module")
def wsbox() -> Iterator[SandboxThread]:
    cfg = base_config(speed=120.0)
    with SandboxThread(cfg, shared_market(cfg)) as running:
        httpx.post(
            f"{rest_url(running, 'real')}/sandbox/clock", json={"time": "10:00:00"}, headers={"X-Sandbox-Admin": ADMIN}
        )
        yield running


@pytest.fixture()
def admin_ws(wsbox: SandboxThread) -> Iterator[httpx.Client]:
    client = httpx.Client(base_url=rest_url(wsbox, "real"), headers={"X-Sandbox-Admin": ADMIN}, timeout=10)
    yield client
    client.delete("/sandbox/faults")
    client.close()


def approval(box: SandboxThread, mode: str = "real") -> str:
    cred = fresh_credential(mode)
    resp = httpx.post(
        f"{rest_url(box, mode)}/oauth2/Approval",
        json={"grant_type": "client_credentials", "appkey": cred.appkey, "secretkey": cred.appsecret},
    )
    return str(resp.json()["approval_key"])


def sub(key: str, tr_id: str, tr_key: str, tr_type: str = "1") -> str:
    return json.dumps(
        {
            "header": {"approval_key": key, "custtype": "P", "tr_type": tr_type, "content-type": "utf-8"},
            "body": {"input": {"tr_id": tr_id, "tr_key": tr_key}},
        }
    )


def url(box: SandboxThread, mode: str = "real", path: str = "/tryitout") -> str:
    return f"ws://127.0.0.1:{box.ports.real_ws if mode == 'real' else box.ports.paper_ws}{path}"


async def next_json(ws: websockets.ClientConnection, timeout: float = 3.0) -> dict:
    """Next JSON control message (skipping data frames and PINGPONG)."""
    deadline = time.monotonic() + timeout
    while True:
        raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
        if raw.startswith("{") and '"PINGPONG"' not in raw:
            return json.loads(raw)


@pytest.mark.asyncio
async def test_ack_shapes_and_codes(wsbox: SandboxThread) -> None:
    key = approval(wsbox)
    async with websockets.connect(url(wsbox, path="/")) as ws:
        await ws.send(sub(key, "H0STCNT0", "005930"))
        ok = await next_json(ws)
        assert ok["header"] == {"tr_id": "H0STCNT0", "tr_key": "005930", "encrypt": "N"}
        body = ok["body"]
        assert (body["rt_cd"], body["msg_cd"], body["msg1"]) == ("0", "OPSP0000", "SUBSCRIBE SUCCESS")
        assert len(body["output"]["iv"]) == 16 and len(body["output"]["key"]) == 32
        await ws.send(sub(key, "H0STCNT0", "005930"))
        dup = (await next_json(ws))["body"]
        assert (dup["rt_cd"], dup["msg_cd"], dup["msg1"]) == ("1", "OPSP0002", "ALREADY IN SUBSCRIBE")
        await ws.send(sub(key, "H0STCNT0", "005930", "2"))
        un = (await next_json(ws))["body"]
        assert (un["rt_cd"], un["msg_cd"]) == ("0", "OPSP0001") and un["msg1"].startswith("UNSUB")
        await ws.send(sub(key, "H0STCNT0", "005930", "2"))
        nf = (await next_json(ws))["body"]
        assert (nf["rt_cd"], nf["msg_cd"], nf["msg1"]) == ("1", "OPSP0003", "UNSUBSCRIBE ERROR (not found!)")
        await ws.send("{not json")
        assert (await next_json(ws))["body"]["msg_cd"] == "OPSP9999"
        await ws.send(sub(key, "H0STXXX0", "005930"))
        assert (await next_json(ws))["body"]["msg_cd"] == "OPSP8991"
        await ws.send(sub("0" * 36, "H0STCNT0", "005930"))
        assert (await next_json(ws))["body"]["rt_cd"] == "1"


@pytest.mark.asyncio
async def test_41_registrations_then_opsp0008(wsbox: SandboxThread) -> None:
    key = approval(wsbox)
    codes = [f"{i:06d}" for i in range(100000, 100041)]
    async with websockets.connect(url(wsbox)) as ws:
        for code in codes:
            await ws.send(sub(key, "H0STASP0", code))
            assert (await next_json(ws))["body"]["msg_cd"] == "OPSP0000"
        await ws.send(sub(key, "H0STCNT0", "005930"))
        over = (await next_json(ws))["body"]
        assert (over["rt_cd"], over["msg_cd"], over["msg1"]) == ("1", "OPSP0008", "MAX SUBSCRIBE OVER")


@pytest.mark.asyncio
async def test_second_connection_with_same_approval_key_refused(wsbox: SandboxThread) -> None:
    key = approval(wsbox)
    async with websockets.connect(url(wsbox)) as first, websockets.connect(url(wsbox)) as second:
        await first.send(sub(key, "H0STCNT0", "005930"))
        assert (await next_json(first))["body"]["msg_cd"] == "OPSP0000"
        await second.send(sub(key, "H0STCNT0", "000660"))
        refused = (await next_json(second))["body"]
        assert (refused["rt_cd"], refused["msg_cd"], refused["msg1"]) == ("1", "OPSP8996", "ALREADY IN USE appkey")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(second.recv(), 3)
        await first.send(sub(key, "H0STASP0", "005930"))
        assert (await next_json(first))["body"]["msg_cd"] == "OPSP0000"


@pytest.mark.asyncio
async def test_data_frames_layout_and_consistency(wsbox: SandboxThread) -> None:
    key = approval(wsbox)
    market = wsbox.server.core.market  # type: ignore[union-attr]
    tape = market.tape("005930")
    table = TickTable()
    trades, books, multi = [], [], 0
    async with websockets.connect(url(wsbox)) as ws:
        for tr in ("H0STCNT0", "H0STASP0"):
            await ws.send(sub(key, tr, "005930"))
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and (len(trades) < 40 or multi == 0 or len(books) < 5):
            raw = await asyncio.wait_for(ws.recv(), 3)
            if raw.startswith("{"):
                if '"PINGPONG"' in raw:
                    await ws.send(raw)
                continue
            enc, tr_id, count, payload = raw.split("|", 3)
            width = 46 if tr_id == "H0STCNT0" else 59
            assert enc == "0" and len(count) == 3 and len(payload.split("^")) == int(count) * width
            frame = parse_frame(raw)
            if tr_id == "H0STCNT0":
                trades.extend(frame.records)
                multi += frame.count > 1
            else:
                books.extend(frame.records)
    assert len(trades) >= 40 and multi > 0 and len(books) >= 5
    assert list(trades[0]) == list(H0STCNT0_FIELDS) and list(books[0]) == list(H0STASP0_FIELDS)
    prev_close = tape.prev_close
    last_acml = 0
    for rec in trades:
        price = int(rec["STCK_PRPR"])
        assert table.on_grid(price, market.date)
        assert int(rec["PRDY_VRSS"]) == price - prev_close
        assert rec["PRDY_VRSS_SIGN"] == ("2" if price > prev_close else "5" if price < prev_close else "3")
        assert int(rec["ACML_VOL"]) == last_acml + int(rec["CNTG_VOL"]) or last_acml == 0
        last_acml = int(rec["ACML_VOL"])
        assert rec["CCLD_DVSN"] in ("1", "5") and rec["HOUR_CLS_CODE"] == "0"
        assert rec["BSOP_DATE"] == market.date.strftime("%Y%m%d") and rec["NEW_MKOP_CLS_CODE"] == "20"
        assert int(rec["STCK_LWPR"]) <= price <= int(rec["STCK_HGPR"])
        assert int(rec["ASKP1"]) > int(rec["BIDP1"]) and price in (int(rec["ASKP1"]), int(rec["BIDP1"]))
        assert int(rec["SELN_CNTG_SMTN"]) + int(rec["SHNU_CNTG_SMTN"]) == int(rec["ACML_VOL"])
    state = tape.state_at(wsbox.server.core.clock.now_ms())  # type: ignore[union-attr]
    assert last_acml <= state.volume
    # Every book brackets the last print (found by the cumulative volume both records carry).
    last_price = {int(rec["ACML_VOL"]): int(rec["STCK_PRPR"]) for rec in trades}
    bracketed = 0
    for rec in books:
        asks = [int(rec[f"ASKP{i}"]) for i in range(1, 11)]
        bids = [int(rec[f"BIDP{i}"]) for i in range(1, 11)]
        assert asks == sorted(asks) and bids == sorted(bids, reverse=True) and asks[0] > bids[0]
        assert all(table.on_grid(p, market.date) for p in asks + bids)
        assert int(rec["TOTAL_ASKP_RSQN"]) == sum(int(rec[f"ASKP_RSQN{i}"]) for i in range(1, 11))
        last = last_price.get(int(rec["ACML_VOL"]))
        if last is not None:
            assert bids[0] <= last <= asks[0]
            bracketed += 1
    assert bracketed >= len(books) // 2


async def _ping_client(box: SandboxThread, behaviour: str, seconds: float) -> tuple[int, bool]:
    """Connect, subscribe, answer PINGPONG per ``behaviour`` for ``seconds``; (pings seen, dropped)."""
    key = approval(box)
    pings = 0
    async with websockets.connect(url(box), ping_interval=None) as ws:
        await ws.send(sub(key, "H0STCNT0", "000660"))
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                try:
                    raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    break
                if '"PINGPONG"' in raw:
                    msg = json.loads(raw)
                    assert msg == {"header": {"tr_id": "PINGPONG", "datetime": msg["header"]["datetime"]}}
                    assert len(msg["header"]["datetime"]) == 14 and msg["header"]["datetime"].startswith("20")
                    pings += 1
                    if behaviour == "pong":
                        await ws.pong(raw.encode())
                    elif behaviour == "echo":
                        await ws.send(raw)
        except ConnectionClosed:
            return pings, True
    return pings, False


@pytest.mark.asyncio
async def test_pingpong_pong_frame_and_echo_accepted_silent_dropped(wsbox: SandboxThread) -> None:
    results = await asyncio.gather(
        _ping_client(wsbox, "pong", 2.0), _ping_client(wsbox, "echo", 2.0), _ping_client(wsbox, "silent", 2.5)
    )
    (p1, d1), (p2, d2), (p3, d3) = results
    assert p1 >= 3 and not d1
    assert p2 >= 3 and not d2
    assert p3 >= 1 and d3


@pytest.mark.asyncio
async def test_fault_ws_drop(wsbox: SandboxThread, admin_ws: httpx.Client) -> None:
    key = approval(wsbox, "paper")
    async with websockets.connect(url(wsbox, "paper")) as ws:
        await ws.send(sub(key, "H0STCNT0", "005930"))
        await next_json(ws)
        resp = await asyncio.to_thread(admin_ws.post, "/sandbox/faults", json={"fault": "ws_drop"})
        assert resp.json()["dropped"] >= 1
        with pytest.raises(ConnectionClosed):
            for _ in range(10000):
                await asyncio.wait_for(ws.recv(), 3)


@pytest.mark.asyncio
async def test_fault_ws_stall_then_resume(wsbox: SandboxThread, admin_ws: httpx.Client) -> None:
    key = approval(wsbox)
    async with websockets.connect(url(wsbox)) as ws:
        await ws.send(sub(key, "H0STCNT0", "005930"))
        await next_json(ws)
        await asyncio.wait_for(ws.recv(), 3)  # data flows
        await asyncio.to_thread(admin_ws.post, "/sandbox/faults", json={"fault": "ws_stall"})
        # Drain what was queued before the stall, then silence while the socket stays open.
        with pytest.raises(TimeoutError):
            for _ in range(10000):
                await asyncio.wait_for(ws.recv(), 1.5)
        await asyncio.to_thread(admin_ws.delete, "/sandbox/faults")
        raw = await asyncio.wait_for(ws.recv(), 3)
        assert raw.startswith(("0|H0STCNT0|", "{"))


@pytest.mark.asyncio
async def test_slow_client_queue_overflow_drops_only_that_client() -> None:
    cfg = base_config(ws_queue_size=3, speed=120.0)
    with SandboxThread(cfg, shared_market(cfg)) as box:
        hub = box.server.core.hub  # type: ignore[union-attr]
        key = approval(box)
        async with websockets.connect(url(box)) as ws:
            await ws.send(sub(key, "H0STCNT0", "005930"))
            await next_json(ws)
            conn = next(iter(hub.connections))

            def flood() -> None:
                for _ in range(cfg.ws_queue_size + 2):
                    hub.enqueue(conn, "x")

            await asyncio.to_thread(box.call, flood)
            with pytest.raises(ConnectionClosed):
                for _ in range(10000):
                    await asyncio.wait_for(ws.recv(), 3)
        assert not hub.connections


@pytest.mark.asyncio
async def test_send_log_records_every_print_written_with_its_time(tmp_path) -> None:
    """SANDBOX_SEND_LOG: one line per H0STCNT0 record written to a client (code, cumulative volume, price and
    the wall time of the write), the same prints the client receives, and no line for book frames."""
    log = tmp_path / "sent.log"
    cfg = base_config(speed=120.0, send_log=log)
    with SandboxThread(cfg, shared_market(cfg)) as box:
        key = approval(box)
        received: list[tuple[str, int, int, float]] = []
        async with websockets.connect(url(box)) as ws:
            await ws.send(sub(key, "H0STCNT0", "005930"))
            await ws.send(sub(key, "H0STASP0", "005930"))
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and len(received) < 20:
                raw = await asyncio.wait_for(ws.recv(), 3)
                if raw.startswith("0|H0STCNT0|"):
                    at = time.time()
                    for rec in parse_frame(raw).records:
                        received.append(("005930", int(rec["ACML_VOL"]), int(rec["STCK_PRPR"]), at))
    lines = [line.split() for line in log.read_text().splitlines()]
    logged = {(code, int(cum)): (int(price), float(sent)) for code, cum, price, sent in lines}
    assert len(received) >= 20 and len(logged) == len(lines)  # one line per print
    for code, cum, price, at in received:
        sent_price, sent_at = logged[(code, cum)]
        assert sent_price == price and sent_at <= at < sent_at + 5
