"""Trading TRs over real sockets with plain clients: cash orders, balance, daily fills and the encrypted
execution notices (kis-api.md §5.7, §5.8, §6.7). No Hoga client code on the wire path."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets

from apps.sandbox.config import AppCredential
from apps.sandbox.layouts import H0STCNI0_FIELDS, parse_frame
from apps.sandbox.server import SandboxThread

from .conftest import ADMIN, base_config, data_headers, fresh_credential, get_token, rest_url, shared_market

T = "/uapi/domestic-stock/v1/trading"
ACCOUNT = {"CANO": "50001234", "ACNT_PRDT_CD": "01"}


@pytest.fixture(scope="module")
def tradebox() -> Iterator[SandboxThread]:
    cfg = base_config(speed=30.0, paper_rate_limit=50.0)
    with SandboxThread(cfg, shared_market(cfg)) as running:
        httpx.post(
            f"{rest_url(running, 'real')}/sandbox/clock", json={"time": "10:00:00"}, headers={"X-Sandbox-Admin": ADMIN}
        )
        yield running


def session(box: SandboxThread, mode: str) -> tuple[httpx.Client, AppCredential, str]:
    cred = fresh_credential(mode)
    c = httpx.Client(base_url=rest_url(box, mode), timeout=10)
    return c, cred, get_token(c, cred)


def order(c: httpx.Client, cred: AppCredential, token: str, tr_id: str, **body: str) -> httpx.Response:
    payload = {**ACCOUNT, "PDNO": "005930", "ORD_DVSN": "00", "ORD_QTY": "1", "ORD_UNPR": "0", **body}
    return c.post(f"{T}/order-cash", json=payload, headers=data_headers(token, cred, tr_id))


def quote_price(c: httpx.Client, cred: AppCredential, token: str) -> tuple[int, int, int]:
    r = c.get(
        "/uapi/domestic-stock/v1/quotations/inquire-price",
        params={"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"},
        headers=data_headers(token, cred, "FHKST01010100"),
    )
    out = r.json()["output"]
    return int(out["askp"]), int(out["stck_mxpr"]), int(out["stck_llam"])


def test_order_validation_refuses_with_codes_and_changes_nothing(tradebox: SandboxThread) -> None:
    c, cred, token = session(tradebox, "real")
    ask, upper, lower = quote_price(c, cred, token)
    cases = [
        ({"ORD_UNPR": str(ask + 1)}, "APBK0907"),  # off the tick grid
        ({"ORD_UNPR": str(upper + 1000)}, "APBK0908"),  # above the +30 % limit (on the grid)
        ({"ORD_UNPR": str(lower - 1000)}, "APBK0908"),
        ({"ORD_QTY": "0", "ORD_UNPR": str(ask)}, "APBK0905"),
        ({"ORD_QTY": "-3", "ORD_UNPR": str(ask)}, "APBK0905"),
        ({"ORD_DVSN": "99", "ORD_UNPR": str(ask)}, "APBK0903"),
        ({"EXCG_ID_DVSN_CD": "XYZ", "ORD_UNPR": str(ask)}, "APBK1681"),
        ({"PDNO": "999999", "ORD_UNPR": str(ask)}, "APBK0656"),
        ({"ORD_QTY": "100000", "ORD_UNPR": str(ask)}, "APBK0952"),  # more than the deposit buys
        ({"CANO": "12ab", "ORD_UNPR": str(ask)}, "OPSQ2000"),
    ]
    for body, code in cases:
        r = order(c, cred, token, "TTTC0012U", **body)
        assert r.status_code == 200 and r.json()["rt_cd"] == "1" and r.json()["msg_cd"] == code, (body, r.text)
    sell = order(c, cred, token, "TTTC0011U", ORD_UNPR=str(ask))
    assert sell.json()["msg_cd"] == "APBK0400"  # nothing to sell
    ccld = c.get(
        f"{T}/inquire-daily-ccld",
        params={**ACCOUNT, "INQR_STRT_DT": "20000101", "INQR_END_DT": "20991231", "SLL_BUY_DVSN_CD": "00"},
        headers=data_headers(token, cred, "TTTC0081R"),
    ).json()
    assert ccld["rt_cd"] == "0" and ccld["output1"] == []


def test_paper_refuses_nxt_and_sor_but_takes_krx(tradebox: SandboxThread) -> None:
    c, cred, token = session(tradebox, "paper")
    ask, _, _ = quote_price(c, cred, token)
    for venue in ("NXT", "SOR"):
        r = order(c, cred, token, "VTTC0012U", EXCG_ID_DVSN_CD=venue, ORD_UNPR=str(ask))
        assert r.json()["msg_cd"] == "APBK1680"
    ok = order(c, cred, token, "VTTC0012U", EXCG_ID_DVSN_CD="KRX", ORD_UNPR=str(ask))
    body = ok.json()
    assert body["rt_cd"] == "0" and body["msg_cd"] == "40600000"
    assert set(body["output"]) == {"KRX_FWDG_ORD_ORGNO", "ODNO", "ORD_TMD"} and len(body["output"]["ODNO"]) == 10
    # The real listener's tr_id is refused on the paper listener.
    assert order(c, cred, token, "TTTC0012U").json()["msg_cd"] == "OPSQ0002"


def test_marketable_buy_fills_from_the_book_then_balance_and_inquiry_agree(tradebox: SandboxThread) -> None:
    c, cred, token = session(tradebox, "real")
    ask, _, _ = quote_price(c, cred, token)
    r = order(c, cred, token, "TTTC0012U", ORD_QTY="2", ORD_UNPR=str(ask), EXCG_ID_DVSN_CD="KRX")
    body = r.json()
    assert body["rt_cd"] == "0" and body["msg_cd"] == "APBK0013", body
    odno = body["output"]["ODNO"]
    deadline = time.monotonic() + 20
    while True:
        ccld = c.get(
            f"{T}/inquire-daily-ccld",
            params={**ACCOUNT, "INQR_STRT_DT": "20260220", "INQR_END_DT": "20260220", "ODNO": odno},
            headers=data_headers(token, cred, "TTTC0081R"),
        )
        row = ccld.json()["output1"][0]
        if row["rmn_qty"] == "0" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert ccld.headers["tr_cont"] == "D"
    assert row["odno"] == odno and row["tot_ccld_qty"] == "2" and row["rmn_qty"] == "0"
    assert int(row["avg_prvs"]) <= ask and row["excg_id_dvsn_cd"] == "KRX" and row["sll_buy_dvsn_cd"] == "02"
    bal = c.get(
        f"{T}/inquire-balance",
        params={
            **ACCOUNT,
            "AFHR_FLPR_YN": "N",
            "OFL_YN": "",
            "INQR_DVSN": "02",
            "UNPR_DVSN": "01",
            "FUND_STTL_ICLD_YN": "N",
            "FNCG_AMT_AUTO_RDPT_YN": "N",
            "PRCS_DVSN": "00",
            "CTX_AREA_FK100": "",
            "CTX_AREA_NK100": "",
        },
        headers=data_headers(token, cred, "TTTC8434R"),
    ).json()
    holding = next(h for h in bal["output1"] if h["pdno"] == "005930")
    assert holding["hldg_qty"] == "2" and int(holding["pchs_amt"]) == int(row["tot_ccld_amt"])
    summary = bal["output2"][0]
    assert int(summary["dnca_tot_amt"]) == 100_000_000 - int(row["tot_ccld_amt"])
    assert int(summary["tot_evlu_amt"]) == int(summary["dnca_tot_amt"]) + int(summary["scts_evlu_amt"])
    # Selling more than is held is refused; selling what is held is accepted.
    assert order(c, cred, token, "TTTC0011U", ORD_QTY="3", ORD_DVSN="01").json()["msg_cd"] == "APBK0400"
    assert order(c, cred, token, "TTTC0011U", ORD_QTY="2", ORD_DVSN="01").json()["rt_cd"] == "0"


@pytest.mark.asyncio
async def test_execution_notices_are_encrypted_26_field_acks_and_fills(tradebox: SandboxThread) -> None:
    c, cred, token = session(tradebox, "real")
    key = httpx.post(
        f"{rest_url(tradebox, 'real')}/oauth2/Approval",
        json={"grant_type": "client_credentials", "appkey": cred.appkey, "secretkey": cred.appsecret},
    ).json()["approval_key"]
    async with websockets.connect(f"ws://127.0.0.1:{tradebox.ports.real_ws}/tryitout") as ws:
        msg = {
            "header": {"approval_key": key, "custtype": "P", "tr_type": "1", "content-type": "utf-8"},
            "body": {"input": {"tr_id": "H0STCNI0", "tr_key": "hogauser1"}},
        }
        await ws.send(json.dumps(msg))
        ack = json.loads(await ws.recv())
        assert ack["header"] == {"tr_id": "H0STCNI0", "tr_key": "hogauser1", "encrypt": "Y"}
        aes_key, aes_iv = ack["body"]["output"]["key"], ack["body"]["output"]["iv"]
        ask, _, _ = await asyncio.to_thread(quote_price, c, cred, token)
        placed = await asyncio.to_thread(order, c, cred, token, "TTTC0012U", ORD_QTY="1", ORD_UNPR=str(ask))
        odno = placed.json()["output"]["ODNO"]
        records = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(r["CNTG_YN"] == "2" for r in records):
            raw = await asyncio.wait_for(ws.recv(), 10)
            if raw.startswith("1|H0STCNI0|"):
                frame = parse_frame(raw, aes_key, aes_iv)
                assert frame.encrypted and frame.count == 1 and len(frame.records[0]) == len(H0STCNI0_FIELDS) == 26
                records.extend(frame.records)
    receipt, fill = records[0], next(r for r in records if r["CNTG_YN"] == "2")
    assert receipt["CNTG_YN"] == "1" and receipt["ACPT_YN"] == "1" and receipt["ODER_NO"] == odno
    assert receipt["CUST_ID"] == "hogauser1" and receipt["CNTG_QTY"] == "1" and receipt["CNTG_UNPR"] == str(ask)
    assert fill["ODER_NO"] == odno and fill["SELN_BYOV_CLS"] == "02" and fill["ORD_EXG_GB"] == "1"
    assert int(fill["CNTG_UNPR"]) <= ask and fill["STCK_SHRN_ISCD"] == "005930" and fill["RFUS_YN"] == "0"


@pytest.mark.asyncio
async def test_paper_listener_refuses_nxt_and_integrated_feeds(tradebox: SandboxThread) -> None:
    cred = fresh_credential("paper")
    key = httpx.post(
        f"{rest_url(tradebox, 'paper')}/oauth2/Approval",
        json={"grant_type": "client_credentials", "appkey": cred.appkey, "secretkey": cred.appsecret},
    ).json()["approval_key"]
    async with websockets.connect(f"ws://127.0.0.1:{tradebox.ports.paper_ws}/tryitout") as ws:
        for tr_id, expect in (("H0NXCNT0", "OPSP8991"), ("H0UNASP0", "OPSP8991"), ("H0STCNI0", "OPSP8991")):
            msg = {
                "header": {"approval_key": key, "custtype": "P", "tr_type": "1", "content-type": "utf-8"},
                "body": {"input": {"tr_id": tr_id, "tr_key": "005930"}},
            }
            await ws.send(json.dumps(msg))
            body = json.loads(await ws.recv())["body"]
            assert (body["rt_cd"], body["msg_cd"]) == ("1", expect)
