"""Kiwoom REST over real sockets (kiwoom-api.md A2–A5): token, routing, errors, paging, charts."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from apps.core.demo_credentials import kiwoom_demo_credentials
from apps.sandbox.clock import KST
from apps.sandbox.quotes import amount
from apps.sandbox.server import SandboxThread

from ..conftest import data_headers, fresh_credential, get_token, rest_url
from .conftest import admin, fresh_pair, issue_token, rest, set_clock, start_box

CLOSED = "16:00:00"


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxThread]:
    running = start_box(kiwoom_daily_rows=40, kiwoom_minute_rows=50, kiwoom_rate_limit=1000.0)
    set_clock(running, CLOSED)  # closed session: the replayed day is complete and frozen
    try:
        yield running
    finally:
        running.stop()


def call(box: SandboxThread, token: str, api_id: str, path: str, body: dict, **headers: str) -> httpx.Response:
    h = {"authorization": f"Bearer {token}", "api-id": api_id, "content-type": "application/json;charset=UTF-8"}
    h.update({k.replace("_", "-"): v for k, v in headers.items()})
    return httpx.post(f"{rest(box)}/api/dostk/{path}", json=body, headers=h, timeout=10)


def all_pages(
    box: SandboxThread, token: str, api_id: str, body: dict, key: str, day: str | None = None
) -> tuple[list[dict], int]:
    """Every row of a paged TR (request headers cont-yn/next-key) and the number of pages; with ``day``
    (YYYYMMDD), the minute rows of that day only (the chart pages on through the earlier recorded days)."""
    rows: list[dict] = []
    headers: dict[str, str] = {}
    pages = 0
    while True:
        resp = call(box, token, api_id, "chart", body, **headers)
        data = resp.json()
        assert data["return_code"] == 0, data
        rows.extend(data[key])
        pages += 1
        if day is not None and rows and rows[-1]["cntr_tm"][:8] < day:
            return [r for r in rows if r["cntr_tm"][:8] == day], pages
        if resp.headers["cont-yn"] != "Y":
            assert resp.headers["next-key"] == ""
            return rows, pages
        assert 0 < len(resp.headers["next-key"]) <= 50
        headers = {"cont_yn": "Y", "next_key": resp.headers["next-key"]}


def test_token_issue_shape_and_revoke(box: SandboxThread) -> None:
    appkey, secretkey = kiwoom_demo_credentials("real")
    before = dt.datetime.now(KST)
    resp = httpx.post(
        f"{rest(box)}/oauth2/token",
        json={"grant_type": "client_credentials", "appkey": appkey, "secretkey": secretkey},
    )
    body = resp.json()
    assert resp.status_code == 200
    assert set(body) == {"expires_dt", "token_type", "token", "return_code", "return_msg"}
    assert (body["token_type"], body["return_code"], body["return_msg"]) == ("Bearer", 0, "정상적으로 처리되었습니다")
    assert re.fullmatch(r"[A-Za-z0-9_-]{86}", body["token"])
    expires = dt.datetime.strptime(body["expires_dt"], "%Y%m%d%H%M%S").replace(tzinfo=KST)
    assert abs((expires - before).total_seconds() - 86400) < 5
    token = body["token"]
    assert call(box, token, "ka10001", "stkinfo", {"stk_cd": "005930"}).json()["return_code"] == 0
    revoked = httpx.post(
        f"{rest(box)}/oauth2/revoke", json={"appkey": appkey, "secretkey": secretkey, "token": token}
    ).json()
    assert revoked == {"return_code": 0, "return_msg": "정상적으로 처리되었습니다"}
    after = call(box, token, "ka10001", "stkinfo", {"stk_cd": "005930"})
    assert (after.status_code, after.json()) == (
        200,
        {"return_code": 3, "return_msg": "인증에 실패했습니다[8005:Token이 유효하지 않습니다]"},
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"appkey": "x", "secretkey": "y"}, 8011),
        ({"grant_type": "password", "appkey": "x", "secretkey": "y"}, 8012),
        ({"grant_type": "client_credentials", "appkey": "x"}, 8020),
        ({"grant_type": "client_credentials", "appkey": "nope", "secretkey": "y"}, 8001),
    ],
)
def test_token_errors(box: SandboxThread, body: dict, code: int) -> None:
    resp = httpx.post(f"{rest(box)}/oauth2/token", json=body)
    data = resp.json()
    assert resp.status_code == 200 and data["return_code"] == 3
    assert data["return_msg"].startswith(f"인증에 실패했습니다[{code}:")


def test_wrong_secret_and_mode_mismatch(box: SandboxThread) -> None:
    appkey, secretkey = kiwoom_demo_credentials("real")
    wrong = httpx.post(
        f"{rest(box)}/oauth2/token", json={"grant_type": "client_credentials", "appkey": appkey, "secretkey": "z"}
    ).json()
    assert wrong["return_msg"].startswith("인증에 실패했습니다[8002:")
    # A real key presented to the mock host -> 8030; a mock token used on the real host -> 8031.
    mismatch = httpx.post(
        f"{rest(box)}/oauth2/token",
        json={"grant_type": "client_credentials", "appkey": appkey, "secretkey": secretkey},
        headers={"Host": "mockapi.kiwoom.com"},
    ).json()
    assert mismatch["return_code"] == 3 and "[8030:" in mismatch["return_msg"]
    mock_token = issue_token(box, "mock")
    h = {"Host": "api.kiwoom.com", "authorization": f"Bearer {mock_token}", "api-id": "ka10001"}
    used = httpx.post(f"{rest(box)}/api/dostk/stkinfo", json={"stk_cd": "005930"}, headers=h).json()
    assert used["return_code"] == 3 and "[8031:" in used["return_msg"]
    h["Host"] = "mockapi.kiwoom.com"
    assert httpx.post(f"{rest(box)}/api/dostk/stkinfo", json={"stk_cd": "005930"}, headers=h).json()["return_code"] == 0


def test_api_id_routing_and_input_errors(box: SandboxThread) -> None:
    token = issue_token(box)
    cases = [
        ("", "chart", {}, "1501"),
        ("ka99999", "chart", {}, "1505"),
        ("ka10001", "chart", {"stk_cd": "005930"}, "1504"),
        ("ka10081", "stkinfo", {"stk_cd": "005930"}, "1504"),
        ("ka10001", "stkinfo", {}, "1511"),
        ("ka10081", "chart", {"stk_cd": "005930", "upd_stkpc_tp": "1"}, "1511"),
        ("ka10001", "stkinfo", {"stk_cd": "999999"}, "1902"),
        ("ka10080", "chart", {"stk_cd": "005930", "tic_scope": "2", "upd_stkpc_tp": "1"}, "1517"),
    ]
    for api_id, path, body, code in cases:
        resp = call(box, token, api_id, path, body)
        data = resp.json()
        assert resp.status_code == 200 and resp.headers["api-id"] == api_id, (api_id, data)
        assert data["return_code"] != 0 and f"[{code}:" in data["return_msg"], (api_id, path, body, data)
    missing = call(box, token, "ka10001", "stkinfo", {})
    assert missing.json()["return_msg"].endswith("[1511:필수 입력 값에 값이 존재하지 않습니다. 요소명=stk_cd]")


def test_daily_chart_pages_back_through_the_recorded_history(box: SandboxThread) -> None:
    token = issue_token(box)
    market = box.server.core.market  # type: ignore[union-attr]
    body = {"stk_cd": "005930", "base_dt": "20991231", "upd_stkpc_tp": "1"}
    first = call(box, token, "ka10081", "chart", body)
    assert first.json()["stk_cd"] == "005930" and len(first.json()["stk_dt_pole_chart_qry"]) == 40
    assert (first.headers["api-id"], first.headers["cont-yn"]) == ("ka10081", "Y")
    rows, pages = all_pages(box, token, "ka10081", body, "stk_dt_pole_chart_qry")
    expected = market.daily_rows("005930", box.server.core.clock.now_ms())[::-1]  # type: ignore[union-attr]
    assert pages == -(-len(expected) // 40) and pages > 1
    assert [r["dt"] for r in rows] == [b.date.strftime("%Y%m%d") for b in expected]
    shares = market.tapes["005930"].instrument.listed_shares
    for row, bar, prev in zip(rows, expected, [*expected[1:], None], strict=True):
        assert (row["cur_prc"], row["open_pric"], row["high_pric"], row["low_pric"]) == tuple(
            str(v) for v in (bar.close, bar.open, bar.high, bar.low)
        )
        assert row["trde_qty"] == str(bar.volume) and row["trde_prica"] == str(amount(bar) // 1_000_000)
        change = bar.close - (prev.close if prev else bar.close)
        assert row["pred_pre"] == (f"+{change}" if change > 0 else str(change))
        assert row["pred_pre_sig"] == ("2" if change > 0 else "5" if change < 0 else "3")
        assert re.fullmatch(r"[+-]?\d+\.\d\d", row["trde_tern_rt"]) and shares > 0
    # base_dt picks the newest row on or before it.
    older = call(box, token, "ka10081", "chart", dict(body, base_dt=rows[5]["dt"])).json()
    assert older["stk_dt_pole_chart_qry"][0] == rows[5]


def test_minute_chart_matches_the_replayed_day_and_the_kis_chart(box: SandboxThread) -> None:
    token = issue_token(box)
    core = box.server.core  # type: ignore[union-attr]
    tape = core.market.tapes["005930"]
    bars = tape.minute_bars(core.clock.now_ms())
    body = {"stk_cd": "005930", "tic_scope": "1", "upd_stkpc_tp": "1"}
    day = f"{core.market.date:%Y%m%d}"
    ones, pages = all_pages(box, token, "ka10080", body, "stk_min_pole_chart_qry", day)
    assert len(ones) == len(bars) > 50 and pages in (-(-len(bars) // 50), -(-len(bars) // 50) + 1)
    prev = tape.prev_close

    def signed(p: int) -> str:
        return f"+{p}" if p > prev else f"-{p}" if p < prev else str(p)

    cumulative = 0
    by_time = {r["cntr_tm"]: r for r in ones}
    for bar in bars:
        cumulative += bar.volume
        s = bar.minute_s
        row = by_time[f"{core.market.date:%Y%m%d}{s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d}"]
        assert row["cur_prc"] == signed(bar.close) and row["open_pric"] == signed(bar.open)
        assert row["high_pric"] == signed(bar.high) and row["low_pric"] == signed(bar.low)
        assert row["trde_qty"] == str(bar.volume) and row["acc_trde_qty"] == str(cumulative)
    assert [r["cntr_tm"] for r in ones] == sorted(by_time, reverse=True)
    # The KIS minute chart of the same moment shows the same bars.
    cred = fresh_credential("real")
    with httpx.Client(base_url=rest_url(box, "real"), timeout=10) as kis:
        kis_token = get_token(kis, cred)
        out = kis.get(
            "/uapi/domestic-stock/v1/quotations/inquire-time-itemchartprice",
            params={
                "FID_ETC_CLS_CODE": "",
                "FID_COND_MRKT_DIV_CODE": "J",
                "FID_INPUT_ISCD": "005930",
                "FID_INPUT_HOUR_1": "153000",
                "FID_PW_DATA_INCU_YN": "Y",
            },
            headers=data_headers(kis_token, cred, "FHKST03010200"),
        ).json()["output2"]
    for kis_row, kw_row in zip(out, ones, strict=False):
        assert kw_row["cntr_tm"][8:] == kis_row["stck_cntg_hour"]
        assert kw_row["cur_prc"].lstrip("+-") == kis_row["stck_prpr"]
        assert kw_row["trde_qty"] == kis_row["cntg_vol"]
    # 5-minute bars re-aggregate the 1-minute ones.
    rows5, _ = all_pages(box, token, "ka10080", dict(body, tic_scope="5"), "stk_min_pole_chart_qry", day)
    assert sum(int(r["trde_qty"]) for r in rows5) == sum(b.volume for b in bars)
    assert all(int(r["cntr_tm"][10:12]) % 5 == 0 for r in rows5)
    assert rows5[-1]["open_pric"] == signed(bars[0].open)


def test_minute_chart_pages_back_into_earlier_recorded_days(box: SandboxThread) -> None:
    """ka10080 goes on past the replayed day: each earlier day's bars re-aggregate to its recorded daily bar."""
    token = issue_token(box)
    core = box.server.core  # type: ignore[union-attr]
    history = core.market.history["005930"]
    past = history[-3]
    body = {"stk_cd": "005930", "tic_scope": "1", "upd_stkpc_tp": "1", "base_dt": f"{past.date:%Y%m%d}"}
    resp = call(box, token, "ka10080", "chart", body)
    rows = resp.json()["stk_min_pole_chart_qry"]
    assert resp.headers["cont-yn"] == "Y" and len(rows) == 50
    day_rows, _ = all_pages(box, token, "ka10080", body, "stk_min_pole_chart_qry", f"{past.date:%Y%m%d}")
    assert sum(int(r["trde_qty"]) for r in day_rows) == past.volume
    assert max(int(r["high_pric"].lstrip("+-")) for r in day_rows) == past.high
    assert min(int(r["low_pric"].lstrip("+-")) for r in day_rows) == past.low
    assert day_rows[-1]["open_pric"].lstrip("+-") == str(past.open)
    assert day_rows[0]["cur_prc"].lstrip("+-") == str(past.close)
    again = call(box, token, "ka10080", "chart", body).json()["stk_min_pole_chart_qry"]
    assert again == rows  # deterministic


