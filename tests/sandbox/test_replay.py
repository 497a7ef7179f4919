"""Replayed prints reproduce the recorded bars exactly; synthetic mode works without data."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from apps.core.krx.rules import TickTable
from apps.sandbox import data
from apps.sandbox.clock import CLOSE_S, OPEN_S
from apps.sandbox.config import LIGHT_TAPE
from apps.sandbox.data import DailyBar, IntradayBar
from apps.sandbox.replay import DayTape, Grid, Tick, generate_bar_ticks, spread_daily_bar

from .conftest import base_config, requires_data, shared_market


def aggregate(ticks: list[Tick]) -> tuple[int, int, int, int, int]:
    prices = [t.price for t in ticks]
    return prices[0], max(prices), min(prices), prices[-1], sum(t.volume for t in ticks)


def assert_tape_reproduces(tape: DayTape, bars: list[IntradayBar]) -> int:
    """Every recorded bar with volume is reproduced exactly by the prints in its interval."""
    ticks = tape.all_ticks()
    assert ticks == sorted(ticks, key=lambda t: t.t_ms)
    checked = 0
    for bar in bars:
        lo_ms, hi_ms = bar.start_s * 1000, bar.end_s * 1000
        if lo_ms == hi_ms == tape.times.close_s * 1000:
            lo_ms = hi_ms = tape.closing_print_ms  # the closing auction's random end moves the print
        inside = [t for t in ticks if (lo_ms <= t.t_ms < hi_ms) or (lo_ms == hi_ms == t.t_ms)]
        if bar.volume == 0:
            assert inside == []
            continue
        assert aggregate(inside) == (bar.open, bar.high, bar.low, bar.close, bar.volume), bar
        for t in inside:
            assert bar.low <= t.price <= bar.high
            assert tape.grid.on_grid(t.price) or t.price in (bar.open, bar.high, bar.low, bar.close)
            assert t.side in ("1", "5") and t.volume >= 1
        checked += 1
    assert sum(t.volume for t in ticks) == sum(b.volume for b in bars)
    return checked


def test_samsung_2020_03_20_one_minute_bars_exact() -> None:
    path = requires_data()
    market = shared_market(base_config(replay_date=dt.date(2020, 3, 20)))
    tape = market.tape("005930")
    assert tape is not None and "1min" in tape.source
    recorded = data.load_creon_minutes(path)[("005930", dt.date(2020, 3, 20))]
    assert len(recorded) == 381
    assert assert_tape_reproduces(tape, recorded) == 381
    assert all(tape.grid.on_grid(t.price) for t in tape.all_ticks())
    # The day's prints reproduce the official daily bar's OHLC.
    day = aggregate(tape.all_ticks())
    assert day[:4] == (44150, 45500, 43550, 45400)
    # KIS minute labels are minute starts; the 15:30 closing print is its own bar.
    minutes = tape.minute_bars(tape.closing_print_ms)
    assert minutes[0].minute_s == OPEN_S and minutes[-1].minute_s == CLOSE_S
    assert (minutes[-1].open, minutes[-1].close, minutes[-1].volume) == (45400, 45400, 5469869)


def test_yahoo_five_minute_name_exact() -> None:
    path = requires_data()
    market = shared_market(base_config(replay_date=dt.date(2020, 3, 20)))
    tape = market.tape("035420")
    assert tape is not None and "5-minute" in tape.source
    recorded = data.load_yahoo_5m(path)[("035420", dt.date(2020, 3, 20))]
    assert assert_tape_reproduces(tape, recorded) == len([b for b in recorded if b.volume > 0]) > 60
    # At least one print in every minute of every traded 5-minute bar.
    minutes = {m.minute_s for m in tape.minute_bars(tape.closing_print_ms)}
    for bar in recorded:
        if bar.volume >= 5:
            assert all(s in minutes for s in range(bar.start_s, bar.end_s, 60))


def test_daily_only_stock_2026_02_20_reaggregates_to_the_daily_bar() -> None:
    path = requires_data()
    market = shared_market(base_config())
    assert market.date == dt.date(2026, 2, 20) and len(market.tapes) == 50
    krx = data.load_krx_daily(path)
    for code in ("005930", "000660", "373220"):
        tape = market.tape(code)
        assert tape is not None and "daily bar spread" in tape.source
        daily = next(b for b in krx.bars[code] if b.date == market.date)
        assert_tape_reproduces(tape, tape.bars)
        assert aggregate(tape.all_ticks()) == (daily.open, daily.high, daily.low, daily.close, daily.volume)
        minute_bars = tape.minute_bars(tape.closing_print_ms)
        assert len(minute_bars) == 381
        assert sum(m.volume for m in minute_bars) == daily.volume
        assert all(tape.grid.on_grid(t.price) for t in tape.all_ticks())
        assert tape.prev_close == next(b for b in reversed(krx.bars[code]) if b.date < market.date).close


def test_generation_is_deterministic_and_seeded() -> None:
    grid = Grid(TickTable(), dt.date(2026, 2, 20), "KOSPI")
    bar = IntradayBar(OPEN_S, OPEN_S + 300, 50100, 50700, 49800, 50000, 123_457)
    a = generate_bar_ticks(bar, random.Random("s:1"), grid, LIGHT_TAPE)
    b = generate_bar_ticks(bar, random.Random("s:1"), grid, LIGHT_TAPE)
    c = generate_bar_ticks(bar, random.Random("s:2"), grid, LIGHT_TAPE)
    assert a == b and a != c
    assert aggregate(a) == (50100, 50700, 49800, 50000, 123_457)
    assert len({t.t_ms // 60000 for t in a}) == 5


def test_tiny_volume_and_band_crossing_bars() -> None:
    grid = Grid(TickTable(), dt.date(2026, 2, 20), "KOSPI")
    for bar in (
        IntradayBar(OPEN_S, OPEN_S + 60, 1995, 2010, 1990, 2005, 4),
        IntradayBar(OPEN_S, OPEN_S + 60, 19980, 20100, 19950, 20050, 9),
        IntradayBar(CLOSE_S, CLOSE_S, 7000, 7000, 7000, 7000, 55),
    ):
        ticks = generate_bar_ticks(bar, random.Random("x"), grid, LIGHT_TAPE)
        assert aggregate(ticks) == (bar.open, bar.high, bar.low, bar.close, bar.volume)
        assert all(grid.on_grid(t.price) for t in ticks)
    auction = IntradayBar(CLOSE_S, CLOSE_S, 7000, 7000, 7000, 7000, 55)
    closing = generate_bar_ticks(auction, random.Random(1), grid, LIGHT_TAPE)
    assert [(t.t_ms, t.volume) for t in closing] == [(CLOSE_S * 1000, 55)]


def test_spread_daily_bar_exact_and_off_grid_extremes_kept() -> None:
    grid = Grid(TickTable(), dt.date(2026, 2, 20), "KOSDAQ")
    daily = DailyBar(dt.date(2026, 2, 20), 91000, 93500, 89950, 92000, 1_234_567)  # 89,950 is off-grid
    bars = spread_daily_bar(daily, random.Random("spread"), grid)
    assert bars[0].start_s == OPEN_S and bars[-1].start_s == CLOSE_S == bars[-1].end_s
    assert (bars[0].open, max(b.high for b in bars), min(b.low for b in bars), bars[-1].close) == (
        91000,
        93500,
        89950,
        92000,
    )
    assert sum(b.volume for b in bars) == 1_234_567
    assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars)


def test_synthetic_market_without_data_dir() -> None:
    market = shared_market(base_config(data_dir=None, replay_date=dt.date(2026, 2, 20)))
    assert market.synthetic and market.data_source.startswith("synthetic")
    assert market.date == dt.date(2026, 2, 20) and len(market.tapes) >= 5
    for tape in market.tapes.values():
        assert tape.source == "synthetic" and len(market.history[tape.code]) >= 250
        assert_tape_reproduces(tape, tape.bars)
        ticks = tape.all_ticks()
        assert all(tape.grid.on_grid(t.price) for t in ticks)
        assert all(tape.lower_limit <= t.price <= tape.upper_limit for t in ticks)
        hist = market.history[tape.code]
        assert all(tape.grid.on_grid(p) for b in hist[-20:] for p in (b.open, b.high, b.low, b.close))


def test_unknown_replay_date_is_refused() -> None:
    requires_data()
    from apps.sandbox.replay import build_market

    with pytest.raises(ValueError, match="no recorded data"):
        build_market(base_config(replay_date=dt.date(2019, 7, 1)))
