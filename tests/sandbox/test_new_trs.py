"""The TRs added for investor flows, statements, venues, expected prices and market operation, each with a plain
client (httpx, websockets) over real sockets, and the header bytes on the wire (raw socket)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets

from apps.sandbox.layouts import LAYOUTS, parse_frame
from apps.sandbox.server import SandboxThread

from .conftest import ADMIN, base_config, data_headers, fresh_credential, get_token, rest_url, shared_market

Q = "/uapi/domestic-stock/v1/quotations"
F = "/uapi/domestic-stock/v1/finance"
STOCK = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxThread]:
    cfg = base_config(speed=30.0, paper_rate_limit=50.0)
    with SandboxThread(cfg, shared_market(cfg)) as running:
        yield running


def jump(box: SandboxThread, when: str, speed: float | None = None) -> None:
    body: dict[str, object] = {"time": when} if speed is None else {"time": when, "speed": speed}
    httpx.post(f"{rest_url(box, 'real')}/sandbox/clock", json=body, headers={"X-Sandbox-Admin": ADMIN})


def authed(box: SandboxThread, mode: str = "real") -> tuple[httpx.Client, object, str]:
    cred = fresh_credential(mode)
    c = httpx.Client(base_url=rest_url(box, mode), timeout=10)
    return c, cred, get_token(c, cred)


def get(c: httpx.Client, cred: object, token: str, path: str, tr_id: str, **params: str) -> httpx.Response:
    return c.get(path, params=params, headers=data_headers(token, cred, tr_id))  # type: ignore[arg-type]


def test_header_bytes_on_the_wire(box: SandboxThread) -> None:
    c, cred, token = authed(box)
    raw = (
        f"GET {Q}/inquire-price?FID_COND_MRKT_DIV_CODE=J&FID_INPUT_ISCD=005930 HTTP/1.1\r\nHost: x\r\n"
        f"authorization: Bearer {token}\r\nappkey: {cred.appkey}\r\nappsecret: {cred.appsecret}\r\n"  # type: ignore[attr-defined]
        "tr_id: FHKST01010100\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", box.ports.real_rest), timeout=5) as sock:
        sock.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
    head = data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    names = [line.split(":", 1)[0] for line in head[1:]]
    assert head[1] == "Content-Type: application/json; charset=utf-8"
    assert names[:4] == ["Content-Type", "tr_id", "tr_cont", "gt_uid"]
    # KIS's sample client makes a named tuple of every all-lower-case header name: each must be an identifier.
    assert all(n.isidentifier() for n in names if n.islower())
    # Errors carry the same headers.
    bad = get(c, cred, token, f"{Q}/inquire-price", "FHKST01010100", FID_COND_MRKT_DIV_CODE="Q", FID_INPUT_ISCD="1")
    assert [k.decode() for k, _ in bad.headers.raw][:4] == ["Content-Type", "tr_id", "tr_cont", "gt_uid"]


def test_statements_are_synthetic_flagged_and_consistent(box: SandboxThread) -> None:
    c, cred, token = authed(box)
    out = {}
    for name, tr_id in (("balance-sheet", "FHKST66430100"), ("income-statement", "FHKST66430200"),
                        ("financial-ratio", "FHKST66430300"), ("profit-ratio", "FHKST66430400"),
                        ("stability-ratio", "FHKST66430600"), ("growth-ratio", "FHKST66430800")):  # fmt: skip
        r = get(c, cred, token, f"{F}/{name}", tr_id, FID_DIV_CLS_CODE="0", **STOCK)
        assert r.status_code == 200 and r.json()["rt_cd"] == "0" and r.headers["X-Sandbox-Synthetic"]
        out[name] = r.json()["output"]
    bs, inc, ratio = out["balance-sheet"], out["income-statement"], out["financial-ratio"]
    assert bs[0]["stac_yymm"] < "202602" and [r["stac_yymm"] for r in bs] == sorted(
        (r["stac_yymm"] for r in bs), reverse=True
    )
    for row in bs:
        assert abs(float(row["total_aset"]) - float(row["total_lblt"]) - float(row["total_cptl"])) < 0.02
    # Retained earnings grow by the year's income less the dividend: equity rises with positive income.
    assert float(bs[0]["total_cptl"]) > float(bs[-1]["total_cptl"])
    for i, row in zip(inc, ratio, strict=False):
        assert i["stac_yymm"] == row["stac_yymm"]
        assert abs(float(i["sale_totl_prfi"]) - (float(i["sale_account"]) - float(i["sale_cost"]))) < 0.02
    quarterly = get(c, cred, token, f"{F}/income-statement", "FHKST66430200", FID_DIV_CLS_CODE="1", **STOCK).json()
    assert len(quarterly["output"]) > len(inc)
    bad = get(c, cred, token, f"{F}/balance-sheet", "FHKST66430100", FID_DIV_CLS_CODE="7", **STOCK).json()
    assert bad["rt_cd"] == "1" and bad["msg_cd"] == "OPSQ2002"


def test_investor_flows_today_only_after_the_close(box: SandboxThread) -> None:
    c, cred, token = authed(box)
    jump(box, "11:00:00")
    rows = get(c, cred, token, f"{Q}/inquire-investor", "FHKST01010900", **STOCK).json()["output"]
    assert len(rows) == 30 and rows[0]["stck_bsop_date"] == "20260220" and rows[0]["frgn_ntby_qty"] == ""
    day = rows[1]
    assert int(day["prsn_ntby_qty"]) == int(day["prsn_shnu_vol"]) - int(day["prsn_seln_vol"])
    jump(box, "15:45:00")
    after = get(c, cred, token, f"{Q}/inquire-investor", "FHKST01010900", **STOCK).json()["output"]
    assert after[0]["frgn_ntby_qty"] != ""
    daily = get(c, cred, token, f"{Q}/investor-trade-by-stock-daily", "FHPTJ04160001",
                FID_INPUT_DATE_1="20260210", FID_ORG_ADJ_PRC="", FID_ETC_CLS_CODE="", **STOCK).json()  # fmt: skip
    rows2 = daily["output2"]
    assert rows2[0]["stck_bsop_date"] <= "20260210" and len(rows2) == 30
    for r in rows2:
        subs = sum(int(r[k]) for k in r if k.endswith(("_ntby_qty", "_ntby_vol")) and k.split("_ntby")[0] in
                   ("scrt", "ivtr", "pe_fund", "bank", "insu", "mrbn", "fund", "etc_orgt"))  # fmt: skip
        assert subs == int(r["orgn_ntby_qty"])
        nets = int(r["prsn_ntby_qty"]) + int(r["frgn_ntby_qty"]) + int(r["orgn_ntby_qty"]) + int(r["etc_corp_ntby_vol"])
        assert nets == 0


def test_venue_quotes_and_paper_refusal(box: SandboxThread) -> None:
    jump(box, "11:00:00")
    c, cred, token = authed(box)
    krx = get(c, cred, token, f"{Q}/inquire-price", "FHKST01010100", **STOCK).json()["output"]
    nxt = get(
        c, cred, token, f"{Q}/inquire-price", "FHKST01010100", FID_COND_MRKT_DIV_CODE="NX", FID_INPUT_ISCD="005930"
    )
    un = get(
        c, cred, token, f"{Q}/inquire-price", "FHKST01010100", FID_COND_MRKT_DIV_CODE="UN", FID_INPUT_ISCD="005930"
    )
    assert "nxt" in nxt.headers["X-Sandbox-Synthetic"]
    vol = int(krx["acml_vol"]), int(nxt.json()["output"]["acml_vol"]), int(un.json()["output"]["acml_vol"])
    assert 0 < vol[1] < vol[0] and abs(vol[2] - vol[0] - vol[1]) <= vol[0] // 100
    p, pcred, ptoken = authed(box, "paper")
    refused = get(
        p, pcred, ptoken, f"{Q}/inquire-price", "FHKST01010100", FID_COND_MRKT_DIV_CODE="NX", FID_INPUT_ISCD="005930"
    )
    assert refused.json()["msg_cd"] == "OPSQ2001"
    info = get(c, cred, token, f"{Q}/search-info", "CTPF1604R", PDNO="005930", PRDT_TYPE_CD="300").json()["output"]
    assert info["shtn_pdno"] == "005930" and info["std_pdno"] == "KR7005930003"
    none = get(c, cred, token, f"{Q}/search-info", "CTPF1604R", PDNO="999999", PRDT_TYPE_CD="300").json()
    assert none["rt_cd"] == "7"


def test_expected_price_converges_to_the_opening_print(box: SandboxThread) -> None:
    c, cred, token = authed(box)
    tape = box.server.core.market.tapes["005930"]  # type: ignore[union-attr]
    opening = tape.bar_ticks(0)[0]
    # Nearly stopped clock: at the module's speed a loaded machine lets the sandbox pass 09:00 before the query.
    jump(box, "08:59:59", speed=0.01)
    try:
        out = get(c, cred, token, f"{Q}/inquire-asking-price-exp-ccn", "FHKST01010200", **STOCK).json()
    finally:
        jump(box, "10:00:00", speed=30.0)
    assert int(out["output2"]["antc_cnpr"]) == opening.price and int(out["output2"]["antc_vol"]) > 0
    out = get(c, cred, token, f"{Q}/inquire-asking-price-exp-ccn", "FHKST01010200", **STOCK).json()
    assert out["output2"]["antc_cnpr"] == "0" and int(out["output1"]["askp1"]) > int(out["output1"]["bidp1"])


@pytest.mark.asyncio
async def test_ws_venue_expected_and_market_operation_frames(box: SandboxThread) -> None:
    cred = fresh_credential("real")
    body = {"grant_type": "client_credentials", "appkey": cred.appkey, "secretkey": cred.appsecret}
    key = httpx.post(f"{rest_url(box, 'real')}/oauth2/Approval", json=body).json()["approval_key"]
    await asyncio.to_thread(jump, box, "08:58:00")
    wanted = ("H0NXCNT0", "H0UNCNT0", "H0NXASP0", "H0UNASP0", "H0STANC0", "H0STMKO0")
    seen: dict[str, dict] = {}
    async with websockets.connect(f"ws://127.0.0.1:{box.ports.real_ws}/tryitout") as ws:
        for tr in wanted:
            msg = {"header": {"approval_key": key, "custtype": "P", "tr_type": "1", "content-type": "utf-8"},
                   "body": {"input": {"tr_id": tr, "tr_key": "005930"}}}  # fmt: skip
            await ws.send(json.dumps(msg))
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and len(seen) < len(wanted):
            raw = await asyncio.wait_for(ws.recv(), 10)
            if '"PINGPONG"' in raw:
                await ws.send(raw)
            elif raw[0] == "0":
                frame = parse_frame(raw)
                assert all(len(r) == len(LAYOUTS[frame.tr_id]) for r in frame.records)
                seen.setdefault(frame.tr_id, frame.records[0])
    assert set(seen) == set(wanted), set(wanted) - set(seen)
    assert len(seen["H0NXASP0"]) == 65 and len(seen["H0STMKO0"]) == 11
    assert seen["H0STANC0"]["HOUR_CLS_CODE"] == "B" and seen["H0STMKO0"]["MKOP_CLS_CODE"] in ("112", "110")