def test_basic_info_equals_the_kis_current_price(box: SandboxThread) -> None:
    token = issue_token(box)
    info = call(box, token, "ka10001", "stkinfo", {"stk_cd": "005930"}).json()
    cred = fresh_credential("real")
    with httpx.Client(base_url=rest_url(box, "real"), timeout=10) as kis:
        kis_token = get_token(kis, cred)
        out = kis.get(
            "/uapi/domestic-stock/v1/quotations/inquire-price",
            params={"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"},
            headers=data_headers(kis_token, cred, "FHKST01010100"),
        ).json()["output"]
    assert info["stk_cd"] == "005930" and info["stk_nm"]
    assert info["cur_prc"].lstrip("+-") == out["stck_prpr"]
    assert info["pred_pre"].lstrip("+") == out["prdy_vrss"] and info["pre_sig"] == out["prdy_vrss_sign"]
    assert info["flu_rt"].lstrip("+") == out["prdy_ctrt"] and info["trde_qty"] == out["acml_vol"]
    assert info["base_pric"] == out["stck_sdpr"] and info["upl_pric"] == "+" + out["stck_mxpr"]
    assert info["lst_pric"] == "-" + out["stck_llam"]
    change = int(out["prdy_vrss"])
    assert info["cur_prc"][0] == ("+" if change > 0 else "-" if change < 0 else info["cur_prc"][0])


