"""Which 1-minute bars a trading day has, by phase (krx-rules §3.3; the phases of ``apps.core.krx.phases``).

**Design: a ``phase`` on every minute bar** (``MinuteBar.phase``, part of the bar's identity with stock, minute
and source). Continuous trading (접속매매) makes ``continuous`` bars. A call auction's single print is not a
continuous bar: the opening print (09:00:00), the closing print (15:30:00) and a VI auction's print each make a
bar of their own phase, even in a minute that also has continuous trades (09:00 has both the opening print and
the first continuous minute). The closing-price sessions and the after-hours single price make bars labelled
``pre_close_price`` / ``post_close_price`` / ``after_hours_single``, so their volume is never mistaken for the
regular session's. A phase on the bar rather than separate auction records keeps one table, one upsert and one
query for charts (a chart that wants only the regular session filters by phase), and resampling keeps each
phase apart (``resample.py``).

What each source can tell:

- the broker's minute chart (KIS ``FHKST03010200``, kis-api.md §5.4) covers the regular session only: one bar
  per continuous minute and the closing print's bar at the close. Its first bar (09:00) includes the opening
  print: the chart does not separate it, so that bar is stored as ``continuous`` (approximated; the opening
  print's price is the day's open of the daily bar). No after-hours bars come from it.
- live bars built from the feed's prints (``source="ws"``) know each print's phase (the fill stream's
  ``phase``), so they separate the opening print and label after-hours prints exactly.

``expected_minute_bars`` is the list of (minute, phase) a source should have for a day, from the calendar's
session (a late open or a shifted close moves everything) and the phase windows: the gap backfill
(``collection.minute_collect``) asks the broker for what is missing from it, and ``minute_completeness``
(shown on the data-quality page) compares what is stored with it. Minutes of a session a source may have no
bar for because nothing traded (closing-price sessions, the after-hours calls of a quiet stock) are not
expected; the after-hours calls are listed by ``after_hours_call_minutes`` for a source that records them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from apps.core.krx import phases as P
from apps.core.krx.calendar import KST, Session

#: The phases a minute bar can have (``MinuteBar.phase``).
BAR_PHASES = (
    P.CONTINUOUS,
    P.OPENING_AUCTION,
    P.CLOSING_AUCTION,
    P.VI_AUCTION,
    P.PRE_CLOSE_PRICE,
    P.POST_CLOSE_PRICE,
    P.AFTER_HOURS_SINGLE,
    P.NXT_PRE,
    P.NXT_AFTER,
)
#: Bars outside the regular session (their volume is labelled as such wherever it is shown).
OFF_HOURS_PHASES = frozenset({P.PRE_CLOSE_PRICE, P.POST_CLOSE_PRICE, P.AFTER_HOURS_SINGLE, P.NXT_PRE, P.NXT_AFTER})
#: Single-price prints: a bar of its own, never merged with another by resampling.
SINGLE_PRINT_PHASES = frozenset({P.OPENING_AUCTION, P.CLOSING_AUCTION, P.VI_AUCTION, P.AFTER_HOURS_SINGLE})
#: The phases of the broker's minute chart (kis-api.md §5.4): the regular session and its closing print.
BROKER_CHART_PHASES = (P.CONTINUOUS, P.CLOSING_AUCTION)
#: The phases of live bars a session always has (every stock of the universe trades them): the opening print,
#: the continuous minutes and the closing print.
LIVE_PHASES = (P.OPENING_AUCTION, P.CONTINUOUS, P.CLOSING_AUCTION)


@dataclass(frozen=True, slots=True, order=True)
class BarSlot:
    """One expected bar: its minute (aware KST) and phase."""

    ts: datetime
    phase: str


def _windows(session: Session) -> dict[str, P.PhaseWindow]:
    windows = P.day_windows(
        session.day,
        P.KRX,
        open_time=session.open.astimezone(KST).time(),
        close_time=session.close.astimezone(KST).time(),
    )
    return {w.phase: w for w in windows}


def continuous_minutes(session: Session) -> list[datetime]:
    """Start of every continuous-session minute: from the open to the closing auction (380 on a regular day)."""
    window = _windows(session)[P.CONTINUOUS]
    minutes, current = [], window.start
    while current < window.end:
        minutes.append(current)
        current += timedelta(minutes=1)
    return minutes


def after_hours_call_minutes(session: Session) -> list[datetime]:
    """The minutes of the after-hours single-price calls (16:10 … 18:00 on a regular day: 12)."""
    window = _windows(session).get(P.AFTER_HOURS_SINGLE)
    return P.after_hours_call_times(window) if window is not None else []


def expected_minute_bars(session: Session, *, phases: Iterable[str] = BROKER_CHART_PHASES) -> list[BarSlot]:
    """The (minute, phase) bars a source covering ``phases`` has for ``session``, in time order (the opening
    print before the first continuous minute). The broker's chart: 381 on a regular day (380 continuous
    minutes and the 15:30 closing print), 321 on a day opening at 10:00."""
    wanted = set(phases)
    slots: list[BarSlot] = []
    if P.OPENING_AUCTION in wanted:
        slots.append(BarSlot(session.open, P.OPENING_AUCTION))
    if P.CONTINUOUS in wanted:
        slots.extend(BarSlot(m, P.CONTINUOUS) for m in continuous_minutes(session))
    if P.CLOSING_AUCTION in wanted:
        slots.append(BarSlot(session.close, P.CLOSING_AUCTION))
    if P.AFTER_HOURS_SINGLE in wanted:
        slots.extend(BarSlot(m, P.AFTER_HOURS_SINGLE) for m in after_hours_call_minutes(session))
    return sorted(slots, key=lambda s: (s.ts, _PHASE_ORDER[s.phase]))


def completed_bars(session: Session, now: datetime, *, phases: Iterable[str] = BROKER_CHART_PHASES) -> list[BarSlot]:
    """The expected bars complete at ``now``: a minute once it ended; a single print once it printed."""
    return [
        slot
        for slot in expected_minute_bars(session, phases=phases)
        if (now >= slot.ts if slot.phase in SINGLE_PRINT_PHASES else slot.ts + timedelta(minutes=1) <= now)
    ]


def broker_bar_phase(ts: datetime, session: Session) -> str | None:
    """The phase of a bar of the broker's minute chart by its minute: the closing print's bar at the close,
    continuous minutes between the open and the closing auction; None for a minute the chart should not have
    (outside the regular session, or inside the closing auction before its print)."""
    ts = ts.astimezone(KST)
    if ts == session.close:
        return P.CLOSING_AUCTION
    window = _windows(session)[P.CONTINUOUS]
    if window.start <= ts < window.end:
        return P.CONTINUOUS
    return None


def phase_by_time(ts: datetime, session: Session | None) -> str:
    """The phase of a KRX bar that does not say, from its minute and the day's windows: the closing print's minute,
    the pre-open and after-hours closing-price trades, the after-hours single-price calls (the last one at the
    window's end); continuous otherwise (the opening print cannot be told from the first continuous minute by
    time)."""
    if session is None:
        return P.CONTINUOUS
    ts = ts.astimezone(KST)
    if ts == session.close:
        return P.CLOSING_AUCTION
    windows = _windows(session)
    pre, post, single = (
        windows.get(P.PRE_CLOSE_PRICE),
        windows.get(P.POST_CLOSE_PRICE),
        windows.get(P.AFTER_HOURS_SINGLE),
    )
    if pre is not None and pre.start <= ts < pre.end:
        return P.PRE_CLOSE_PRICE
    if post is not None and (post.matching_from or post.start) <= ts < post.end:
        return P.POST_CLOSE_PRICE
    if single is not None and single.start <= ts <= single.end:
        return P.AFTER_HOURS_SINGLE
    return P.CONTINUOUS


def print_bar_phase(phase: str | None) -> str:
    """The bar phase of a print of ``phase`` (the fill stream's names; unknown or missing: continuous)."""
    return phase if phase in BAR_PHASES else P.CONTINUOUS


@dataclass(frozen=True)
class Completeness:
    """Stored against expected 1-minute bars of one stock, day and source."""

    code: str
    expected: int
    stored: int
    missing: tuple[BarSlot, ...]
    extra_off_hours: int  # stored bars of off-hours phases (labelled; not counted as regular-session bars)

    @property
    def complete(self) -> bool:
        return not self.missing


def completeness(
    code: str, session: Session, stored: Iterable[tuple[datetime, str]], *, phases: Iterable[str], now: datetime
) -> Completeness:
    """Compare ``stored`` (minute, phase) bars with the expected ones complete at ``now``."""
    expected = completed_bars(session, now, phases=phases)
    have = {(ts.astimezone(KST), phase) for ts, phase in stored}
    missing = tuple(slot for slot in expected if (slot.ts, slot.phase) not in have)
    return Completeness(
        code=code,
        expected=len(expected),
        stored=len(expected) - len(missing),
        missing=missing,
        extra_off_hours=sum(1 for _, phase in have if phase in OFF_HOURS_PHASES),
    )


#: The order of bars that share a minute, earliest session first.
_PHASES_IN_DAY_ORDER = (
    P.PRE_CLOSE_PRICE,
    P.NXT_PRE,
    P.OPENING_AUCTION,
    P.CONTINUOUS,
    P.VI_AUCTION,
    P.CLOSING_AUCTION,
    P.POST_CLOSE_PRICE,
    P.AFTER_HOURS_SINGLE,
    P.NXT_AFTER,
)
_PHASE_ORDER = {phase: index for index, phase in enumerate(_PHASES_IN_DAY_ORDER)}


def phase_order(phase: str) -> int:
    """Sort key of bars that share a minute: the opening print before continuous trades, and so on."""
    return _PHASE_ORDER.get(phase, len(_PHASE_ORDER))
