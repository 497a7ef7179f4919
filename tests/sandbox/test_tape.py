"""The realistic tape: print counts and sizes calibrated to the real KIS frames, the opening and closing
bursts, densities, books consistent with the prints, and a state that is a pure function of time."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import statistics
import time

import httpx
import pytest
import websockets

from apps.core.krx.rules import TickTable
from apps.sandbox import data, quotes
from apps.sandbox.clock import CLOSE_S, CONTINUOUS_END_S, OPEN_S
from apps.sandbox.config import LIGHT_TAPE, REAL_TAPE, TapeDensity, config_from_settings
from apps.sandbox.data import DailyBar, Instrument, IntradayBar
from apps.sandbox.kiwoom import ws as kiwoom_ws
from apps.sandbox.kiwoom.ws import BOOK_FIDS, TRADE_FIDS, book_values, encode_book, encode_trade, trade_values
from apps.sandbox.layouts import H0STASP0_FIELDS, H0STCNT0_FIELDS, build_frame, parse_frame
from apps.sandbox.replay import (
    BUY,
    CALIBRATION_FRAMES,
    OPENING_PRINT_SHARE,
    PRINT_SIZE_EXPONENT,
    ROUND_LOT_SHARE,
    DayTape,
    Grid,
    RunningState,
    Tick,
    build_market,
    generate_bar_ticks,
    mean_print_size,
    print_sizes,
    spread_daily_bar,
)
from apps.sandbox.server import SandboxCore, SandboxThread
from apps.sandbox.ws import WsConnection, WsHub

from .conftest import ADMIN, base_config, fresh_credential, requires_data, rest_url, shared_market
from .test_ws import sub

DAY = dt.date(2026, 2, 20)
GRID = Grid(TickTable(), DAY, "KOSPI")


def synthetic_tape(density: TapeDensity, volume: int = 15_000_000, price: int = 70_000) -> DayTape:
    """A fresh tape (its own cache) of one spread daily bar, as the sandbox replays a daily-only stock."""
    daily = DailyBar(DAY, price, price + 2_000, price - 1_500, price + 600, volume)
    bars = spread_daily_bar(daily, random.Random("tape:spread"), GRID)
    inst = Instrument("005930", "삼성전자", "KOSPI", 5_919_637_922)
    return DayTape(
        inst, DAY, bars, prev_close=price - 500, prev_volume=volume, seed=7, grid=GRID, density=density, source="test"
    )


# --- calibration -------------------------------------------------------------------------------------


def test_calibration_constants_are_the_real_frames_figures() -> None:
    frames = [parse_frame(f) for f in data.load_real_frames(requires_data())]
    trades = [f.records[0] for f in frames if f.tr_id == "H0STCNT0"]
    got = [
        (
            f"{r['BSOP_DATE'][:4]}-{r['BSOP_DATE'][4:6]}-{r['BSOP_DATE'][6:]} "
            f"{r['STCK_CNTG_HOUR'][:2]}:{r['STCK_CNTG_HOUR'][2:4]}:{r['STCK_CNTG_HOUR'][4:]}",
            int(r["ACML_VOL"]),
            int(r["SELN_CNTG_CSNU"]) + int(r["SHNU_CNTG_CSNU"]),
            int(r["ACML_TR_PBMN"]),
        )
        for r in trades
    ]
    assert got == list(CALIBRATION_FRAMES)
    # The size law passes through both frames: mean shares a print = volume / prints at the frame's VWAP.
    for _t, volume, count, value in got:
        assert mean_print_size(value / volume) == pytest.approx(volume / count, rel=1e-9)
    assert PRINT_SIZE_EXPONENT == pytest.approx(1.033, abs=0.001)
    assert mean_print_size(190_100) == pytest.approx(73.9, abs=0.1)


@pytest.mark.parametrize("price", [23_150, 62_700, 190_100, 949_000])
def test_print_sizes_are_heavy_tailed_round_lots_with_the_calibrated_mean(price: int) -> None:
    mean = mean_print_size(price)
    total = int(mean * 60_000)
    sizes = print_sizes(total, mean, random.Random(f"sizes:{price}"))
    assert sum(sizes) == total and min(sizes) >= 1
    assert len(sizes) == pytest.approx(60_000, rel=0.06)
    assert statistics.fmean(sizes) == pytest.approx(mean, rel=0.06)
    assert statistics.median(sizes) < mean / 2  # most prints are small ...
    assert max(sizes) > 50 * mean  # ... and a few are blocks
    big = [s for s in sizes if s >= 10]
    round_lots = [s for s in big if s % 10 ** (len(str(s)) - 1) == 0]
    assert len(round_lots) / len(big) >= ROUND_LOT_SHARE


def test_print_count_follows_the_volume_and_the_density() -> None:
    bar = IntradayBar(OPEN_S + 3600, OPEN_S + 3660, 190_000, 190_300, 189_800, 190_100, 600_000)
    expected = bar.volume / mean_print_size(190_050)  # about 8,100 prints in the minute
    real = generate_bar_ticks(bar, random.Random("count"), GRID, REAL_TAPE)
    triple = generate_bar_ticks(bar, random.Random("count"), GRID, TapeDensity(scale=3.0))
    light = generate_bar_ticks(bar, random.Random("count"), GRID, LIGHT_TAPE)
    assert len(real) == pytest.approx(expected, rel=0.15)
    assert len(triple) == pytest.approx(3 * expected, rel=0.15)
    assert 10 <= len(light) <= 40
    for ticks in (real, triple, light):
        prices = [t.price for t in ticks]
        assert (prices[0], max(prices), min(prices), prices[-1]) == (bar.open, bar.high, bar.low, bar.close)
        assert sum(t.volume for t in ticks) == bar.volume and all(GRID.on_grid(p) for p in prices)
        assert all(bar.start_s * 1000 <= t.t_ms < bar.end_s * 1000 for t in ticks)
        assert [t.t_ms for t in ticks] == sorted(t.t_ms for t in ticks)


def test_replay_day_prints_per_minute_in_the_documented_range() -> None:
    requires_data()
    market = shared_market(base_config())
    per_minute = {}
    for code, tape in market.tapes.items():
        prints = sum(b.volume / mean_print_size((b.open + b.high + b.low + b.close) / 4) for b in tape.bars)
        per_minute[code] = prints / 380
    assert 700 <= per_minute["005930"] <= 1000  # ~800 a minute (24.2 M shares at 190,100)
    assert 700 <= per_minute["000660"] <= 1000
    ordered = sorted(per_minute.values())
    assert 7 <= ordered[len(ordered) // 2] <= 120  # most of the top 50 print 7-120 times a minute
    # The generated bars have those counts: 005930's midday minutes at real density.
    tape = market.tapes["005930"]
    for bar in tape.bars[180:185]:
        ticks = generate_bar_ticks(bar, random.Random(f"mid:{bar.start_s}"), tape.grid, REAL_TAPE)
        assert len(ticks) == pytest.approx(bar.volume / mean_print_size(bar.close), rel=0.3)


def test_open_and_close_burst() -> None:
    """The print rate has the intraday U-shape: the first and last ten minutes of the continuous session
    print several times as often as 12:00-13:00."""
    tape = synthetic_tape(REAL_TAPE)
    counts: dict[int, int] = {}
    for bar in tape.bars:
        minute = (bar.start_s - OPEN_S) // 60
        if minute < 10 or 180 <= minute < 240 or 370 <= minute < 380:
            counts[minute] = len(generate_bar_ticks(bar, random.Random(f"burst:{minute}"), GRID, REAL_TAPE))
    rate = {
        "open": statistics.fmean(counts.get(m, 0) for m in range(10)),
        "midday": statistics.fmean(counts.get(m, 0) for m in range(180, 240)),
        "close": statistics.fmean(counts.get(m, 0) for m in range(370, 380)),
    }
    assert rate["open"] >= 3 * rate["midday"] and rate["close"] >= 1.5 * rate["midday"], rate


def test_opening_print_and_closing_auction_print() -> None:
    tape = synthetic_tape(LIGHT_TAPE)
    first_bar, closing_bar = tape.bars[0], tape.bars[-1]
    ticks = tape.all_ticks()
    opening = ticks[0]
    assert opening.t_ms == OPEN_S * 1000 and opening.price == first_bar.open
    lo, hi = OPENING_PRINT_SHARE
    assert int(first_bar.volume * lo) <= opening.volume <= int(first_bar.volume * hi)
    # The closing print comes after the close by the auction's random end (0-30 s, seeded per stock and day).
    assert closing_bar.start_s == closing_bar.end_s == tape.closing_print_ms // 1000
    assert CLOSE_S <= closing_bar.start_s <= CLOSE_S + 30
    assert [t for t in ticks if t.t_ms >= CONTINUOUS_END_S * 1000] == [ticks[-1]]
    assert (ticks[-1].t_ms, ticks[-1].volume) == (tape.closing_print_ms, closing_bar.volume)
    ends = {
        DayTape(tape.instrument, tape.date, list(tape.bars[:-1]) + [IntradayBar(CLOSE_S, CLOSE_S, 1, 1, 1, 1, 5)],
                prev_close=1, prev_volume=1, seed=seed, grid=tape.grid, source="t").closing_print_ms
        for seed in range(40)
    }  # fmt: skip
    assert len(ends) > 5 and min(ends) >= CLOSE_S * 1000 and max(ends) <= (CLOSE_S + 30) * 1000
    # A recorded 1-minute bar starting at 09:00 opens the same way.
    bar = IntradayBar(OPEN_S, OPEN_S + 60, 44_150, 44_200, 43_800, 43_850, 1_634_955)
    grid = Grid(TickTable(), dt.date(2020, 3, 20), "KOSPI")
    first = generate_bar_ticks(bar, random.Random("open"), grid, REAL_TAPE)[0]
    assert first.t_ms == OPEN_S * 1000 and 0.4 * bar.volume <= first.volume <= 0.7 * bar.volume


def test_tape_density_setting(settings) -> None:
    assert TapeDensity.parse("real") == REAL_TAPE and TapeDensity.parse("") == REAL_TAPE
    assert TapeDensity.parse("Light") == LIGHT_TAPE and LIGHT_TAPE.max_per_minute == 20
    assert TapeDensity.parse(" 3 ") == TapeDensity(scale=3.0) and TapeDensity.parse("0.5").scale == 0.5
    for bad in ("fast", "0", "-1", "11", "nan", "inf"):
        with pytest.raises(ValueError):
            TapeDensity.parse(bad)
    settings.SANDBOX_TAPE_DENSITY = "light"
    assert config_from_settings().tape_density == LIGHT_TAPE
    settings.SANDBOX_TAPE_DENSITY = "2.5"
    assert config_from_settings().tape_density == TapeDensity(scale=2.5)
    settings.SANDBOX_TAPE_DENSITY = "heavy"
    with pytest.raises(ValueError, match="SANDBOX_TAPE_DENSITY"):
        config_from_settings()


# --- books -------------------------------------------------------------------------------------------


def assert_books_consistent(tape: DayTape, until_ms: int) -> tuple[int, int]:
    """Walk every event up to ``until_ms``; returns (prints, quote updates)."""
    last: int | None = None
    prints = quotes_only = 0
    per_bar: dict[int, list[int]] = {}
    prev_t = -1
    for ev in tape.events(-1, until_ms):
        book = ev.book
        assert ev.t_ms >= prev_t and book != ev.prev_book  # every event changes the book
        prev_t = ev.t_ms
        asks = [p for p in book.asks if p]
        bids = [p for p in book.bids if p]
        assert asks == sorted(set(asks)) and bids == sorted(set(bids), reverse=True)
        assert all(q > 0 for p, q in zip(book.asks + book.bids, book.ask_qty + book.bid_qty, strict=True) if p)
        assert all(q == 0 for p, q in zip(book.asks + book.bids, book.ask_qty + book.bid_qty, strict=True) if not p)
        if asks and bids:
            assert asks[0] > bids[0]
        counts = per_bar.setdefault(tape._bar_at(ev.t_ms), [0, 0])
        if ev.tick is not None:
            # A buy prints at the best ask, a sell at the best bid.
            assert ev.tick.price == (book.asks[0] if ev.tick.side == BUY else book.bids[0])
            last = ev.tick.price
            prints += 1
            counts[0] += 1
        else:
            quotes_only += 1
            counts[1] += 1
        if last is not None:  # every book brackets the last print
            assert (not bids or bids[0] <= last) and (not asks or last <= asks[0])
    for index, (n_prints, n_quotes) in per_bar.items():
        if tape.bars[index].end_s > tape.bars[index].start_s:
            assert n_quotes >= n_prints, (index, n_prints, n_quotes)
    return prints, quotes_only


def test_books_change_on_every_print_and_between_prints_consistently() -> None:
    light = synthetic_tape(LIGHT_TAPE)
    prints, quote_updates = assert_books_consistent(light, light.closing_print_ms)
    assert prints == len(light.all_ticks()) and quote_updates >= prints
    assert (prints, quote_updates) == light.counts()
    real = synthetic_tape(REAL_TAPE)
    prints, quote_updates = assert_books_consistent(real, (OPEN_S + 900) * 1000)
    assert prints > 3_000 and quote_updates >= prints  # the first 15 minutes of ~72,000 prints a day


def test_books_follow_recorded_off_grid_extremes() -> None:
    grid = Grid(TickTable(), DAY, "KOSDAQ")
    daily = DailyBar(DAY, 91_000, 93_500, 89_950, 92_000, 1_234_567)  # 89,950 is off the 100-won grid
    bars = spread_daily_bar(daily, random.Random("offgrid"), grid)
    inst = Instrument("999990", "test", "KOSDAQ", 1_000_000)
    tape = DayTape(
        inst, DAY, bars, prev_close=90_500, prev_volume=1_000_000, seed=3, grid=grid, density=REAL_TAPE, source="t"
    )
    assert_books_consistent(tape, tape.closing_print_ms)
    assert min(t.price for t in tape.all_ticks()) == 89_950


def test_state_is_a_pure_function_of_time_and_regenerated_bars_are_identical() -> None:
    tape = synthetic_tape(LIGHT_TAPE)
    ticks = tape.all_ticks()  # generates the day; the cache keeps only the last bars
    again = synthetic_tape(LIGHT_TAPE)
    for index in (0, 1, 200, len(tape.bars) - 1):
        a, b = tape.bar_tape(index), again.bar_tape(index)  # bar 0 of ``tape`` is regenerated
        assert (a.ticks, a.ev_t, a.ev_book) == (b.ticks, b.ev_t, b.ev_book)
    for t_ms in (OPEN_S * 1000 - 1, OPEN_S * 1000, 37_000_123, 45_123_456, CLOSE_S * 1000):
        folded = RunningState()
        for tick in ticks:
            if tick.t_ms <= t_ms:
                folded.apply(tick)
        assert tape.state_at(t_ms) == folded
        assert tape.ticks_between(-1, t_ms) == [tick for tick in ticks if tick.t_ms <= t_ms]
    split = 40_000_000
    whole = [(e.t_ms, e.tick, e.book, e.prev_book) for e in tape.events(36_000_000, 44_000_000)]
    parts = [(e.t_ms, e.tick, e.book, e.prev_book) for e in tape.events(36_000_000, split)]
    parts += [(e.t_ms, e.tick, e.book, e.prev_book) for e in again.events(split, 44_000_000)]
    assert whole == parts
    assert tape.order_book_at(split) == whole[[t for t, *_ in whole].index(max(t for t, *_ in whole if t <= split))][2]
    # Minute bars of a moment inside a minute aggregate the prints so far.
    mid = 41_000_500
    bars = tape.minute_bars(mid)
    seen = [tick for tick in ticks if tick.t_ms <= mid]
    assert sum(b.volume for b in bars) == sum(t.volume for t in seen)
    assert bars[-1].cum_value == sum(t.price * t.volume for t in seen)
    last_minute = [t for t in seen if t.t_ms // 60000 == mid // 60000]
    assert (bars[-1].open, bars[-1].close) == (last_minute[0].price, last_minute[-1].price)


def test_running_state_copy_keeps_every_field() -> None:
    state = RunningState(*range(1, 10), "5", *range(11, 19))
    assert state.copy() == state and state.copy() is not state


# --- records -----------------------------------------------------------------------------------------


def test_records_carry_each_value_under_its_field_name() -> None:
    tape = synthetic_tape(LIGHT_TAPE)
    events = list(tape.events(37_800_000, 37_900_000))
    ev = next(e for e in events if e.tick is not None)
    tick: Tick = ev.tick
    st, book = ev.state, ev.book
    rec = dict(zip(H0STCNT0_FIELDS, quotes.cnt0_record(tape, tick, st, book), strict=True))
    assert rec["MKSC_SHRN_ISCD"] == "005930" and rec["STCK_CNTG_HOUR"] == quotes.hhmmss(tick.t_ms)
    assert (rec["STCK_PRPR"], rec["CNTG_VOL"], rec["CCLD_DVSN"]) == (str(tick.price), str(tick.volume), tick.side)
    assert (rec["ACML_VOL"], rec["ACML_TR_PBMN"]) == (str(st.volume), str(st.value))
    assert (rec["SELN_CNTG_CSNU"], rec["SHNU_CNTG_CSNU"]) == (str(st.sell_count), str(st.buy_count))
    assert (rec["SELN_CNTG_SMTN"], rec["SHNU_CNTG_SMTN"]) == (str(st.sell_volume), str(st.buy_volume))
    assert (rec["ASKP1"], rec["BIDP1"]) == (str(book.asks[0]), str(book.bids[0]))
    assert (rec["ASKP_RSQN1"], rec["TOTAL_BIDP_RSQN"]) == (str(book.ask_qty[0]), str(sum(book.bid_qty)))
    assert (rec["STCK_OPRC"], rec["STCK_HGPR"], rec["STCK_LWPR"]) == (str(st.open), str(st.high), str(st.low))
    assert (rec["OPRC_HOUR"], rec["LWPR_VRSS_PRPR"]) == (quotes.hhmmss(st.open_ms), str(tick.price - st.low))
    assert (rec["BSOP_DATE"], rec["NEW_MKOP_CLS_CODE"], rec["VI_STND_PRC"]) == ("20260220", "20", str(st.open))
    asp = dict(zip(H0STASP0_FIELDS, quotes.asp0_record(tape, ev.t_ms, st, book, ev.prev_book), strict=True))
    assert [asp[f"ASKP{i}"] for i in range(1, 11)] == [str(p) for p in book.asks]
    assert [asp[f"BIDP_RSQN{i}"] for i in range(1, 11)] == [str(q) for q in book.bid_qty]
    assert asp["TOTAL_ASKP_RSQN_ICDC"] == str(sum(book.ask_qty) - sum(ev.prev_book.ask_qty))
    assert (asp["ACML_VOL"], asp["ANTC_VOL"]) == (str(st.volume), str(st.first_volume))
    assert build_frame("H0STASP0", [list(asp.values())]).startswith("0|H0STASP0|001|005930^")
    # Kiwoom entries: the hand-built JSON is what json.dumps gives for the same values, every FID in order.
    trade = trade_values(tape, tick, st, book, "005930_AL")
    assert list(trade) == list(TRADE_FIDS) and trade["9081"] == "3"
    assert encode_trade(tape, tick, st, book) + kiwoom_ws._TRADE_TAILS["_AL"] == compact(trade)
    quote = book_values(tape, ev.t_ms, st, book, ev.prev_book)
    assert list(quote) == list(BOOK_FIDS)
    assert encode_book(tape, ev.t_ms, st, book, ev.prev_book) == compact(quote)


def compact(values: dict[str, str]) -> str:
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


# --- the listeners -----------------------------------------------------------------------------------


def test_flush_catches_up_a_slice_at_a_time_after_a_clock_jump(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a jump far into the day the listeners generate the tape a slice per flush (the event loop keeps
    answering) and then send the whole window since the jump."""
    from apps.sandbox import ws as ws_module

    core, hub, conn = jumped_hub()
    monkeypatch.setattr(ws_module, "CATCH_UP_BUDGET_S", 0.0)  # one bar per flush
    monkeypatch.setattr(ws_module, "CATCH_UP_MAX_HOLD_S", 3600.0)
    flushes = 0
    while conn.queue.empty():
        hub.flush()
        flushes += 1
        assert hub.cursor_ms == 13 * 3600 * 1000 - 1 or not conn.queue.empty()
        assert flushes < 1000
    assert flushes > 100  # about 240 bars per stock were generated, one per flush
    frames = [conn.queue.get_nowait() for _ in range(conn.queue.qsize())]
    records = [r for f in frames for r in parse_frame(f).records]
    assert {r["MKSC_SHRN_ISCD"] for r in records} == {"005930", "000660"}
    assert min(r.get("STCK_CNTG_HOUR") or r["BSOP_HOUR"] for r in records) >= "130000"


