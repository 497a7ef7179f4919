"""REST protocol over real sockets with a plain httpx client (kis-api.md §2–§5)."""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest

from apps.core.demo_credentials import DEMO_PAPER_APP_KEY, DEMO_PAPER_APP_SECRET, DEMO_REAL_APP_KEY
from apps.core.krx.rules import TickTable
from apps.sandbox.auth import MSG_TOKEN_RATE
from apps.sandbox.data import ymd_date
from apps.sandbox.server import SandboxThread

from .conftest import base_config, data_headers, fresh_credential, get_token, rest_url

Q = "/uapi/domestic-stock/v1/quotations"
PRICE = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}


def client(sandbox: SandboxThread, mode: str = "real") -> httpx.Client:
    return httpx.Client(base_url=rest_url(sandbox, mode), timeout=10)


def authed(sandbox: SandboxThread, mode: str = "real"):  # type: ignore[no-untyped-def]
    cred = fresh_credential(mode)
    c = client(sandbox, mode)
    return c, cred, get_token(c, cred)


def test_demo_credentials_have_kis_shapes() -> None:
    assert len(DEMO_REAL_APP_KEY) == 36 and len(DEMO_PAPER_APP_KEY) == 36
    assert len(DEMO_PAPER_APP_SECRET) == 180 and DEMO_REAL_APP_KEY != DEMO_PAPER_APP_KEY


def test_clock_endpoint(sandbox: SandboxThread) -> None:
    body = client(sandbox).get("/sandbox/clock").json()
    assert set(body) >= {"now", "replay_date", "session", "speed", "clock", "data_source", "synthetic"}
    assert body["clock"] == "replay" and body["speed"] == 60.0
    assert dt.datetime.fromisoformat(body["now"]).utcoffset() == dt.timedelta(hours=9)
    assert body["synthetic"] is (sandbox.server.core.market.synthetic)  # type: ignore[union-attr]


def test_token_shape_same_token_within_6h_and_egw00133(sandbox: SandboxThread) -> None:
    c = client(sandbox, "paper")
    cred = fresh_credential("paper")
    body = {"grant_type": "client_credentials", "appkey": cred.appkey, "appsecret": cred.appsecret}
    first = c.post("/oauth2/tokenP", json=body)
    assert first.status_code == 200
    tok = first.json()
    assert tok["token_type"] == "Bearer" and tok["expires_in"] == 86400 and isinstance(tok["expires_in"], int)
    expiry = dt.datetime.fromisoformat(tok["access_token_token_expired"])
    kst_now = dt.datetime.now(dt.UTC) + dt.timedelta(hours=9)
    assert abs((expiry - kst_now.replace(tzinfo=None)).total_seconds() - 86400) < 5
    assert tok["access_token"].count(".") == 2
    # Asking again within 6 h: the same token, not a new issuance (no EGW00133).
    again = c.post("/oauth2/tokenP", json=body)
    assert again.status_code == 200 and again.json() == tok
    # Revoke, then a NEW issuance inside the same minute is refused.
    revoked = c.post(
        "/oauth2/revokeP", json={"appkey": cred.appkey, "appsecret": cred.appsecret, "token": tok["access_token"]}
    )
    assert revoked.status_code == 200
    refused = c.post("/oauth2/tokenP", json=body)
    assert refused.status_code == 403
    err = refused.json()
    assert err["error_code"] == "EGW00133" and err["msg_cd"] == "EGW00133" and err["msg1"] == MSG_TOKEN_RATE
    # The revoked token is now invalid.
    resp = c.get(f"{Q}/inquire-price", params=PRICE, headers=data_headers(tok["access_token"], cred, "FHKST01010100"))
    assert resp.status_code == 500 and resp.json() == {
        "rt_cd": "1",
        "msg_cd": "EGW00121",
        "msg1": "유효하지 않은 token 입니다.",
    }


