"""Kiwoom condition search over real sockets (kiwoom-api.md A7), rules evaluated on the replayed market."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from apps.sandbox.kiwoom.conditions import ConditionFileError, load_conditions
from apps.sandbox.server import SandboxThread

from .conftest import admin, login, recv_json, set_clock, start_box, write_rules

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def kbox() -> Iterator[SandboxThread]:
    """The module's box answers PINGs left unanswered for 6 s with R10002 (the shared box: 1.5 s): these tests
    hold a socket across fault switches and page evaluations, which a loaded machine can stretch past 1.5 s,
    and none of them is about the heartbeat (test_ws.py is)."""
    box = start_box(kiwoom_ping_timeout=6.0)
    core = box.server.core  # type: ignore[union-attr]
    # The replayed day generated up front: a condition search after a clock jump evaluates every stock, and
    # generating their tapes then would hold the box's loop while a socket waits for PINGs.
    box.call(lambda: [t.prepare(len(t.bars) - 1) for t in core.market.tapes.values()], timeout=120)
    try:
        yield box
    finally:
        box.stop()


async def reply_to(ws: websockets.ClientConnection, trnm: str, timeout: float = 30.0) -> dict:
    """The next message of ``trnm``; PINGs in between are echoed as a client must (the test box closes a socket
    that leaves one unanswered for the box's ping timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await recv_json(ws, max(0.05, deadline - time.monotonic()))
        if msg == {"trnm": "PING"}:
            await ws.send(json.dumps(msg))
        if msg["trnm"] == trnm:
            return msg


async def listed(box: SandboxThread) -> websockets.ClientConnection:
    ws = await login(box)
    await ws.send(json.dumps({"trnm": "CNSRLST"}))
    reply = await reply_to(ws, "CNSRLST")
    assert reply["return_code"] == 0
    return ws


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"conditions": []},
        {"conditions": [{"seq": "0", "name": "x", "rule": "nope"}]},
        {"conditions": [{"seq": "a", "name": "x", "rule": "above_open"}]},
        {"conditions": [{"seq": "0", "name": "", "rule": "above_open"}]},
        {"conditions": [{"seq": "0", "name": "x", "rule": "change_rate"}]},
        {"conditions": [{"seq": "0", "name": "x", "rule": "change_rate", "min_rate": "2"}]},
        {"conditions": [{"seq": "0", "name": "x", "rule": "volume_surge", "minutes": 1.5, "factor": 2}]},
        {"conditions": [{"seq": "0", "name": "x", "rule": "above_open", "codes": ["5930"]}]},
        {"conditions": [{"seq": "0", "name": "x", "rule": "above_open", "extra": 1}]},
        {
            "conditions": [
                {"seq": "0", "name": "x", "rule": "above_open"},
                {"seq": "0", "name": "y", "rule": "above_open"},
            ]
        },
        {"evaluation_interval": 0, "conditions": [{"seq": "0", "name": "x", "rule": "above_open"}]},
    ],
)
async def test_invalid_rule_files_fail_loudly_at_start(tmp_path: Path, doc: object) -> None:
    path = write_rules(tmp_path, doc)
    with pytest.raises(ConditionFileError):
        load_conditions(path)
    with pytest.raises(RuntimeError) as failed:
        start_box(kiwoom_conditions=path)
    assert isinstance(failed.value.__cause__, ConditionFileError)


async def test_not_json_and_missing_files_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConditionFileError, match="not valid JSON"):
        load_conditions(bad)
    with pytest.raises(ConditionFileError, match="cannot read"):
        load_conditions(tmp_path / "missing.json")


async def test_shipped_rules_and_cnsrlst(kbox: SandboxThread) -> None:
    ws = await login(kbox)
    await ws.send(json.dumps({"trnm": "CNSRLST"}))
    assert await reply_to(ws, "CNSRLST") == {
        "trnm": "CNSRLST",
        "return_code": 0,
        "return_msg": "",
        "data": [["0", "등락률 2% 이상"], ["1", "거래량 급증"], ["2", "시가 돌파"]],
    }
    await ws.close()


