"""Minute bars of the recorded days before the replay day, from the same tape model as the replayed day.

A day before the replay day has only its recorded daily bar. ``past_minute_bars`` spreads it over that day's session
exactly as ``apps.sandbox.replay`` spreads a replayed day's daily bar (``spread_daily_bar``: the same seed key
``seed:date:code:spread``, the same grid and session times), so the bars re-aggregate to the recorded daily bar and
a past day asked twice answers the same bars. The prints of such a day are not generated (a minute bar of the tape
model has its open, high, low and close printed, so the bars are what its prints would aggregate to); a bar's
cumulative trading value is its typical price × volume, scaled so that the day's total is the recorded trading value
when the source has one. Minute bars of days before the replay day are therefore modelled, not recorded.
"""

from __future__ import annotations

import functools
import random

from apps.sandbox.calendar import SandboxCalendar
from apps.sandbox.clock import REGULAR
from apps.sandbox.data import DailyBar
from apps.sandbox.replay import DayTape, Grid, MinuteBar, spread_daily_bar


def past_minute_bars(tape: DayTape, row: DailyBar, seed: int) -> list[MinuteBar]:
    """1-minute bars (oldest first) of the recorded day ``row`` of ``tape``'s stock."""
    return list(_bars(tape.code, tape.instrument.market, row, seed, tape.grid.table))


@functools.lru_cache(maxsize=512)
def _bars(code: str, market: str, row: DailyBar, seed: int, table: object) -> tuple[MinuteBar, ...]:

    times = SandboxCalendar().session_times(row.date) or REGULAR
    grid = Grid(table, row.date, market)  # type: ignore[arg-type]
    bars = spread_daily_bar(row, random.Random(f"{seed}:{row.date}:{code}:spread"), grid, times)
    typical = [(b.open + b.high + b.low + b.close) / 4 * b.volume for b in bars]
    total = sum(typical) or 1.0
    scale = row.amount / total if row.amount else 1.0
    out: list[MinuteBar] = []
    value = 0.0
    for b, t in zip(bars, typical, strict=True):
        value += t * scale
        out.append(MinuteBar(b.start_s, b.open, b.high, b.low, b.close, b.volume, int(value)))
    return tuple(out)
