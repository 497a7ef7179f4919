"""Live 1-minute bars built from trade ticks, stored as ``MinuteBar(source="ws")``.

A bar is keyed by (code, minute start, phase) where the minute start is the tick's exchange time floored to the
minute (KST) and the phase is the one the print happened in (``Tick.phase``, ``apps.core.krx.phases``): the
opening print at 09:00:00 is a bar of its own beside the continuous trades of 09:00, a VI's single print beside
the continuous trades of its minute, and the closing print its own bar, as ``apps.marketdata.bars`` stores them.
A code's bars are complete when a tick of a later minute arrives for it, or when :meth:`BarBuilder.complete`
sees an exchange time (the latest tick of any code, or ``now``) past the bar's end plus ``lateness``, so a quiet
stock's last minute is stored too. Storage is an upsert on (stock, ts, source, phase): flushing the same bar
twice is harmless.

The builder is pure and synchronous (called on the event loop, O(1) per tick); storing runs in a thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable

from apps.brokers.base import KST, Tick
from apps.marketdata.models import BarSource, Stock
from apps.marketdata.services import minute_bars_upsert

logger = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class LiveBar:
    """One minute of one code; field names match what ``minute_bars_upsert`` reads."""

    code: str
    ts: dt.datetime  # aware KST start of the minute
    open: int
    high: int
    low: int
    close: int
    volume: int
    phase: str = "continuous"


def minute_start(at: dt.datetime) -> dt.datetime:
    return at.astimezone(KST).replace(second=0, microsecond=0)


class BarBuilder:
    """OHLCV per code per minute from ticks in arrival order.

    Invariants: the open bars of a code share one minute, at most one per phase; a tick older than the code's
    open minute is ignored (counted in ``late_ticks``) because its bars may already be stored; ticks without a
    price are ignored.
    """

    def __init__(self, *, lateness: float = 2.0) -> None:
        self.lateness = dt.timedelta(seconds=lateness)
        self._open: dict[str, dict[str, LiveBar]] = {}  # code -> phase -> the bar of the code's open minute
        self._done: list[LiveBar] = []
        self._latest: dt.datetime | None = None
        self.late_ticks = 0

    def add(self, tick: Tick) -> None:
        if tick.price is None or tick.price <= 0:
            return
        start = minute_start(tick.at)
        if self._latest is None or tick.at > self._latest:
            self._latest = tick.at
        bars = self._open.get(tick.code)
        minute = next(iter(bars.values())).ts if bars else None
        if minute is not None and start < minute:
            self.late_ticks += 1
            return
        if bars and minute is not None and start > minute:
            self._done.extend(bars.values())
            bars = None
        if bars is None:
            bars = self._open[tick.code] = {}
        phase = getattr(tick, "phase", "") or "continuous"
        bar = bars.get(phase)
        if bar is None:
            bar = bars[phase] = LiveBar(tick.code, start, tick.price, tick.price, tick.price, tick.price, 0, phase)
        bar.high = max(bar.high, tick.price)
        bar.low = min(bar.low, tick.price)
        bar.close = tick.price
        bar.volume += max(0, tick.volume or 0)

    def complete(self, now: dt.datetime | None = None) -> list[LiveBar]:
        """Bars finished by now: those closed by a later tick, plus open bars whose minute ended before
        ``now - lateness`` (``now`` defaults to the latest exchange time seen). Each is returned once."""
        reference = now or self._latest
        if reference is not None:
            cutoff = reference - self.lateness
            for code, bars in list(self._open.items()):
                if next(iter(bars.values())).ts + dt.timedelta(minutes=1) <= cutoff:
                    self._done.extend(self._open.pop(code).values())
        done, self._done = self._done, []
        return done

    def snapshot(self) -> list[dict]:
        """The open bars as JSON-able dicts (``restore`` resumes building them, e.g. after a restart)."""
        return [
            {**dataclasses.asdict(bar), "ts": bar.ts.isoformat()}
            for bars in self._open.values()
            for bar in bars.values()
        ]

    def restore(self, bars: list[dict]) -> None:
        for item in bars:
            bar = LiveBar(**{**item, "ts": dt.datetime.fromisoformat(item["ts"])})
            self._open.setdefault(bar.code, {})[bar.phase] = bar
            if self._latest is None or bar.ts > self._latest:
                self._latest = bar.ts

    def drain(self) -> list[LiveBar]:
        """Every bar, open ones included (at shutdown: a partial minute is better than none; a later
        holder's upsert of the same minute replaces it)."""
        done = self.complete() + [bar for bars in self._open.values() for bar in bars.values()]
        self._open.clear()
        return done


def store_bars(bars: Iterable[LiveBar]) -> int:
    """Upsert bars of known stocks as ``source="ws"`` (blocking: call from a thread). Returns rows written.

    Codes not in the Stock table (e.g. a viewer of an unlisted code) are skipped with a log line, since
    ``minute_bars_upsert`` refuses the whole batch otherwise. The thread's DB connection is closed after.
    """
    from django.db import connection

    bars = list(bars)
    if not bars:
        return 0
    try:
        known = set(Stock.objects.filter(code__in={b.code for b in bars}).values_list("code", flat=True))
        unknown = sorted({b.code for b in bars} - known)
        if unknown:
            logger.info("live bars of unknown stocks skipped", extra={"codes": ",".join(unknown[:10])})
        return minute_bars_upsert(source=BarSource.WS, bars=[b for b in bars if b.code in known])
    finally:
        if not connection.in_atomic_block:
            connection.close()