def test_rate_limit_answers_1700_with_the_configured_status() -> None:
    box = start_box(kiwoom_rate_limit=0.5, kiwoom_rate_status=429)  # bucket of 1, refilled every 2 s
    try:
        token = issue_token(box, pair=fresh_pair("mock"))
        answers = [call(box, token, "ka10001", "stkinfo", {"stk_cd": "005930"}) for _ in range(6)]
        limited = [r for r in answers if r.json()["return_code"] == 5]
        assert limited and all(r.status_code == 429 for r in limited)
        assert limited[0].json()["return_msg"] == (
            "허용된 요청 개수를 초과하였습니다[1700:허용된 요청 개수를 초과하였습니다. API ID=ka10001]"
        )
        time.sleep(2.1)
        assert call(box, token, "ka10001", "stkinfo", {"stk_cd": "005930"}).json()["return_code"] == 0
    finally:
        box.stop()


def test_expire_tokens_fault_expires_kiwoom_tokens(box: SandboxThread) -> None:
    token = issue_token(box, pair=fresh_pair("real"))
    assert call(box, token, "ka10001", "stkinfo", {"stk_cd": "005930"}).json()["return_code"] == 0
    with admin(box) as client:
        result = client.post("/sandbox/faults", json={"fault": "expire_tokens"}).json()
    assert result["kiwoom_expired"] >= 1
    resp = call(box, token, "ka10001", "stkinfo", {"stk_cd": "005930"})
    assert (resp.status_code, resp.json()) == (
        200,
        {"return_code": 3, "return_msg": "인증에 실패했습니다[8005:Token이 유효하지 않습니다]"},
    )
    assert call(box, issue_token(box), "ka10001", "stkinfo", {"stk_cd": "005930"}).json()["return_code"] == 0


