"""Kiwoom WebSocket over real sockets (kiwoom-api.md A6): LOGIN, PING, REG/REMOVE, batched REAL."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from apps.sandbox.quotes import hhmmss
from apps.sandbox.replay import BUY
from apps.sandbox.server import SandboxThread

from .conftest import admin, issue_token, login, recv_json, set_clock, ws_url

pytestmark = pytest.mark.asyncio


async def closed_after(ws: websockets.ClientConnection, timeout: float = 3.0) -> list[dict]:
    """Messages received until the server closes the connection."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    with pytest.raises(ConnectionClosed):
        while True:
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))))
    return seen


async def test_message_before_login_gets_system_r10004(kbox: SandboxThread) -> None:
    async with websockets.connect(ws_url(kbox)) as ws:
        await ws.send(json.dumps({"trnm": "CNSRLST"}))
        seen = await closed_after(ws)
    assert len(seen) == 1 and seen[0]["trnm"] == "SYSTEM" and seen[0]["code"] == "R10004"


async def test_bad_token_login_fails_with_code_8005_and_closes(kbox: SandboxThread) -> None:
    async with websockets.connect(ws_url(kbox)) as ws:
        await ws.send(json.dumps({"trnm": "LOGIN", "token": "not-a-token"}))
        seen = await closed_after(ws)
    assert len(seen) == 1 and seen[0]["trnm"] == "LOGIN"
    assert seen[0]["return_code"] != 0 and "CODE=8005" in seen[0]["return_msg"]


async def test_ping_echo_keeps_the_connection_and_silence_ends_it(kbox: SandboxThread) -> None:
    ws = await login(kbox)
    pings = 0
    deadline = time.monotonic() + 2.5  # > ping_timeout 1.5 s: only the echoes keep it open
    while time.monotonic() < deadline:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 2.0))
        assert msg == {"trnm": "PING"}
        pings += 1
        await ws.send(json.dumps(msg))
    assert pings >= 5
    await ws.close()
    silent = await login(kbox)
    seen = await closed_after(silent, timeout=4.0)
    assert seen[-1]["trnm"] == "SYSTEM" and seen[-1]["code"] == "R10002"
    assert "Heartbeat" in seen[-1]["message"] and all(m["trnm"] == "PING" for m in seen[:-1])


async def test_reg_remove_acks_and_errors(kbox: SandboxThread) -> None:
    ws = await login(kbox)
    ok = {"trnm": "REG", "return_code": 0, "return_msg": ""}
    await ws.send(
        json.dumps({"trnm": "REG", "grp_no": "1", "refresh": "1", "data": [{"item": ["005930"], "type": ["0B"]}]})
    )
    assert await reply_to(ws, "REG") == ok
    bad = [
        {"trnm": "REG", "refresh": "1", "data": [{"item": ["005930"], "type": ["0B"]}]},
        {"trnm": "REG", "grp_no": "12345", "data": [{"item": ["005930"], "type": ["0B"]}]},
        {"trnm": "REG", "grp_no": "1", "refresh": "2", "data": [{"item": ["005930"], "type": ["0B"]}]},
        {"trnm": "REG", "grp_no": "1", "data": [{"item": ["005930"], "type": ["ZZ"]}]},
        {"trnm": "REG", "grp_no": "1", "data": [{"item": ["5930!"], "type": ["0B"]}]},
        {"trnm": "REG", "grp_no": "1", "data": []},
    ]
    for msg in bad:
        await ws.send(json.dumps(msg))
        reply = await reply_to(ws, msg["trnm"])
        assert reply["trnm"] == "REG" and reply["return_code"] == 1 and reply["return_msg"], msg
    await ws.send(json.dumps({"trnm": "REMOVE", "grp_no": "1", "data": [{"item": ["005930"], "type": ["0B"]}]}))
    assert await reply_to(ws, "REMOVE") == {"trnm": "REMOVE", "return_code": 0, "return_msg": ""}
    await ws.send(json.dumps({"trnm": "NOPE"}))
    assert (await reply_to(ws, "NOPE"))["return_code"] == 1
    await ws.close()


async def reply_to(ws: websockets.ClientConnection, trnm: str) -> dict:
    """The next message of ``trnm`` (REAL pushes in between are skipped)."""
    while True:
        msg = await recv_json(ws)
        if msg["trnm"] == trnm:
            return msg


async def collect_real(ws: websockets.ClientConnection, seconds: float) -> list[dict]:
    frames: list[dict] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            msg = await recv_json(ws, max(0.05, deadline - time.monotonic()))
        except TimeoutError:
            break
        if msg["trnm"] == "REAL":
            frames.append(msg)
    return frames


