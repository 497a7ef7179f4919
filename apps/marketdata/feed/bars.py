"""Live 1-minute bars built from trade ticks, stored as ``MinuteBar(source="ws")``.

A bar is keyed by (code, minute start) where the minute start is the tick's exchange time floored to the
minute (KST). The closing auction print at 15:30:00 therefore gets its own 15:30 bar, as in KRX's minute
data. A bar is complete when a tick of a later minute arrives for the same code, or when
:meth:`BarBuilder.complete` sees an exchange time (the latest tick of any code, or ``now``) past the bar's
end plus ``lateness``, so a quiet stock's last minute is stored too. Storage is an upsert on
(stock, ts, source): flushing the same bar twice is harmless.

The builder is pure and synchronous (called on the event loop, O(1) per tick); storing runs in a thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable

from ..brokers.base import KST, Tick

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


def minute_start(at: dt.datetime) -> dt.datetime:
    return at.astimezone(KST).replace(second=0, microsecond=0)


class BarBuilder:
    """OHLCV per code per minute from ticks in arrival order.

    Invariants: at most one open bar per code; a tick older than the code's open bar is ignored (counted
    in ``late_ticks``) because its bar may already be stored; ticks without a price are ignored.
    """

    def __init__(self, *, lateness: float = 2.0) -> None:
        self.lateness = dt.timedelta(seconds=lateness)
        self._open: dict[str, LiveBar] = {}
        self._done: list[LiveBar] = []
        self._latest: dt.datetime | None = None
        self.late_ticks = 0

    def add(self, tick: Tick) -> None:
        if tick.price is None or tick.price <= 0:
            return
        start = minute_start(tick.at)
        if self._latest is None or tick.at > self._latest:
            self._latest = tick.at
        bar = self._open.get(tick.code)
        if bar is not None and start < bar.ts:
            self.late_ticks += 1
            return
        if bar is not None and start > bar.ts:
            self._done.append(bar)
            bar = None
        if bar is None:
            self._open[tick.code] = LiveBar(tick.code, start, tick.price, tick.price, tick.price, tick.price, 0)
            bar = self._open[tick.code]
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
            for code, bar in list(self._open.items()):
                if bar.ts + dt.timedelta(minutes=1) <= cutoff:
                    self._done.append(self._open.pop(code))
        done, self._done = self._done, []
        return done

    def drain(self) -> list[LiveBar]:
        """Every bar, open ones included (at shutdown: a partial minute is better than none; a later
        holder's upsert of the same minute replaces it)."""
        done = self.complete() + list(self._open.values())
        self._open.clear()
        return done


def store_bars(bars: Iterable[LiveBar]) -> int:
    """Upsert bars of known stocks as ``source="ws"`` (blocking: call from a thread). Returns rows written.

    Codes not in the Stock table (e.g. a viewer of an unlisted code) are skipped with a log line, since
    ``minute_bars_upsert`` refuses the whole batch otherwise. The thread's DB connection is closed after.
    """
    from django.db import connection

    from ..models import BarSource, Stock
    from ..services import minute_bars_upsert

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
