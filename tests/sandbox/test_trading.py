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


def test_real_listener_takes_nxt_and_sor_orders_and_the_inquiry_names_the_venue(tradebox: SandboxThread) -> None:
    """EXCG_ID_DVSN_CD NXT and SOR on the real server (kis-api.md §5.7): accepted, filled against NXT's book
    (NXT) or the better of the two (SOR), and the daily-fills row carries the venue asked for."""
    c, cred, token = session(tradebox, "real")
    ask, _, _ = quote_price(c, cred, token)
    for venue in ("NXT", "SOR"):
        placed = order(c, cred, token, "TTTC0012U", ORD_QTY="1", ORD_UNPR=str(ask), EXCG_ID_DVSN_CD=venue).json()
        assert (placed["rt_cd"], placed["msg_cd"]) == ("0", "APBK0013"), placed
        odno = placed["output"]["ODNO"]
        deadline = time.monotonic() + 20
        while True:
            rows = c.get(
                f"{T}/inquire-daily-ccld",
                params={
                    **ACCOUNT,
                    "INQR_STRT_DT": "20260220",
                    "INQR_END_DT": "20260220",
                    "ODNO": odno,
                    "EXCG_ID_DVSN_CD": "ALL",
                },  # fmt: skip
                headers=data_headers(token, cred, "TTTC0081R"),
            ).json()["output1"]
            if (rows and rows[0]["rmn_qty"] == "0") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert rows[0]["odno"] == odno and rows[0]["excg_id_dvsn_cd"] == venue
        assert rows[0]["tot_ccld_qty"] == "1" and 0 < int(rows[0]["avg_prvs"]) <= ask
    bad = order(c, cred, token, "TTTC0012U", ORD_UNPR=str(ask), EXCG_ID_DVSN_CD="XYZ").json()
    assert (bad["rt_cd"], bad["msg_cd"]) == ("1", "APBK1681")


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
async def test_paper_execution_notices_are_h0stcni9_on_the_paper_listener(tradebox: SandboxThread) -> None:
    """The paper server's notices: H0STCNI9 (kis-api.md §6.7), encrypted with the key and iv of its own ack, for a
    VTTC0012U order; the same 26 fields as H0STCNI0."""
    c, cred, token = session(tradebox, "paper")
    key = httpx.post(
        f"{rest_url(tradebox, 'paper')}/oauth2/Approval",
        json={"grant_type": "client_credentials", "appkey": cred.appkey, "secretkey": cred.appsecret},
    ).json()["approval_key"]
    async with websockets.connect(f"ws://127.0.0.1:{tradebox.ports.paper_ws}/tryitout") as ws:
        msg = {
            "header": {"approval_key": key, "custtype": "P", "tr_type": "1", "content-type": "utf-8"},
            "body": {"input": {"tr_id": "H0STCNI9", "tr_key": "hogapaper"}},
        }
        await ws.send(json.dumps(msg))
        ack = json.loads(await ws.recv())
        assert ack["header"] == {"tr_id": "H0STCNI9", "tr_key": "hogapaper", "encrypt": "Y"}
        assert ack["body"]["rt_cd"] == "0"
        aes_key, aes_iv = ack["body"]["output"]["key"], ack["body"]["output"]["iv"]
        ask, _, _ = await asyncio.to_thread(quote_price, c, cred, token)
        placed = await asyncio.to_thread(order, c, cred, token, "VTTC0012U", ORD_QTY="1", ORD_UNPR=str(ask))
        odno = placed.json()["output"]["ODNO"]
        records = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(r["CNTG_YN"] == "2" for r in records):
            raw = await asyncio.wait_for(ws.recv(), 10)
            assert not raw.startswith("1|H0STCNI0|")
            if raw.startswith("1|H0STCNI9|"):
                frame = parse_frame(raw, aes_key, aes_iv)
                assert frame.encrypted and frame.tr_id == "H0STCNI9" and len(frame.records[0]) == 26
                records.extend(frame.records)
    receipt, fill = records[0], next(r for r in records if r["CNTG_YN"] == "2")
    assert (receipt["ACPT_YN"], receipt["ODER_NO"], receipt["CUST_ID"]) == ("1", odno, "hogapaper")
    assert fill["ODER_NO"] == odno and fill["SELN_BYOV_CLS"] == "02" and int(fill["CNTG_UNPR"]) <= ask


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