async def test_real_pushes_are_the_replayed_prints_batched_and_signed(kbox: SandboxThread) -> None:
    set_clock(kbox, "10:00:00")
    core = kbox.server.core  # type: ignore[union-attr]
    ws = await login(kbox)
    reg = {"trnm": "REG", "grp_no": "7", "refresh": "1", "data": [{"item": ["005930_AL"], "type": ["0B", "0D"]}]}
    await ws.send(json.dumps(reg))
    assert (await recv_json(ws))["return_code"] == 0
    frames = await collect_real(ws, 2.0)
    entries = [e for f in frames for e in f["data"]]
    trades = [e for e in entries if e["type"] == "0B"]
    books = [e for e in entries if e["type"] == "0D"]
    assert trades and books and any(len(f["data"]) > 1 for f in frames)
    assert {e["item"] for e in entries} == {"005930_AL"}
    assert {e["name"] for e in trades} == {"주식체결"} and {e["name"] for e in books} == {"주식호가잔량"}
    tape = core.market.tapes["005930"]
    prev = tape.prev_close
    ticks = tape.all_ticks()

    # The pushed prints are consecutive replayed prints, with the signs of A3/A6.
    def sign(price: int) -> str:
        return f"+{price}" if price > prev else f"-{price}" if price < prev else str(price)

    head = trades[0]["values"]
    first = next(i for i, t in enumerate(ticks) if hhmmss(t.t_ms) == head["20"] and t.volume == abs(int(head["15"])))
    for entry, tick in zip(trades, ticks[first:], strict=False):
        v = entry["values"]
        assert v["20"] == hhmmss(tick.t_ms) and v["10"] == sign(tick.price)
        assert v["15"] == ("+" if tick.side == BUY else "-") + str(tick.volume)
        state = tape.state_at(tick.t_ms)
        assert v["13"] == str(state.volume) and v["16"] == sign(state.open) and v["17"] == sign(state.high)
        change = tick.price - prev
        assert v["25"] in "12345" and v["11"] == (f"+{change}" if change > 0 else str(change))
    book = books[-1]["values"]
    assert {str(f) for f in [21, *range(41, 81), 121, 125, 13]} <= set(book)
    asks = [abs(int(book[str(41 + i)])) for i in range(10)]
    bids = [abs(int(book[str(51 + i)])) for i in range(10)]
    assert asks[0] > bids[0] and asks == sorted(asks) and bids == sorted(bids, reverse=True)
    assert int(book["121"]) == sum(int(book[str(61 + i)]) for i in range(10))
    # REMOVE of the trades leaves only the books; refresh 0 replaces the group.
    await ws.send(json.dumps({"trnm": "REMOVE", "grp_no": "7", "data": [{"item": ["005930_AL"], "type": ["0B"]}]}))
    assert await reply_to(ws, "REMOVE") == {"trnm": "REMOVE", "return_code": 0, "return_msg": ""}
    later = [e for f in await collect_real(ws, 1.0) for e in f["data"]]
    assert later and {e["type"] for e in later} == {"0D"}
    reg2 = {"trnm": "REG", "grp_no": "7", "refresh": "0", "data": [{"item": ["000660"], "type": ["0B"]}]}
    await ws.send(json.dumps(reg2))
    assert (await reply_to(ws, "REG"))["return_code"] == 0
    await collect_real(ws, 0.2)
    replaced = [e for f in await collect_real(ws, 1.0) for e in f["data"]]
    assert replaced and {(e["item"], e["type"]) for e in replaced} == {("000660", "0B")}
    await ws.close()


async def test_kiwoom_prints_equal_the_kis_prints(kbox: SandboxThread) -> None:
    """Both protocols replay the same prints: Kiwoom 0B and KIS H0STCNT0 agree tick for tick."""
    import httpx

    from apps.sandbox.layouts import parse_frame

    from ..conftest import fresh_credential, rest_url
    from ..test_ws import sub

    set_clock(kbox, "11:00:00")
    cred = fresh_credential("real")
    key = httpx.post(
        f"{rest_url(kbox, 'real')}/oauth2/Approval",
        json={"grant_type": "client_credentials", "appkey": cred.appkey, "secretkey": cred.appsecret},
    ).json()["approval_key"]
    kw = await login(kbox)
    await kw.send(json.dumps({"trnm": "REG", "grp_no": "1", "data": [{"item": ["005930"], "type": ["0B"]}]}))
    assert (await recv_json(kw))["return_code"] == 0
    async with websockets.connect(f"ws://127.0.0.1:{kbox.ports.real_ws}/") as kis:
        await kis.send(sub(key, "H0STCNT0", "005930"))
        kis_prints: list[tuple[str, str, str]] = []
        kw_prints: list[tuple[str, str, str]] = []

        async def kiwoom_reader() -> None:  # reads (and echoes PINGs) while the KIS side is read
            for frame in await collect_real(kw, 2.5):
                for e in frame["data"]:
                    v = e["values"]
                    kw_prints.append((v["20"], v["10"].lstrip("+-"), v["15"].lstrip("+-")))

        reader = asyncio.create_task(kiwoom_reader())
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(kis.recv(), 2.0)
            if "PINGPONG" in raw:
                await kis.send(raw)
            elif raw[0] in "01":
                for row in parse_frame(raw).records:
                    kis_prints.append((row["STCK_CNTG_HOUR"], row["STCK_PRPR"], row["CNTG_VOL"]))
        await reader
    await kw.close()
    assert len(kis_prints) > 10
    # The two connections start at different moments (and a busy machine may delay either): compare them
    # from the first print both received, over the stretch both saw.
    first = next((p for p in kis_prints if p in kw_prints), None)
    assert first is not None, (kis_prints[:3], kw_prints[:3])
    kis_from, kw_from = kis_prints.index(first), kw_prints.index(first)
    overlap = min(len(kis_prints) - kis_from, len(kw_prints) - kw_from)
    assert overlap > 10
    assert kw_prints[kw_from : kw_from + overlap] == kis_prints[kis_from : kis_from + overlap]


async def test_ws_drop_fault_drops_kiwoom_connections(kbox: SandboxThread) -> None:
    ws = await login(kbox, issue_token(kbox, "real"))
    with admin(kbox) as client:
        result = client.post("/sandbox/faults", json={"fault": "ws_drop"}).json()
    assert result["kiwoom_dropped"] >= 1
    with pytest.raises(ConnectionClosed):
        for _ in range(100):
            await asyncio.wait_for(ws.recv(), 2.0)