def test_bad_app_credentials(sandbox: SandboxThread) -> None:
    c = client(sandbox, "paper")
    r = c.post("/oauth2/tokenP", json={"grant_type": "client_credentials", "appkey": "X" * 36, "appsecret": "y"})
    assert r.status_code == 500 and r.json()["error_code"] == "EGW00103"
    r = c.post("/oauth2/tokenP", json={"appkey": DEMO_PAPER_APP_KEY, "appsecret": "wrong"})
    assert r.json()["error_code"] == "EGW00105"
    # A real key is not registered on the paper host.
    r = c.post(
        "/oauth2/Approval", json={"grant_type": "client_credentials", "appkey": DEMO_REAL_APP_KEY, "secretkey": "z"}
    )
    assert r.json()["error_code"] == "EGW00103"
    ok = c.post(
        "/oauth2/Approval",
        json={"grant_type": "client_credentials", "appkey": DEMO_PAPER_APP_KEY, "secretkey": DEMO_PAPER_APP_SECRET},
    )
    assert ok.status_code == 200 and len(ok.json()["approval_key"]) == 36


def test_invalid_token_and_token_of_other_appkey(sandbox: SandboxThread) -> None:
    c, cred, token = authed(sandbox)
    other = fresh_credential("real")
    for headers in (data_headers("garbage", cred, "FHKST01010100"), data_headers(token, other, "FHKST01010100")):
        r = c.get(f"{Q}/inquire-price", params=PRICE, headers=headers)
        assert r.status_code == 500
        assert r.json() == {"rt_cd": "1", "msg_cd": "EGW00121", "msg1": "유효하지 않은 token 입니다."}
    r = c.get(
        f"{Q}/inquire-price", params=PRICE, headers={**data_headers(token, cred, "FHKST01010100"), "appkey": "nope"}
    )
    assert r.json()["msg_cd"] == "EGW00103"


def test_expire_tokens_fault(sandbox: SandboxThread, admin: httpx.Client) -> None:
    c, cred, token = authed(sandbox)
    h = data_headers(token, cred, "FHKST01010100")
    assert c.get(f"{Q}/inquire-price", params=PRICE, headers=h).json()["rt_cd"] == "0"
    assert admin.post("/sandbox/faults", json={"fault": "expire_tokens"}).json()["expired"] >= 1
    r = c.get(f"{Q}/inquire-price", params=PRICE, headers=h)
    assert r.status_code == 500
    assert r.json() == {"rt_cd": "1", "msg_cd": "EGW00123", "msg1": "기간이 만료된 token 입니다."}
    # The expired token is not returned again; a new one inside the minute is EGW00133.
    r = c.post(
        "/oauth2/tokenP", json={"grant_type": "client_credentials", "appkey": cred.appkey, "appsecret": cred.appsecret}
    )
    assert r.status_code == 403 and r.json()["error_code"] == "EGW00133"


def test_paper_rate_limit_egw00201(sandbox: SandboxThread) -> None:
    c, cred, token = authed(sandbox, "paper")
    h = data_headers(token, cred, "FHKST01010100")
    results = [c.get(f"{Q}/inquire-price", params=PRICE, headers=h) for _ in range(3)]
    assert [r.status_code for r in results[:2]] == [200, 200]
    assert results[2].status_code == 500
    assert results[2].json() == {"rt_cd": "1", "msg_cd": "EGW00201", "msg1": "초당 거래건수를 초과하였습니다."}
    time.sleep(0.55)
    assert c.get(f"{Q}/inquire-price", params=PRICE, headers=h).status_code == 200


def test_success_envelopes_and_headers(sandbox: SandboxThread) -> None:
    for mode, msg_cd, msg1 in (
        ("real", "MCA00000", "정상처리 되었습니다."),
        ("paper", "20310000", "모의투자 조회가 완료되었습니다."),
    ):
        c, cred, token = authed(sandbox, mode)
        r = c.get(f"{Q}/inquire-price", params=PRICE, headers=data_headers(token, cred, "FHKST01010100"))
        body = r.json()
        assert body["rt_cd"] == "0" and body["msg_cd"] == msg_cd and body["msg1"].strip() == msg1
        if mode == "paper":
            assert body["msg1"] != msg1 and body["msg1"].endswith(" ")
        raw = {k.decode(): v.decode() for k, v in r.headers.raw}
        assert raw["Content-Type"] == "application/json; charset=utf-8" and "content-type" not in raw
        assert raw["tr_id"] == "FHKST01010100" and "tr_cont" in raw and len(raw["gt_uid"]) == 32