def test_modify_and_cancel_take_the_open_part_off_the_book_with_orders_of_their_own(tradebox: SandboxThread) -> None:
    c, cred, token = session(tradebox, "paper")
    _, _, lower = quote_price(c, cred, token)
    placed = order(c, cred, token, "VTTC0012U", ORD_QTY="5", ORD_UNPR=str(lower))  # rests: nothing prints that low
    odno = placed.json()["output"]["ODNO"]

    def revise(tr_id: str = "VTTC0013U", **body: str) -> dict:
        payload = {**ACCOUNT, "KRX_FWDG_ORD_ORGNO": "06010", "ORGN_ODNO": odno, "ORD_DVSN": "00",
                   "RVSE_CNCL_DVSN_CD": "02", "ORD_QTY": "0", "ORD_UNPR": "0", "QTY_ALL_ORD_YN": "Y",
                   "EXCG_ID_DVSN_CD": "KRX", **body}  # fmt: skip
        return c.post(f"{T}/order-rvsecncl", json=payload, headers=data_headers(token, cred, tr_id)).json()

    for body, msg_cd in [
        ({"ORGN_ODNO": "9999999999"}, "APBK1031"),  # no such order
        ({"RVSE_CNCL_DVSN_CD": "03"}, "APBK1032"),
        ({"QTY_ALL_ORD_YN": "N", "ORD_QTY": "6"}, "APBK0905"),  # more than is open
        ({"QTY_ALL_ORD_YN": "N", "ORD_QTY": "x"}, "APBK0905"),
        ({"RVSE_CNCL_DVSN_CD": "01", "ORD_UNPR": str(lower + 1)}, "APBK0907"),  # a modify off the tick grid
    ]:
        answer = revise(**body)
        assert (answer["rt_cd"], answer["msg_cd"]) == ("1", msg_cd), body
    assert revise("TTTC0013U")["msg_cd"] == "OPSQ0002"  # the real TR on the paper server

    part = revise(QTY_ALL_ORD_YN="N", ORD_QTY="2")
    assert (part["rt_cd"], part["msg_cd"]) == ("0", "40650000") and part["output"]["ODNO"] != odno
    modified = revise(RVSE_CNCL_DVSN_CD="01", ORD_UNPR=str(lower))  # the other 3 move to an order of their own
    assert modified["msg_cd"] == "40640000"
    modify_no = modified["output"]["ODNO"]
    assert revise(ORGN_ODNO=modify_no)["rt_cd"] == "0"
    assert revise()["msg_cd"] == "APBK0344"  # nothing open any more

    rows = c.get(
        f"{T}/inquire-daily-ccld",
        params={
            **ACCOUNT,
            "INQR_STRT_DT": "20260220",
            "INQR_END_DT": "20260220",
            "SLL_BUY_DVSN_CD": "00",
            "CCLD_DVSN": "00",
            "EXCG_ID_DVSN_CD": "ALL",
        },  # fmt: skip
        headers=data_headers(token, cred, "VTTC0081R"),
    ).json()["output1"]
    by_no = {r["odno"]: r for r in rows}
    assert len(rows) == 4
    original = by_no[odno]
    assert (original["cnc_cfrm_qty"], original["rmn_qty"], original["orgn_odno"], original["cncl_yn"]) == (
        "5", "0", "", "N")  # fmt: skip
    cancel = by_no[part["output"]["ODNO"]]
    assert (cancel["orgn_odno"], cancel["cncl_yn"], cancel["ord_qty"], cancel["rmn_qty"]) == (odno, "Y", "2", "0")
    modify = by_no[modify_no]
    assert (modify["orgn_odno"], modify["cncl_yn"], modify["ord_qty"], modify["cnc_cfrm_qty"]) == (odno, "N", "3", "3")
    open_rows = c.get(
        f"{T}/inquire-daily-ccld",
        params={**ACCOUNT, "INQR_STRT_DT": "20260220", "INQR_END_DT": "20260220", "CCLD_DVSN": "02"},
        headers=data_headers(token, cred, "VTTC0081R"),
    ).json()["output1"]
    assert open_rows == []


def test_a_cancel_confirm_notice_names_the_original_and_the_cancelled_quantity() -> None:
    from apps.brokers.kis.orders import parse_notice_record
    from apps.sandbox.orders import SandboxOrder, notice_fields

    cancel = SandboxOrder(
        number="0000000009", account="5000123401", appkey="k", mode="paper", code="005930", name="삼성전자",
        side="02", ord_dvsn="00", quantity=2, price=50_000, venue="KRX", accepted_ms=36_000_000, tr_id="VTTC0013U",
        cancelled=2, original="0000000007", kind="cancel",
    )  # fmt: skip
    fields = notice_fields(cancel, None, 36_000_000, "hogauser1")
    assert len(fields) == 26
    assert (fields[2], fields[3], fields[5], fields[9], fields[13], fields[14], fields[16]) == (
        "0000000009", "0000000007", "2", "2", "1", "2", "2")  # fmt: skip
    notice = parse_notice_record(fields)
    assert notice.is_cancel and not notice.is_fill and notice.original_order_no == "0000000007"
    plain = parse_notice_record(notice_fields(SandboxOrder(**{**cancel.__dict__, "kind": "new", "original": ""}),
                                              None, 36_000_000, "hogauser1"))  # fmt: skip
    assert not plain.is_cancel and plain.revision == "new" and plain.accept_state == "1"