def test_header_names_case_and_order_on_the_wire(box: SandboxThread) -> None:
    """kiwoom-api.md A3: ``Content-Type: application/json;charset=UTF-8`` first, then the lower-case ``api-id``,
    ``cont-yn``, ``next-key``, on data answers, token answers and errors alike."""
    token = issue_token(box)
    answers = {
        "data": call(box, token, "ka10081", "chart", {"stk_cd": "005930", "base_dt": "20260220", "upd_stkpc_tp": "1"}),
        "error": call(box, token, "ka10081", "chart", {"stk_cd": "005930", "upd_stkpc_tp": "9"}),
        "token": httpx.post(f"{rest(box)}/oauth2/token", json={"grant_type": "client_credentials"}, timeout=10),
    }
    for kind, resp in answers.items():
        raw = [(k.decode(), v.decode()) for k, v in resp.headers.raw]
        assert [k for k, _ in raw][:4] == ["Content-Type", "api-id", "cont-yn", "next-key"], kind
        assert raw[0][1] == "application/json;charset=UTF-8", kind
        assert "content-type" not in [k for k, _ in raw], kind
    assert answers["data"].headers["api-id"] == "ka10081" and answers["data"].headers["cont-yn"] == "Y"
    assert answers["error"].json()["return_code"] != 0 and answers["error"].headers["cont-yn"] == "N"
    assert answers["token"].headers["api-id"] == "au10001"


def test_basic_info_fundamentals_are_filled_and_consistent(box: SandboxThread) -> None:
    """ka10001's PER, EPS, ROE, PBR, BPS and market-cap weight come from one synthetic company model, flagged."""
    token = issue_token(box)
    resp = call(box, token, "ka10001", "stkinfo", {"stk_cd": "005930"})
    info = resp.json()
    assert resp.headers["X-Sandbox-Synthetic"] == "fundamentals"
    price = int(info["cur_prc"].lstrip("+-"))
    eps, bps = int(info["eps"]), int(info["bps"])
    assert eps > 0 and bps > 0 and float(info["roe"]) != 0
    assert float(info["per"]) == pytest.approx(price / eps, abs=0.01)
    assert float(info["pbr"]) == pytest.approx(price / bps, abs=0.01)
    assert 0 < float(info["mac_wght"]) <= 100
    assert int(info["sale_amt"]) > int(info["bus_pro"]) > 0