def test_inquire_price_fields(sandbox: SandboxThread) -> None:
    c, cred, token = authed(sandbox)
    market = sandbox.server.core.market  # type: ignore[union-attr]
    r = c.get(
        f"{Q}/inquire-price",
        params={"fid_cond_mrkt_div_code": "J", "fid_input_iscd": "005930"},
        headers=data_headers(token, cred, "FHKST01010100"),
    )
    out = r.json()["output"]
    assert all(isinstance(v, str) for v in out.values())
    for f in (
        "stck_prpr",
        "prdy_vrss",
        "prdy_vrss_sign",
        "prdy_ctrt",
        "acml_vol",
        "acml_tr_pbmn",
        "stck_oprc",
        "stck_hgpr",
        "stck_lwpr",
        "stck_mxpr",
        "stck_llam",
        "stck_sdpr",
        "per",
        "pbr",
        "eps",
        "hts_avls",
        "lstn_stcn",
        "w52_hgpr",
        "stck_shrn_iscd",
        "bstp_kor_isnm",
        "temp_stop_yn",
        "vi_cls_code",
        "aspr_unit",
    ):
        assert f in out
    base, price = int(out["stck_sdpr"]), int(out["stck_prpr"])
    ticks = TickTable()
    assert (int(out["stck_mxpr"]), int(out["stck_llam"])) == ticks.price_limits(base, market.date, "KOSPI")
    assert int(out["aspr_unit"]) == ticks.tick_size(price, market.date, "KOSPI")
    assert int(out["prdy_vrss"]) == price - base
    expected_sign = "2" if price > base else "5" if price < base else "3"
    assert out["prdy_vrss_sign"] == expected_sign and out["stck_shrn_iscd"] == "005930"


def test_unknown_symbol_tr_id_and_bad_params(sandbox: SandboxThread) -> None:
    c, cred, token = authed(sandbox)
    r = c.get(
        f"{Q}/inquire-price",
        params={**PRICE, "FID_INPUT_ISCD": "999999"},
        headers=data_headers(token, cred, "FHKST01010100"),
    )
    assert r.json()["rt_cd"] == "0" and r.json()["output"]["stck_prpr"] == "0"
    r = c.get(f"{Q}/inquire-price", params=PRICE, headers=data_headers(token, cred, "FHKST03010100"))
    assert r.json() == {"rt_cd": "1", "msg_cd": "OPSQ0002", "msg1": "없는 서비스 코드 입니다"}
    chart = {
        **PRICE,
        "FID_INPUT_DATE_1": "20260101",
        "FID_INPUT_DATE_2": "20260220",
        "FID_PERIOD_DIV_CODE": "D",
        "FID_ORG_ADJ_PRC": "0",
    }
    h = data_headers(token, cred, "FHKST03010100")
    for bad in (
        {"FID_INPUT_DATE_1": "2026-01-01"},
        {"FID_INPUT_DATE_1": "20260301"},
        {"FID_PERIOD_DIV_CODE": "X"},
        {"FID_COND_MRKT_DIV_CODE": "Q"},
        {"FID_ORG_ADJ_PRC": "2"},
    ):
        body = c.get(f"{Q}/inquire-daily-itemchartprice", params={**chart, **bad}, headers=h).json()
        assert body["rt_cd"] == "1" and body["msg_cd"].startswith("OPSQ200"), bad
    body = c.get(f"{Q}/inquire-daily-itemchartprice", params={**chart, "FID_INPUT_ISCD": "999999"}, headers=h).json()
    assert body["rt_cd"] == "0" and body["output2"] == [{}] and body["output1"]["stck_prpr"] == "0"


