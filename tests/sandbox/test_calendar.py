"""The sandbox's calendar: the holiday query (CTCA0903R) over real sockets with a plain httpx client, and a
replayed shifted session (the CSAT day, the first trading day) at its own times."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from apps.sandbox.calendar import SandboxCalendar, weekday_code
from apps.sandbox.clock import CLOSED, CLOSING_AUCTION, CONTINUOUS, SessionTimes
from apps.sandbox.server import SandboxThread

from .conftest import base_config, data_headers, fresh_credential, get_token, rest_url

HOLIDAY = "/uapi/domestic-stock/v1/quotations/chk-holiday"
CLOSED_DAY = dt.date(2026, 3, 10)  # a Tuesday KRX trades; the sandbox is told to call it closed


@pytest.fixture(scope="module")
def calendar_sandbox():
    cfg = base_config(closed_days=(CLOSED_DAY,), replay_date=dt.date(2026, 2, 20), data_dir=None, universe_size=2)
    with SandboxThread(cfg) as running:
        yield running


def _query(sandbox, mode: str, params: dict, tr_cont: str = "") -> httpx.Response:
    cred = fresh_credential(mode)
    # A date beyond the announced table is the first to load exchange_calendars (and pandas) in the sandbox's
    # thread: a bound a busy machine can meet without the sandbox being wrong.
    with httpx.Client(base_url=rest_url(sandbox, mode), timeout=60) as c:
        headers = data_headers(get_token(c, cred), cred, "CTCA0903R" if mode == "real" else "VTCA0903R")
        headers["tr_cont"] = tr_cont
        return c.get(HOLIDAY, params=params, headers=headers)


def test_weekday_codes_count_from_sunday():
    # A captured real response: 2026-01-05 (a Monday) is "02", 2026-01-10 (Saturday) "07", 2026-01-11 "01".
    assert [weekday_code(dt.date(2026, 1, d)) for d in (5, 10, 11)] == ["02", "07", "01"]


def test_pages_of_24_dates_with_continuation_keys(calendar_sandbox):
    first = _query(calendar_sandbox, "real", {"BASS_DT": "20260220", "CTX_AREA_FK": "", "CTX_AREA_NK": ""})
    body = first.json()

    assert first.status_code == 200 and first.headers["tr_cont"] == "M"
    assert (body["rt_cd"], body["msg_cd"]) == ("0", "KIOK0500")
    assert body["msg1"].startswith("조회가 계속됩니다")
    assert [r["bass_dt"] for r in body["output"]][:3] == ["20260220", "20260221", "20260222"]
    assert len(body["output"]) == 24
    assert body["ctx_area_fk"] == "20260220".ljust(20) and body["ctx_area_nk"] == "20260315".ljust(20)
    rows = {r["bass_dt"]: r for r in body["output"]}
    assert rows["20260302"] == {  # substitute holiday (a Monday)
        "bass_dt": "20260302", "wday_dvsn_cd": "02", "bzdy_yn": "N", "tr_day_yn": "N", "opnd_yn": "N",
        "sttl_day_yn": "N",
    }  # fmt: skip
    assert rows["20260303"]["opnd_yn"] == "Y"
    assert rows["20260310"]["opnd_yn"] == "N"  # SANDBOX_CLOSED_DAYS
    assert (rows["20260221"]["opnd_yn"], rows["20260221"]["tr_day_yn"]) == ("N", "Y")  # a Saturday, as captured

    second = _query(
        calendar_sandbox,
        "real",
        {"BASS_DT": "20260220", "CTX_AREA_FK": body["ctx_area_fk"], "CTX_AREA_NK": body["ctx_area_nk"]},
        tr_cont="N",
    )
    assert second.json()["output"][0]["bass_dt"] == "20260316"


def test_the_last_page_ends_the_horizon(calendar_sandbox):
    cfg = calendar_sandbox.server.core.config
    start = dt.date(2026, 2, 20)
    last = start + dt.timedelta(days=cfg.holiday_horizon_days - 1)
    nk = (last - dt.timedelta(days=3)).strftime("%Y%m%d")

    response = _query(calendar_sandbox, "real", {"BASS_DT": "20260220", "CTX_AREA_NK": nk}, tr_cont="N")

    body = response.json()
    assert response.headers["tr_cont"] == "D" and body["msg_cd"] == "MCA00000"
    assert [r["bass_dt"] for r in body["output"]][-1] == last.strftime("%Y%m%d")
    assert len(body["output"]) == 3


@pytest.mark.parametrize(
    ("params", "tr_cont", "field"),
    [
        ({"BASS_DT": "2026-02-20"}, "", "BASS_DT"),
        ({"BASS_DT": "20261340"}, "", "BASS_DT"),
        ({}, "", "BASS_DT"),
        ({"BASS_DT": "20260220", "CTX_AREA_NK": "x" * 5000}, "N", "CTX_AREA_NK"),
        ({"BASS_DT": "20260220", "CTX_AREA_NK": "20260101"}, "N", "CTX_AREA_NK"),  # before BASS_DT: no going back
    ],
)
def test_malformed_input_gets_a_business_error_not_a_5xx(calendar_sandbox, params, tr_cont, field):
    response = _query(calendar_sandbox, "real", params, tr_cont=tr_cont)

    assert response.status_code == 200
    assert (response.json()["rt_cd"], response.json()["msg1"]) == ("1", f"ERROR INVALID INPUT [{field}]")


def test_the_last_representable_date_is_answered_not_a_5xx(calendar_sandbox):
    last = _query(calendar_sandbox, "real", {"BASS_DT": "99991231"})
    beyond = _query(calendar_sandbox, "real", {"BASS_DT": "99991231", "CTX_AREA_NK": "99991231"}, tr_cont="N")

    assert last.status_code == 200 and last.headers["tr_cont"] == "D"
    assert [r["bass_dt"] for r in last.json()["output"]] == ["99991231"]
    assert beyond.status_code == 200 and beyond.json()["msg1"] == "ERROR INVALID INPUT [CTX_AREA_NK]"


def test_the_paper_listener_refuses_it_unless_configured(calendar_sandbox):
    refused = _query(calendar_sandbox, "paper", {"BASS_DT": "20260220"})

    assert refused.status_code == 500
    assert (refused.json()["msg_cd"], refused.json()["msg1"]) == ("EGW02006", "모의투자 TR 이 아닙니다.")
    with SandboxThread(base_config(paper_holiday="serve", data_dir=None, universe_size=1)) as serving:
        served = _query(serving, "paper", {"BASS_DT": "20260220"})
    assert served.status_code == 200 and served.json()["msg_cd"] == "KIOK0500"


def test_the_real_tr_id_on_the_paper_path_is_not_a_service(calendar_sandbox):
    cred = fresh_credential("real")
    with httpx.Client(base_url=rest_url(calendar_sandbox, "real"), timeout=10) as c:
        headers = data_headers(get_token(c, cred), cred, "VTCA0903R")
        body = c.get(HOLIDAY, params={"BASS_DT": "20260220"}, headers=headers).json()
    assert body["msg_cd"] == "OPSQ0002"


def test_calendar_session_times():
    calendar = SandboxCalendar(frozenset({CLOSED_DAY}))

    assert calendar.session_times(dt.date(2026, 11, 19)) == SessionTimes(10 * 3600, 16 * 3600 + 30 * 60)
    assert calendar.session_times(dt.date(2026, 1, 2)) == SessionTimes(10 * 3600, 15 * 3600 + 30 * 60)
    assert calendar.session_times(dt.date(2026, 2, 20)) == SessionTimes()
    assert calendar.session_times(CLOSED_DAY) is None
    assert calendar.session_times(dt.date(2026, 6, 3)) is None


def test_a_replayed_csat_day_runs_at_its_own_times():
    """The synthetic market on CSAT day: the session opens at 10:00, the auction starts 16:20, the last print
    is at 16:30, and the minute chart starts at 10:00."""
    cfg = base_config(replay_date=dt.date(2026, 11, 19), data_dir=None, universe_size=1, speed=0.0001)
    with SandboxThread(cfg) as sandbox:
        core = sandbox.server.core
        tape = next(iter(core.market.tapes.values()))
        ticks = tape.all_ticks()
        assert core.clock_status()["session"] == CONTINUOUS
        assert core.clock_status()["catching_up"] is False  # no connection waits for the tape
        assert core.clock.now_dt().time().replace(microsecond=0) == dt.time(10, 0)
        assert ticks[0].t_ms >= 10 * 3600 * 1000 and ticks[-1].t_ms == tape.closing_print_ms
        assert (16 * 3600 + 30 * 60) * 1000 <= tape.closing_print_ms <= (16 * 3600 + 30 * 60 + 30) * 1000
        assert sum(t.volume for t in ticks) > 0
        sandbox.call(core.jump_to, 16 * 3600 + 25 * 60)
        assert core.clock_status()["session"] == CLOSING_AUCTION
        sandbox.call(core.jump_to, 16 * 3600 + 31 * 60)
        assert core.clock_status()["session"] == CLOSED
        bars = tape.minute_bars(core.clock.now_ms())
        assert bars[0].minute_s == 10 * 3600 and bars[-1].minute_s == 16 * 3600 + 30 * 60
        sandbox.call(core.restart_session)
        assert core.clock.now_dt().time().replace(microsecond=0) == dt.time(10, 0)