def test_a_long_catch_up_resumes_from_the_current_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A catch-up that held the sends for long does not send the whole wait at once: it resumes from now."""
    from apps.sandbox import ws as ws_module

    core, hub, conn = jumped_hub()
    monkeypatch.setattr(ws_module, "CATCH_UP_BUDGET_S", 0.0)
    monkeypatch.setattr(ws_module, "CATCH_UP_MAX_HOLD_S", 0.0)
    while hub.cursor_ms == 13 * 3600 * 1000 - 1:
        hub.flush()
    resumed_ms = hub.cursor_ms
    assert resumed_ms > 13 * 3600 * 1000  # the clock moved on while the tapes were generated
    while conn.queue.qsize() < 5:
        time.sleep(0.05)
        hub.flush()
    frames = [conn.queue.get_nowait() for _ in range(conn.queue.qsize())]
    times = [r.get("STCK_CNTG_HOUR") or r["BSOP_HOUR"] for f in frames for r in parse_frame(f).records]
    assert min(times) >= quotes.hhmmss(resumed_ms)


def jumped_hub() -> tuple[SandboxCore, WsHub, WsConnection]:
    """A KIS hub with one connection on two synthetic stocks, its clock moved to 13:00."""
    cfg = base_config(data_dir=None, replay_date=DAY, universe_size=2)
    core = SandboxCore(cfg, build_market(cfg))
    hub = core.hub
    conn = WsConnection(None, None, "real", asyncio.Queue(100_000))  # type: ignore[arg-type]
    conn.subs = {("H0STCNT0", "005930"), ("H0STASP0", "000660")}
    hub.connections.add(conn)
    core.jump_to(13 * 3600)
    return core, hub, conn


@pytest.mark.asyncio
async def test_session_restart_sends_the_opening_print_and_books_between_prints() -> None:
    cfg = base_config(speed=30.0)
    with SandboxThread(cfg, shared_market(cfg)) as box:
        tape = box.server.core.market.tape("005930")  # type: ignore[union-attr]
        assert tape is not None
        cred = fresh_credential("real")
        body = {"grant_type": "client_credentials", "appkey": cred.appkey, "secretkey": cred.appsecret}
        key = httpx.post(f"{rest_url(box, 'real')}/oauth2/Approval", json=body).json()["approval_key"]
        trades: list[dict[str, str]] = []
        books: list[dict[str, str]] = []
        async with websockets.connect(f"ws://127.0.0.1:{box.ports.real_ws}/") as ws:
            for tr_id in ("H0STCNT0", "H0STASP0"):
                await ws.send(sub(key, tr_id, "005930"))
                assert '"OPSP0000"' in await asyncio.wait_for(ws.recv(), 3)
            await asyncio.to_thread(
                httpx.post,
                f"{rest_url(box, 'real')}/sandbox/clock",
                json={"action": "restart"},
                headers={"X-Sandbox-Admin": ADMIN},
            )
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline and (len(trades) < 30 or len(books) < 60):
                raw = await asyncio.wait_for(ws.recv(), 3)
                if raw.startswith("{"):
                    if '"PINGPONG"' in raw:
                        await ws.send(raw)
                    continue
                frame = parse_frame(raw)
                (trades if frame.tr_id == "H0STCNT0" else books).extend(frame.records)
    opening = tape.all_ticks()[0]
    sent = [r for r in trades if r["STCK_CNTG_HOUR"] == "090000" and r["ACML_VOL"] == str(opening.volume)]
    assert sent and sent[0]["CNTG_VOL"] == str(opening.volume)
    after_open = [r for r in books if r["BSOP_HOUR"] >= "090000" and int(r["ACML_VOL"]) >= opening.volume]
    prints_after = [r for r in trades if int(r["ACML_VOL"]) >= opening.volume]
    assert len(after_open) >= len(prints_after) >= 30  # quote updates without a print come on top of the prints