def test_daily_chart_100_row_paging(sandbox: SandboxThread) -> None:
    c, cred, token = authed(sandbox)
    market = sandbox.server.core.market  # type: ignore[union-attr]
    h = data_headers(token, cred, "FHKST03010100")
    end, seen, pages = market.date, [], 0
    while True:
        params = {
            **PRICE,
            "FID_INPUT_DATE_1": "19900101",
            "FID_INPUT_DATE_2": end.strftime("%Y%m%d"),
            "FID_PERIOD_DIV_CODE": "D",
            "FID_ORG_ADJ_PRC": "1",
        }
        time.sleep(0.06)  # 20 requests/s: the history now pages back through every recorded day (50+ pages)
        body = c.get(f"{Q}/inquire-daily-itemchartprice", params=params, headers=h).json()
        rows = body["output2"]
        if not rows:
            break
        pages += 1
        assert len(rows) <= 100
        dates = [r["stck_bsop_date"] for r in rows]
        assert dates == sorted(dates, reverse=True)
        seen.extend(dates)
        end = ymd_date(dates[-1]) - dt.timedelta(days=1)
    expected = [b.date.strftime("%Y%m%d") for b in market.daily_rows("005930", sandbox.server.core.clock.now_ms())][
        ::-1
    ]  # type: ignore[union-attr]
    assert seen == expected and len(set(seen)) == len(seen) and pages >= 2
    assert seen[0] == market.date.strftime("%Y%m%d")


def test_daily_price_30_rows_and_periods(sandbox: SandboxThread) -> None:
    c, cred, token = authed(sandbox)
    h = data_headers(token, cred, "FHKST01010400")
    for period in ("D", "W", "M"):
        body = c.get(
            f"{Q}/inquire-daily-price",
            params={**PRICE, "FID_PERIOD_DIV_CODE": period, "FID_ORG_ADJ_PRC": "0"},
            headers=h,
        ).json()
        rows = body["output"]
        assert 1 <= len(rows) <= 30 and body["rt_cd"] == "0"
        dates = [r["stck_bsop_date"] for r in rows]
        assert dates == sorted(dates, reverse=True) and len(set(dates)) == len(dates)
        assert set(rows[0]) == {
            "stck_bsop_date",
            "stck_oprc",
            "stck_hgpr",
            "stck_lwpr",
            "stck_clpr",
            "acml_vol",
            "prdy_vrss_vol_rate",
            "prdy_vrss",
            "prdy_vrss_sign",
            "prdy_ctrt",
            "hts_frgn_ehrt",
            "frgn_ntby_qty",
            "flng_cls_code",
            "acml_prtt_rate",
        }
        if period == "D":
            assert len(rows) == 30
            assert int(rows[0]["prdy_vrss"]) == int(rows[0]["stck_clpr"]) - int(rows[1]["stck_clpr"])


def test_minute_paging_walks_the_whole_session(sandbox: SandboxThread, admin: httpx.Client) -> None:
    assert admin.post("/sandbox/clock", json={"time": "15:31:00"}).json()["session"] == "closed"
    c, cred, token = authed(sandbox)
    h = data_headers(token, cred, "FHKST03010200")
    hour, seen = "153100", []
    for _ in range(20):
        params = {**PRICE, "FID_INPUT_HOUR_1": hour, "FID_PW_DATA_INCU_YN": "Y", "FID_ETC_CLS_CODE": ""}
        body = c.get(f"{Q}/inquire-time-itemchartprice", params=params, headers=h).json()
        rows = body["output2"]
        if not rows:
            break
        assert len(rows) <= 30
        hours = [r["stck_cntg_hour"] for r in rows]
        assert hours == sorted(hours, reverse=True) and all(x <= hour for x in hours)
        seen.extend(rows)
        oldest_min = int(hours[-1][:2]) * 60 + int(hours[-1][2:4]) - 1  # next HOUR_1 = oldest - 1 min
        if oldest_min < 9 * 60:
            break
        hour = f"{oldest_min // 60:02d}{oldest_min % 60:02d}00"
    labels = [r["stck_cntg_hour"] for r in seen]
    expected = [f"{m // 60:02d}{m % 60:02d}00" for m in range(9 * 60, 15 * 60 + 20)] + ["153000"]
    assert labels == expected[::-1]
    tape = sandbox.server.core.market.tape("005930")  # type: ignore[union-attr]
    bars = {f"{b.minute_s // 3600:02d}{b.minute_s // 60 % 60:02d}00": b for b in tape.minute_bars(10**9)}
    for row in seen:
        b = bars[row["stck_cntg_hour"]]
        assert (
            int(row["stck_oprc"]),
            int(row["stck_hgpr"]),
            int(row["stck_lwpr"]),
            int(row["stck_prpr"]),
            int(row["cntg_vol"]),
        ) == (b.open, b.high, b.low, b.close, b.volume)
    assert sum(int(r["cntg_vol"]) for r in seen) == int(body["output1"]["acml_vol"])


