"""The sandbox's whole market day (apps/sandbox/day.py, dayframes.py): the phase at each boundary, the
synthetic closing-price, after-hours and NXT prints, VI episodes over the tape, and the frames of each phase."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random

import httpx
import pytest
import websockets

from apps.core.krx import phases as P
from apps.core.krx.rules import TickTable
from apps.sandbox import dayframes
from apps.sandbox.clock import REGULAR, SessionTimes
from apps.sandbox.config import LIGHT_TAPE
from apps.sandbox.data import DailyBar, Instrument
from apps.sandbox.day import (
    NEW_MKOP_BY_PHASE,
    DayModel,
    ViRules,
    krx_also,
    krx_phase,
    nxt_phase,
    phase_changes,
)
from apps.sandbox.layouts import H0STASP0_FIELDS, H0STCNT0_FIELDS, H0STMKO0_FIELDS, parse_frame
from apps.sandbox.replay import DayTape, Grid, spread_daily_bar
from apps.sandbox.server import SandboxThread
from apps.sandbox.venues import VenueModel

from .conftest import ADMIN, base_config

DAY = dt.date(2026, 2, 20)
GRID = Grid(TickTable(), DAY, "KOSPI")


def hms(text: str) -> int:
    h, m, s = (int(x) for x in text.split(":"))
    return (h * 3600 + m * 60 + s) * 1000


def make_tape(seed: int = 7, code: str = "005930") -> DayTape:
    daily = DailyBar(DAY, 70_000, 72_000, 68_500, 70_600, 15_000_000)
    bars = spread_daily_bar(daily, random.Random(f"day:{seed}"), GRID)
    inst = Instrument(code, "삼성전자", "KOSPI", 5_919_637_922)
    return DayTape(inst, DAY, bars, prev_close=69_500, prev_volume=15_000_000, seed=seed, grid=GRID,
                   density=LIGHT_TAPE, source="test")  # fmt: skip


def make_day(**kwargs) -> DayModel:
    tape = make_tape(kwargs.pop("seed", 7))
    return DayModel(tape, nxt_eligible=kwargs.pop("nxt_eligible", True), kospi200=kwargs.pop("kospi200", True),
                    **kwargs)  # fmt: skip


def second(hhmmss: str) -> int:
    return int(hhmmss[:2]) * 3600 + int(hhmmss[2:4]) * 60 + int(hhmmss[4:])


def records(frame_records: list[list[str]], layout: tuple[str, ...]) -> list[dict[str, str]]:
    return [dict(zip(layout, r, strict=True)) for r in frame_records]


# --- the schedule ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "krx", "also", "nxt"),
    [
        ("07:59:59", P.CLOSED, (), P.CLOSED),
        ("08:00:00", P.CLOSED, (), P.NXT_PRE),
        ("08:29:59", P.CLOSED, (), P.NXT_PRE),
        ("08:30:00", P.OPENING_AUCTION, (P.PRE_CLOSE_PRICE,), P.NXT_PRE),
        ("08:39:59", P.OPENING_AUCTION, (P.PRE_CLOSE_PRICE,), P.NXT_PRE),
        ("08:40:00", P.OPENING_AUCTION, (), P.NXT_PRE),
        ("08:50:00", P.OPENING_AUCTION, (), P.CLOSED),
        ("09:00:00", P.CONTINUOUS, (), P.CLOSED),
        ("09:00:30", P.CONTINUOUS, (), P.CONTINUOUS),
        ("15:19:59", P.CONTINUOUS, (), P.CONTINUOUS),
        ("15:20:00", P.CLOSING_AUCTION, (), P.CLOSED),
        ("15:30:00", P.POST_CLOSE_PRICE, (), P.NXT_AFTER),
        ("16:00:00", P.AFTER_HOURS_SINGLE, (), P.NXT_AFTER),
        ("17:59:59", P.AFTER_HOURS_SINGLE, (), P.NXT_AFTER),
        ("18:00:00", P.CLOSED, (), P.NXT_AFTER),
        ("20:00:00", P.CLOSED, (), P.CLOSED),
    ],
)
def test_phase_at_each_boundary(at: str, krx: str, also: tuple[str, ...], nxt: str) -> None:
    s = hms(at) / 1000
    assert krx_phase(REGULAR, s) == krx
    assert krx_also(REGULAR, s) == also
    assert nxt_phase(s) == nxt


def test_the_closing_auction_lasts_until_its_random_end_and_special_days_move_krx_windows() -> None:
    assert krx_phase(REGULAR, hms("15:30:10") / 1000, closing_print_s=hms("15:30:17") / 1000) == P.CLOSING_AUCTION
    assert krx_phase(REGULAR, hms("15:30:17") / 1000, closing_print_s=hms("15:30:17") / 1000) == P.POST_CLOSE_PRICE
    csat = SessionTimes(open_s=10 * 3600, close_s=16 * 3600 + 30 * 60)
    assert krx_phase(csat, hms("09:15:00") / 1000) == P.CLOSED
    assert krx_phase(csat, hms("09:30:00") / 1000) == P.OPENING_AUCTION
    assert krx_phase(csat, hms("16:20:00") / 1000) == P.CLOSING_AUCTION
    assert krx_phase(csat, hms("17:00:00") / 1000) == P.AFTER_HOURS_SINGLE
    changes = phase_changes(REGULAR)
    assert (hms("08:30:00") // 1000, P.KRX, P.OPENING_AUCTION) in changes
    assert (hms("18:00:00") // 1000, P.KRX, P.CLOSED) in changes
    assert (hms("20:00:00") // 1000, P.NXT, P.CLOSED) in changes


# --- synthetic prints ------------------------------------------------------------------------------------------


def test_closing_price_and_after_hours_prints_are_deterministic_small_and_inside_their_rules() -> None:
    day, again = make_day(), make_day()
    extra = day.krx_extra()
    assert extra == again.krx_extra() and extra != make_day(seed=8).krx_extra()
    pre = [p for p in extra if p.phase == P.PRE_CLOSE_PRICE]
    post = [p for p in extra if p.phase == P.POST_CLOSE_PRICE]
    calls = [p for p in extra if p.phase == P.AFTER_HOURS_SINGLE]
    assert pre and post and calls
    assert all(hms("08:30:00") <= p.t_ms < hms("08:40:00") and p.price == 69_500 for p in pre)
    assert all(hms("15:40:00") <= p.t_ms < hms("16:00:00") and p.price == day.today_close == 70_600 for p in post)
    call_times = day.after_hours_call_times()
    assert len(call_times) == 12 and call_times[0] == hms("16:10:00") and call_times[-1] == hms("18:00:00")
    low, high = day.after_hours_band()
    assert low >= 70_600 * 0.9 and high <= 70_600 * 1.1
    for p in calls:
        assert p.t_ms in call_times and low <= p.price <= high and GRID.on_grid(p.price)
    assert all(1 <= p.volume < 15_000_000 * 0.01 for p in extra)
    assert all(p.venue == P.KRX for p in extra)


def test_nxt_prints_only_for_eligible_stocks_in_nxt_windows() -> None:
    day = make_day()
    nxt = day.nxt_extra()
    assert nxt and all(p.venue == P.NXT for p in nxt)
    pre = [p for p in nxt if p.phase == P.NXT_PRE]
    after = [p for p in nxt if p.phase == P.NXT_AFTER]
    assert pre and after and len(pre) + len(after) == len(nxt)
    assert all(hms("08:00:00") <= p.t_ms < hms("08:50:00") for p in pre)
    assert after[0].t_ms == hms("15:40:00")  # the after-market's single-price open
    assert all(hms("15:40:00") <= p.t_ms < hms("20:00:00") for p in after)
    tape = day.tape
    assert all(tape.lower_limit <= p.price <= tape.upper_limit for p in nxt)
    assert make_day(nxt_eligible=False).nxt_extra() == []
    assert make_day(nxt_eligible=False).nxt_phase(hms("10:00:00")) == P.CLOSED


# --- VI ----------------------------------------------------------------------------------------------------------


def test_a_forced_vi_pauses_continuous_prints_then_one_vi_auction_print_carries_their_volume() -> None:
    day = make_day()
    assert day.episodes() == []
    day.force_vi(hms("10:00:00"), "dynamic")
    (ep,) = day.episodes()
    assert ep.kind == "dynamic" and ep.forced and ep.start_ms >= hms("10:00:00")
    assert 120_000 <= ep.end_ms - ep.start_ms <= 151_000
    inside = [t for t in day.tape.ticks_between(ep.start_ms - 1, ep.end_ms - 1)]
    assert inside and ep.volume == sum(t.volume for t in inside) and ep.price == inside[-1].price
    prints = day.krx_prints(ep.start_ms - 60_000, ep.end_ms + 60_000)
    assert [p for p in prints if ep.start_ms <= p.t_ms < ep.end_ms] == []
    vi_prints = [p for p in prints if p.phase == P.VI_AUCTION]
    assert [(p.t_ms, p.price, p.volume) for p in vi_prints] == [(ep.end_ms, ep.price, ep.volume)]
    assert any(p.phase == P.CONTINUOUS and p.t_ms > ep.end_ms for p in prints)
    assert day.krx_phase(ep.start_ms + 1000) == P.VI_AUCTION and day.krx_phase(ep.end_ms) == P.CONTINUOUS
    phase, exp = day.expected_at(ep.start_ms + 30_000)
    assert phase == P.VI_AUCTION and exp.price > 0 and exp.quantity > 0


def test_the_tape_triggers_static_and_dynamic_vi_on_their_thresholds() -> None:
    # With thresholds below the tape's one-tick moves, the first continuous print that moves triggers a dynamic VI.
    dynamic = make_day(rules=ViRules(static_pct=50.0, dynamic_pct_kospi200=0.1, dynamic_pct_other=0.1))
    episodes = dynamic.episodes()
    assert episodes and all(e.kind == "dynamic" and not e.forced for e in episodes)
    first = episodes[0]
    assert abs(first.trigger - first.reference) * 1000 >= 1 * first.reference
    # Episodes never overlap and each resumes continuous trading.
    assert all(a.end_ms <= b.start_ms for a, b in zip(episodes, episodes[1:], strict=False))
    static = make_day(rules=ViRules(static_pct=0.5, dynamic_pct_kospi200=50.0, dynamic_pct_other=50.0))
    first = static.episodes()[0]
    assert first.kind == "static" and abs(first.trigger - first.reference) * 1000 >= 5 * first.reference
    # Deterministic per day; the default thresholds (3 %/10 %) are not crossed by this quiet tape.
    assert [e.start_ms for e in make_day(rules=ViRules(0.5, 50.0, 50.0)).episodes()] == [
        e.start_ms for e in static.episodes()
    ]
    assert make_day().episodes() == []


# --- frames per phase -----------------------------------------------------------------------------------------------


def test_frames_of_a_vi_episode() -> None:
    day = make_day()
    day.force_vi(hms("11:00:00"), "static")
    (ep,) = day.episodes()
    trades, books = dayframes.krx_records(day, ep.start_ms - 20_000, ep.end_ms + 20_000, trades=True, books=True)
    trades_d = records(trades, H0STCNT0_FIELDS)
    vi = [r for r in trades_d if r["NEW_MKOP_CLS_CODE"] == NEW_MKOP_BY_PHASE[P.VI_AUCTION]]
    assert len(vi) == 1 and int(vi[0]["STCK_PRPR"]) == ep.price and int(vi[0]["CNTG_VOL"]) == ep.volume
    assert vi[0]["VI_STND_PRC"] == str(ep.price)
    continuous = [r for r in trades_d if r["NEW_MKOP_CLS_CODE"] == "20"]
    assert continuous and all(r["TRHT_YN"] == "N" for r in trades_d)
    assert [r for r in continuous if ep.start_ms // 1000 < second(r["STCK_CNTG_HOUR"]) < ep.end_ms // 1000] == []
    books_d = records(books, H0STASP0_FIELDS)
    building = [b for b in books_d if b["HOUR_CLS_CODE"] == "C"]
    assert building and all(int(b["ANTC_CNPR"]) > 0 and int(b["ANTC_CNQN"]) > 0 for b in building)
    mko = records(dayframes.mko0_records(day, ep.start_ms - 1, ep.end_ms + 1), H0STMKO0_FIELDS)
    assert [m["VI_CLS_CODE"] for m in mko] == ["1", "N"]
    assert [m["MKOP_CLS_CODE"] for m in mko] == ["115", "112"]


def test_frames_of_the_auctions_closing_price_sessions_after_hours_and_nxt() -> None:
    day = make_day()
    tape = day.tape
    # Opening auction: expected prices on the book from 08:50, HOUR_CLS_CODE B; pre-open closing-price prints.
    trades, books = dayframes.krx_records(day, hms("08:29:59"), hms("08:59:59"), trades=True, books=True)
    assert {r[H0STCNT0_FIELDS.index("NEW_MKOP_CLS_CODE")] for r in trades} == {NEW_MKOP_BY_PHASE[P.PRE_CLOSE_PRICE]}
    assert all(r[2] == "69500" for r in trades)
    books_d = records(books, H0STASP0_FIELDS)
    assert books_d and {b["HOUR_CLS_CODE"] for b in books_d} == {"B"}
    assert min(b["BSOP_HOUR"] for b in books_d) == "085000"
    # The opening print and the closing print carry their auctions.
    trades, _ = dayframes.krx_records(day, hms("08:59:59"), hms("09:00:00"), trades=True, books=False)
    assert trades[0][H0STCNT0_FIELDS.index("NEW_MKOP_CLS_CODE")] == NEW_MKOP_BY_PHASE[P.OPENING_AUCTION]
    trades, books = dayframes.krx_records(day, hms("15:19:59"), tape.closing_print_ms, trades=True, books=True)
    assert [r[H0STCNT0_FIELDS.index("NEW_MKOP_CLS_CODE")] for r in trades][-1] == NEW_MKOP_BY_PHASE[P.CLOSING_AUCTION]
    assert {b[2] for b in books[:-1] if b[1] >= "152000"} == {"A"} and {b[2] for b in books if b[1] < "152000"} <= {"0"}
    # After the close: post-close and after-hours prints on H0STOUP0, the off-hours book on H0STOAA0 (D).
    oup, oaa = dayframes.off_hours_records(day, hms("15:30:00"), hms("18:00:00"), trades=True, books=True)
    phases = [r[H0STCNT0_FIELDS.index("NEW_MKOP_CLS_CODE")] for r in oup]
    assert set(phases) == {NEW_MKOP_BY_PHASE[P.POST_CLOSE_PRICE], NEW_MKOP_BY_PHASE[P.AFTER_HOURS_SINGLE]}
    volumes = [int(r[13]) for r in oup]
    assert volumes == sorted(volumes) and volumes[0] > tape.state_at(tape.closing_print_ms).volume
    assert oaa and {r[2] for r in oaa} == {"D"} and all(int(r[47]) > 0 for r in oaa)
    anc = records(dayframes.anc0_records(day, hms("16:00:00"), hms("16:10:00")), H0STCNT0_FIELDS)
    assert anc and {r["HOUR_CLS_CODE"] for r in anc} == {"D"}
    mko = records(dayframes.mko0_records(day, hms("08:00:00"), hms("20:00:00")), H0STMKO0_FIELDS)
    assert [m["MKOP_CLS_CODE"] for m in mko] == ["110", "112", "121", "131", "141", "129"]
    # NXT: pre-market, mirrored main-market and after-market prints, each with its phase.
    nxt = dayframes.nxt_records(day, VenueModel(), hms("08:00:00") - 1, hms("20:00:00"))
    codes = {r[H0STCNT0_FIELDS.index("NEW_MKOP_CLS_CODE")] for r in nxt}
    assert codes == {NEW_MKOP_BY_PHASE[P.NXT_PRE], "20", NEW_MKOP_BY_PHASE[P.NXT_AFTER]}
    assert dayframes.nxt_records(make_day(nxt_eligible=False), VenueModel(), 0, hms("20:00:00")) == []


# --- over the sandbox's WebSocket ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_sandbox_serves_an_after_hours_call_on_h0stoup0_and_its_phase_in_the_clock_status() -> None:
    cfg = base_config(data_dir=None, universe_size=2, speed=20.0, pingpong_interval=5.0, pingpong_timeout=60.0)
    with SandboxThread(cfg) as box:
        core = box.server.core
        code = next(iter(core.market.tapes))
        day = core.days.day(code)
        call = next(p for p in day.krx_extra() if p.phase == P.AFTER_HOURS_SINGLE)
        admin = httpx.Client(base_url=f"http://127.0.0.1:{box.ports.real_rest}", headers={"X-Sandbox-Admin": ADMIN},
                             trust_env=False)  # fmt: skip
        approval = httpx.post(
            f"http://127.0.0.1:{box.ports.real_rest}/oauth2/Approval",
            json={"grant_type": "client_credentials", "appkey": cfg.app_credentials[0].appkey,
                  "secretkey": cfg.app_credentials[0].appsecret},
            trust_env=False,
        ).json()["approval_key"]  # fmt: skip
        async with websockets.connect(f"ws://127.0.0.1:{box.ports.real_ws}") as ws:
            for tr in ("H0STOUP0", "H0STMKO0"):
                await ws.send(json.dumps({"header": {"approval_key": approval, "custtype": "P", "tr_type": "1",
                                                     "content-type": "utf-8"},
                                          "body": {"input": {"tr_id": tr, "tr_key": code}}}))  # fmt: skip
            # Generate the day first (on the sandbox's loop): a long catch-up after the jump would resume from
            # "now" and skip the call (ws.CATCH_UP_MAX_HOLD_S).
            box.call(lambda: [t.prepare(len(t.bars) - 1) for t in core.market.tapes.values()])
            start = (call.t_ms - 30_000) // 1000
            resp = admin.post(
                "/sandbox/clock", json={"time": f"{start // 3600:02d}:{start // 60 % 60:02d}:{start % 60:02d}"}
            )
            assert resp.status_code == 200
            assert resp.json()["day"]["phases"] == {"KRX": P.AFTER_HOURS_SINGLE, "NXT": P.NXT_AFTER}
            assert "after-hours single-price calls" in resp.json()["day"]["synthetic"]
            found = None
            deadline = asyncio.get_running_loop().time() + 60
            while found is None:
                assert asyncio.get_running_loop().time() < deadline, "no H0STOUP0 record of the call within 60 s"
                text = await asyncio.wait_for(ws.recv(), 10)
                if "PINGPONG" in text[:60]:
                    await ws.send(text)
                elif text.startswith("0|H0STOUP0|"):
                    frame = parse_frame(text)
                    found = next((r for r in frame.records if r["STCK_PRPR"] == str(call.price)), None)
            assert found["NEW_MKOP_CLS_CODE"] == NEW_MKOP_BY_PHASE[P.AFTER_HOURS_SINGLE]
            assert found["STCK_CNTG_HOUR"] == f"{call.t_ms // 3_600_000:02d}{call.t_ms // 60_000 % 60:02d}00"
        bad = admin.post("/sandbox/vi", json={"code": "999999", "time": "10:00:00"})
        assert bad.status_code == 400
        assert admin.post("/sandbox/vi", json={"code": code, "time": "25:00:00"}).status_code == 400
        assert admin.post("/sandbox/vi", json={"code": code, "time": "10:00:00", "kind": "x"}).status_code == 400
        assert httpx.post(f"http://127.0.0.1:{box.ports.real_rest}/sandbox/vi", json={"code": code, "time": "10:00:00"},
                          trust_env=False).status_code == 403  # fmt: skip
        admin.close()


def test_expected_prices_are_the_uncrossing_of_a_synthesized_book_ending_at_the_print() -> None:
    from apps.core.krx import auction as core_auction
    from apps.sandbox.auction import auction_prints, expected_at, synthesized_book

    tape = make_tape()
    opening, closing = auction_prints(tape)
    assert opening is not None and closing is not None
    last = expected_at(tape, tape.closing_print_ms - 1)
    assert last is not None and (last.price, last.quantity) == (closing[1], closing[2])
    first = expected_at(tape, hms("08:50:00"))
    assert first is not None and first.auction == "open" and first.quantity < opening[2]
    book = synthesized_book(tape, random.Random(1), 70_000, 500, tape.lower_limit, tape.upper_limit)
    found = core_auction.expected(book, ticks=tape.grid.table)
    assert (found.price, found.volume) == (70_000, 500)
    assert len(book.orders) > 2 and {o.side for o in book.orders} == {core_auction.BUY, core_auction.SELL}