async def test_cnsrreq_before_cnsrlst_gets_no_reply_only_pings(kbox: SandboxThread) -> None:
    ws = await login(kbox)
    await ws.send(json.dumps({"trnm": "CNSRREQ", "seq": "2", "search_type": "0", "stex_tp": "K"}))
    seen: list[dict] = []
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            raw = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
        except TimeoutError:
            break
        seen.append(json.loads(raw))
        await ws.send(raw)
    assert seen and all(m == {"trnm": "PING"} for m in seen)
    await ws.send(json.dumps({"trnm": "CNSRLST"}))
    assert (await reply_to(ws, "CNSRLST"))["return_code"] == 0
    await ws.close()


async def test_search_type_0_pages_with_the_reference_number_format(tmp_path: Path) -> None:
    rules = {"conditions": [{"seq": "4", "name": "전체", "rule": "change_rate", "min_rate": -100}]}
    # A generous heartbeat: evaluating every stock's state for a page can hold the box's loop on a loaded machine.
    box = start_box(
        kiwoom_conditions=write_rules(tmp_path, rules), kiwoom_condition_page_size=4, kiwoom_ping_timeout=15.0
    )
    try:
        set_clock(box, "09:30:00")
        with admin(box) as client:
            client.post("/sandbox/clock", json={"speed": 0.001})  # practically frozen
        core = box.server.core  # type: ignore[union-attr]
        ws = await listed(box)
        rows: list[dict] = []
        request = {"trnm": "CNSRREQ", "seq": "4", "search_type": "0", "stex_tp": "K", "cont_yn": "N", "next_key": ""}
        pages = 0
        while True:
            await ws.send(json.dumps(request))
            reply = await reply_to(ws, "CNSRREQ", timeout=60.0)  # every stock's state at real density, loaded box
            assert list(reply) == ["trnm", "seq", "cont_yn", "next_key", "return_code", "return_msg", "data"]
            assert reply["seq"] == "4  " and reply["return_code"] == 0 and len(reply["data"]) <= 4
            rows.extend(reply["data"])
            pages += 1
            if reply["cont_yn"] != "Y":
                assert reply["next_key"] == ""
                break
            request = dict(request, cont_yn="Y", next_key=reply["next_key"])
        await ws.send(json.dumps({"trnm": "CNSRREQ", "seq": "9", "search_type": "0", "stex_tp": "K"}))
        unknown = await reply_to(ws, "CNSRREQ")
        assert unknown["return_code"] == 1 and unknown["seq"] == "9"
        await ws.close()  # before the checks below, which answer no PINGs
        universe = list(core.market.tapes)
        assert [r["9001"] for r in rows] == ["A" + c for c in universe] and pages == -(-len(universe) // 4) > 1
        now_ms = core.clock.now_ms()
        for row in rows:
            tape = core.market.tapes[row["9001"][1:]]
            st = tape.state_at(now_ms)
            change = st.last - tape.prev_close
            assert set(row) == {"9001", "302", "10", "25", "11", "12", "13", "16", "17", "18"}
            assert all(len(row[k]) == 9 for k in ("10", "11", "12", "13", "16", "17", "18"))
            assert row["302"] == tape.instrument.name and int(row["10"]) == st.last
            assert int(row["11"]) == change and row["11"][0] == ("+" if change > 0 else "-" if change < 0 else "0")
            assert abs(int(row["12"]) - round(change * 10000 / tape.prev_close)) <= 1
            assert (int(row["13"]), int(row["16"]), int(row["17"]), int(row["18"])) == (
                st.volume,
                st.open,
                st.high,
                st.low,
            )
    finally:
        box.stop()


async def test_realtime_alerts_follow_the_replay_and_clear_stops_them(kbox: SandboxThread) -> None:
    """search_type 1: the initial list plus I/D alerts reproduce membership exactly, within seconds (on the
    recorded session, whose 50 stocks enter and leave the condition often enough; the synthetic market's
    few stocks may not within the window)."""
    from ..conftest import requires_data

    requires_data()
    set_clock(kbox, "09:10:00")
    core = kbox.server.core  # type: ignore[union-attr]
    ws = await listed(kbox)
    await ws.send(json.dumps({"trnm": "CNSRREQ", "seq": "2", "search_type": "1", "stex_tp": "K"}))
    initial = await reply_to(ws, "CNSRREQ")
    assert set(initial) == {"trnm", "seq", "return_code", "return_msg", "data"} and initial["seq"] == "2"
    members = {d["jmcode"][1:] for d in initial["data"]}
    assert all(d["jmcode"][0] == "A" and len(d["jmcode"]) == 7 for d in initial["data"])
    alerts: list[dict] = []
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        msg = await recv_json(ws, 3.0)
        if msg["trnm"] == "REAL":
            alerts.extend(msg["data"])
    assert any(a["values"]["843"] == "I" for a in alerts) and any(a["values"]["843"] == "D" for a in alerts)
    for a in alerts:
        v = a["values"]
        assert (a["type"], a["name"], a["item"]) == ("02", "조건검색", v["9001"])
        assert v["841"] == "2" and len(v["20"]) == 6 and v.get("907", "1") in "12"
        assert v["9081"] == "1"  # 거래소구분 of a condition asked with stex_tp K (kiwoom-api.md A6)
        code = v["9001"]
        if v["843"] == "I":
            assert code not in members
            members.add(code)
        else:
            assert code in members
            members.discard(code)
    # Freeze the clock: after the last evaluation the client's view equals the rule recomputed from the tape.
    with admin(kbox) as client:
        client.post("/sandbox/clock", json={"speed": 0.001})
    await asyncio.sleep(0.3)
    while True:
        try:
            msg = await recv_json(ws, 0.5)
        except TimeoutError:
            break
        for a in msg.get("data", []):
            code = a["values"]["9001"]
            members.add(code) if a["values"]["843"] == "I" else members.discard(code)
    at = core.conditions.evaluated_ms
    expected = {c for c, t in core.market.tapes.items() if (s := t.state_at(at)).count and s.last > s.open}
    assert members == expected
    await ws.send(json.dumps({"trnm": "CNSRCLR", "seq": "2"}))
    assert await reply_to(ws, "CNSRCLR") == {"trnm": "CNSRCLR", "seq": "2", "return_code": 0, "return_msg": ""}
    with admin(kbox) as client:
        client.post("/sandbox/clock", json={"speed": 60})
    quiet_until = time.monotonic() + 1.5
    while time.monotonic() < quiet_until:
        try:
            msg = await recv_json(ws, quiet_until - time.monotonic())
        except TimeoutError:
            break
        assert msg["trnm"] != "REAL"
    await ws.close()


async def test_mute_fault_holds_back_alerts_while_evaluation_continues(kbox: SandboxThread) -> None:
    set_clock(kbox, "09:40:00")
    ws = await listed(kbox)
    await ws.send(json.dumps({"trnm": "CNSRREQ", "seq": "2", "search_type": "1", "stex_tp": "A"}))
    await reply_to(ws, "CNSRREQ")
    with admin(kbox) as client:
        body = client.post("/sandbox/faults", json={"name": "kiwoom_mute_conditions", "seconds": 1.5}).json()
    assert body["applied"] == "kiwoom_mute_conditions" and body["kiwoom_mute_conditions"]["seconds_left"] > 1
    engine = kbox.server.core.conditions  # type: ignore[union-attr]
    hub = kbox.server.core.kiwoom_hub  # type: ignore[union-attr]
    await asyncio.sleep(0.2)  # alerts queued before the fault took effect
    while True:
        try:
            await recv_json(ws, 0.05)
        except TimeoutError:
            break
    muted_before, first_eval = hub.alerts_muted, engine.evaluated_ms
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            msg = await recv_json(ws, deadline - time.monotonic())
        except TimeoutError:
            break
        assert msg["trnm"] != "REAL"
    assert engine.evaluated_ms > first_eval and hub.alerts_muted > muted_before
    await asyncio.sleep(0.3)
    resumed: list[dict] = []
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and not resumed:
        msg = await recv_json(ws, 3.0)
        if msg["trnm"] == "REAL":
            resumed = msg["data"]
    assert resumed and all(a["item"].endswith("_AL") for a in resumed)
    await ws.close()


async def test_sandbox_fault_command_knows_the_mute_fault(kbox: SandboxThread) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{kbox.ports.kiwoom_rest}", timeout=5) as client:
        refused = client.post("/sandbox/faults", json={"name": "kiwoom_mute_conditions", "seconds": 1})
        assert refused.status_code == 403
    with admin(kbox) as client:
        bad = client.post("/sandbox/faults", json={"name": "kiwoom_mute_conditions"})
        assert bad.status_code == 400 and "seconds" in bad.json()["error"]