def test_minute_bars_of_an_earlier_day_page_back_through_its_session(sandbox: SandboxThread) -> None:
    """FHKST03010230 (kis-api.md §5.5): 120 rows a call for the asked day, newest first, paged by moving the hour
    back; an earlier day's bars are the tape model's spread of its recorded daily bar, so they re-aggregate to it.
    Older than a year, in the future, or not a session: no rows; a malformed hour: OPSQ2002."""
    core = sandbox.server.core  # type: ignore[union-attr]
    history = core.market.history["005930"]
    past = history[-3]
    c, cred, token = authed(sandbox)
    h = data_headers(token, cred, "FHKST03010230")

    def ask(day: str, hour: str) -> dict:
        params = {**PRICE, "FID_INPUT_DATE_1": day, "FID_INPUT_HOUR_1": hour, "FID_PW_DATA_INCU_YN": "N",
                  "FID_FAKE_TICK_INCU_YN": ""}  # fmt: skip
        response = c.get(f"{Q}/inquire-time-dailychartprice", params=params, headers=h)
        assert response.status_code == 200 and response.headers["tr_id"] == "FHKST03010230"
        return response.json()

    day, hour, seen, calls = f"{past.date:%Y%m%d}", "153000", [], 0
    while calls < 10:
        rows = ask(day, hour)["output2"]
        calls += 1
        if not rows:
            break
        assert len(rows) <= 120 and {r["stck_bsop_date"] for r in rows} == {day}
        hours = [r["stck_cntg_hour"] for r in rows]
        assert hours == sorted(hours, reverse=True) and hours[0] <= hour
        seen.extend(rows)
        oldest = int(hours[-1][:2]) * 60 + int(hours[-1][2:4]) - 1
        hour = f"{oldest // 60:02d}{oldest % 60:02d}00"
    assert calls >= 4 and len(seen) > 120  # more than one page: the client's paging ran
    assert sum(int(r["cntg_vol"]) for r in seen) == past.volume
    assert (int(seen[-1]["stck_oprc"]), int(seen[0]["stck_prpr"])) == (past.open, past.close)
    assert max(int(r["stck_hgpr"]) for r in seen) == past.high and min(int(r["stck_lwpr"]) for r in seen) == past.low
    assert ask(day, "153000")["output2"] == seen[:120]  # deterministic

    replay_day = core.market.date
    too_old = next((b.date for b in reversed(history) if b.date < replay_day - dt.timedelta(days=365)), None)
    if too_old is not None:  # the recorded history reaches back further than a year
        assert ask(f"{too_old:%Y%m%d}", "153000")["output2"] == []
    assert ask(f"{replay_day + dt.timedelta(days=1):%Y%m%d}", "153000")["output2"] == []
    saturday = replay_day - dt.timedelta(days=replay_day.weekday() + 2)
    assert saturday.weekday() == 5 and ask(f"{saturday:%Y%m%d}", "153000")["output2"] == []
    for date_1, hour_1, field in ((day, "25", "HOUR_1"), (day, "246000", "HOUR_1"), ("2026021", "153000", "DATE_1"),
                                  ("x" * 5000, "153000", "DATE_1"), ("20261340", "153000", "DATE_1")):  # fmt: skip
        bad = ask(date_1, hour_1)
        assert (bad["rt_cd"], bad["msg1"]) == ("1", f"ERROR INVALID INPUT [FID_INPUT_{field}]")
    assert ask("00000101", "153000")["output2"] == []


def test_minute_future_time_is_now(sandbox: SandboxThread, admin: httpx.Client) -> None:
    admin.post("/sandbox/clock", json={"time": "10:00:00"})
    c, cred, token = authed(sandbox)
    params = {**PRICE, "FID_INPUT_HOUR_1": "113000", "FID_PW_DATA_INCU_YN": "Y", "FID_ETC_CLS_CODE": ""}
    rows = c.get(
        f"{Q}/inquire-time-itemchartprice", params=params, headers=data_headers(token, cred, "FHKST03010200")
    ).json()["output2"]
    now = dt.datetime.fromisoformat(c.get("/sandbox/clock").json()["now"]).strftime("%H%M%S")
    # Bars only up to the sandbox's current time (no bar between now and 11:30 exists yet).
    assert len(rows) == 30 and "095800" <= rows[0]["stck_cntg_hour"] <= now < "103000"


def test_admin_requires_token(sandbox: SandboxThread) -> None:
    c = client(sandbox)
    assert c.post("/sandbox/faults", json={"fault": "ws_drop"}).status_code == 403
    assert c.post("/sandbox/faults", json={"fault": "ws_drop"}, headers={"X-Sandbox-Admin": "wrong"}).status_code == 403
    assert c.post("/sandbox/clock", json={"action": "restart"}).status_code == 403


def test_fault_bursts_latency_and_clear(sandbox: SandboxThread, admin: httpx.Client) -> None:
    c, cred, token = authed(sandbox)
    h = data_headers(token, cred, "FHKST01010100")
    assert admin.post("/sandbox/faults", json={"fault": "nope"}).status_code == 400
    admin.post("/sandbox/faults", json={"fault": "rate_limit", "count": 2})
    codes = [c.get(f"{Q}/inquire-price", params=PRICE, headers=h) for _ in range(3)]
    assert [r.status_code for r in codes] == [500, 500, 200]
    assert codes[0].json()["msg_cd"] == "EGW00201"
    admin.post("/sandbox/faults", json={"fault": "server_error", "count": 1, "status": 502})
    assert admin.get("/sandbox/faults").json()["server_error"] == {"remaining": 1, "seconds_left": None, "status": 502}
    assert c.get(f"{Q}/inquire-price", params=PRICE, headers=h).status_code == 502
    assert c.get(f"{Q}/inquire-price", params=PRICE, headers=h).status_code == 200
    admin.post("/sandbox/faults", json={"fault": "server_error", "seconds": 0.3})
    assert c.get(f"{Q}/inquire-price", params=PRICE, headers=h).status_code == 500
    time.sleep(0.35)
    assert c.get(f"{Q}/inquire-price", params=PRICE, headers=h).status_code == 200
    admin.post("/sandbox/faults", json={"fault": "latency", "seconds": 0.3})
    start = time.monotonic()
    assert c.get(f"{Q}/inquire-price", params=PRICE, headers=h).status_code == 200
    assert time.monotonic() - start >= 0.3
    assert admin.delete("/sandbox/faults").json() == {
        "ws_stall": None,
        "rate_limit": None,
        "server_error": None,
        "latency": None,
    }
    start = time.monotonic()
    c.get(f"{Q}/inquire-price", params=PRICE, headers=h)
    assert time.monotonic() - start < 0.3


@pytest.mark.parametrize("speed", [5.0])
def test_clock_restart_and_speed(sandbox: SandboxThread, admin: httpx.Client, speed: float) -> None:
    body = admin.post("/sandbox/clock", json={"action": "restart", "speed": speed}).json()
    assert body["session"] == "continuous" and body["speed"] == speed and body["now"][11:16] == "09:00"
    assert admin.post("/sandbox/clock", json={"time": "25:00"}).status_code == 400
    admin.post("/sandbox/clock", json={"speed": 60})


def test_synthetic_mode_server_says_so_loudly(caplog: pytest.LogCaptureFixture) -> None:
    cfg = base_config(data_dir=None, replay_date=dt.date(2026, 2, 20))
    with caplog.at_level("WARNING", logger="apps.sandbox"), SandboxThread(cfg) as box:
        c = client(box)
        status = c.get("/sandbox/clock").json()
        assert status["synthetic"] is True and status["data_source"].startswith("synthetic")
        assert status["replay_date"] == "2026-02-20" and "005930" in status["universe"]
        cred = fresh_credential("real")
        token = get_token(c, cred)
        out = c.get(f"{Q}/inquire-price", params=PRICE, headers=data_headers(token, cred, "FHKST01010100")).json()[
            "output"
        ]
        assert int(out["stck_prpr"]) > 0 and TickTable().on_grid(int(out["stck_prpr"]), dt.date(2026, 2, 20))
    assert any("SYNTHETIC MARKET DATA" in r.getMessage() for r in caplog.records)
