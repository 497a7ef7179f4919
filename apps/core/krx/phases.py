"""The phases of the Korean market day, per venue: the vocabulary every layer shares (krx-rules §3.3–§3.5).

A *phase* is the matching rule in force for a venue (or, during a volatility interruption, for one stock) at a
time. A print (a trade from the feed) carries the phase it happened in and its venue, so the paper engine knows
whether it is a continuous trade, the single price of a call auction, a closing-price trade or an after-hours
single-price call.

The schedule (``day_windows``, ``phase_at``, ``phase_now``) gives each venue's market-wide phase at a time from
the day's KRX session (the calendar's open/close, so special days move it); ``accepted_kinds`` says which order
kinds a phase takes. Per-stock states (VI, halts) are not here: they come from the feed (see ``vi.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

#: Venues a print or an execution happens on. ``SOR`` is an order's routing choice (best price across both),
#: never the venue of a print or an execution.
KRX = "KRX"
NXT = "NXT"
SOR = "SOR"
VENUES = (KRX, NXT)
ROUTES = (KRX, NXT, SOR)

CLOSED = "closed"
#: KRX 08:30–08:40: pre-open trades at the previous close (장전 시간외 종가), time priority only.
PRE_CLOSE_PRICE = "pre_close_price"
#: KRX 08:30–09:00: the opening call auction's order entry; one price clears the book at the open.
OPENING_AUCTION = "opening_auction"
#: KRX 09:00–15:20, NXT 09:00:30–15:20: continuous matching (접속매매).
CONTINUOUS = "continuous"
#: One stock under a volatility interruption: a 2-minute call auction (plus a random end of up to 30 s).
VI_AUCTION = "vi_auction"
#: KRX 15:20–15:30: the closing call auction (종가 단일가).
CLOSING_AUCTION = "closing_auction"
#: KRX 15:40–16:00 (orders from 15:30): after-hours trades at today's close (장후 시간외 종가), time priority.
POST_CLOSE_PRICE = "post_close_price"
#: KRX 16:00–18:00: after-hours single price (시간외 단일가), a call every 10 minutes within ±10 % of the close.
AFTER_HOURS_SINGLE = "after_hours_single"
#: NXT 08:00–08:50: pre-market (continuous, limit-type orders only).
NXT_PRE = "nxt_pre"
#: NXT 15:30–20:00: after-market (orders from 15:30, continuous matching from 15:40, limit-type orders only).
NXT_AFTER = "nxt_after"
#: A stock halted (거래정지) or a market-wide circuit breaker: cancels only.
HALTED = "halted"

PHASES = (
    CLOSED,
    PRE_CLOSE_PRICE,
    OPENING_AUCTION,
    CONTINUOUS,
    VI_AUCTION,
    CLOSING_AUCTION,
    POST_CLOSE_PRICE,
    AFTER_HOURS_SINGLE,
    NXT_PRE,
    NXT_AFTER,
    HALTED,
)
#: Phases whose prints are the single price of a call (every crossing order fills at that one price).
CALL_PHASES = frozenset({OPENING_AUCTION, VI_AUCTION, CLOSING_AUCTION, AFTER_HOURS_SINGLE})

# --- The schedule ------------------------------------------------------------------------------------------------
# Everything below is pure: times come in as arguments; settings are read only by ``schedule_settings`` (lazily,
# so the module stays importable without Django) and passed on explicitly.

KST = ZoneInfo("Asia/Seoul")

#: Order kinds (what an order asks for, whatever the phase). KIS order codes (krx-rules §3.3, python-kis):
#: 00 limit, 01 market, 05 장전 시간외 (pre_close_price), 06 장후 시간외 (post_close_price), 07 시간외 단일가.
MARKET = "market"
LIMIT = "limit"
PRE_CLOSE_PRICE_KIND = "pre_close_price"
POST_CLOSE_PRICE_KIND = "post_close_price"
AFTER_HOURS_SINGLE_KIND = "after_hours_single"
ORDER_KINDS = (MARKET, LIMIT, PRE_CLOSE_PRICE_KIND, POST_CLOSE_PRICE_KIND, AFTER_HOURS_SINGLE_KIND)
KIS_ORDER_CODES = {
    LIMIT: "00",
    MARKET: "01",
    PRE_CLOSE_PRICE_KIND: "05",
    POST_CLOSE_PRICE_KIND: "06",
    AFTER_HOURS_SINGLE_KIND: "07",
}

#: KRX's planned after-market (krx-rules §3.3: 16:00–20:00 from 2026-09-14, announced 2026-06-19, secondary
#: sources only (verify)). Off unless ``KRX_AFTER_MARKET_FROM`` is set. What it does to the 16:00–18:00
#: after-hours single price is not announced in what we hold; while on, Hoga models it as continuous matching of
#: limit orders 16:00–20:00 replacing the single-price calls (verify).
KRX_AFTER_MARKET = "krx_after_market"
KRX_AFTER_MARKET_END = time(20, 0)

REGULAR_OPEN = time(9, 0)
REGULAR_CLOSE = time(15, 30)
#: The opening auction's expected price is published from 08:50 (10 min before a 09:00 open) since 2025-03-04;
#: it was 08:40 before (krx-rules §3.3 (verify)). Setting KRX_INDICATIVE_MINUTES_BEFORE_OPEN.
INDICATIVE_MINUTES_BEFORE_OPEN = 10
#: After-hours single price: one call every 10 minutes (krx-rules §3.3), the first at 16:10, the last at 18:00.
AFTER_HOURS_CALL_MINUTES = 10

# KRX windows as offsets from the day's open (O) and close (C) (krx-rules §3.3, regular day O=09:00, C=15:30).
# Special days (first trading day 10:00 open; CSAT day 10:00–16:30) move the pre-open windows with the open and
# the post-close windows with the close, keeping the durations (the calendar gives the day's open/close; the
# shift of the pre-open/after-hours windows on those days is (verify)).
_OPEN_AUCTION_MINUTES = 30  # 08:30–09:00 opening call auction (order entry)
_PRE_CLOSE_PRICE_MINUTES = (30, 20)  # 08:30–08:40 pre-open trades at the previous close (before O)
_CLOSING_AUCTION_MINUTES = 10  # 15:20–15:30
_POST_CLOSE_PRICE = (0, 10, 30)  # orders from C (15:30), matching from C+10 (15:40), end C+30 (16:00)
_AFTER_HOURS_SINGLE = (30, 150)  # 16:00–18:00

# NXT windows (krx-rules §3.4), fixed clock times; they do not move with KRX's special days unless
# NXT_SHIFT_WITH_KRX (verify: NXT's own notices for the first trading day and CSAT day).
NXT_PRE_START, NXT_PRE_END = time(8, 0), time(8, 50)
NXT_MAIN_START, NXT_MAIN_END = time(9, 0, 30), time(15, 20)
NXT_AFTER_START, NXT_AFTER_MATCH, NXT_AFTER_END = time(15, 30), time(15, 40), time(20, 0)


@dataclass(frozen=True, slots=True)
class PhaseWindow:
    """One phase of one venue on one day: orders of the phase are taken in ``[start, end)``.

    ``matching_from``: when continuous matching starts inside the window, when later than ``start`` (KRX's post-
    close-price trades take orders from 15:30 and match from 15:40; NXT's after-market book taken from 15:30
    uncrosses as a single price at 15:40, then trades continuously). A call (CALL_PHASES) matches once, at
    ``end`` (plus its random end), and ``matching_from`` is None. ``concurrent``: the window runs alongside
    another (KRX 08:30–08:40 pre-close-price trades during the opening auction's order entry); it is never the
    primary phase, it appears in ``PhaseNow.also``."""

    venue: str
    phase: str
    start: datetime
    end: datetime
    matching_from: datetime | None = None
    concurrent: bool = False

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end


@dataclass(frozen=True, slots=True)
class PhaseNow:
    venue: str  # KRX | NXT
    phase: str  # a phase name (market-wide; VI/halt are per stock and come from the feed)
    since: datetime | None  # aware KST; None when unknown
    until: datetime | None  # end of this phase (aware KST); None when unknown
    next_phase: str | None
    also: tuple[str, ...] = ()  # concurrent sessions, e.g. KRX 08:30–08:40: OPENING_AUCTION + PRE_CLOSE_PRICE
    matching: bool = True  # False while orders are taken but not matched (calls, 15:30–15:40 windows, closed)
    indicative: bool = False  # the call's expected price/volume is published now (krx-rules §3.3)

    @property
    def phases(self) -> tuple[str, ...]:
        return (self.phase, *self.also)

    @property
    def accepted(self) -> frozenset[str]:
        """Order kinds this venue takes now (the primary phase and every concurrent one)."""
        return accepted_kinds_any(self.venue, self.phases)

    def as_json(self) -> dict[str, object]:
        """A JSON-ready snapshot (ISO times, sorted kinds) for pages and APIs."""
        return {
            "venue": self.venue,
            "phase": self.phase,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "next_phase": self.next_phase,
            "also": list(self.also),
            "matching": self.matching,
            "indicative": self.indicative,
            "accepted": sorted(self.accepted),
        }


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    krx_after_market_from: date | None = None
    indicative_minutes_before_open: int = INDICATIVE_MINUTES_BEFORE_OPEN
    nxt_shift_with_krx: bool = False


def schedule_settings() -> ScheduleSettings:
    """The schedule's settings (config/settings/base.py, section "The market day"); defaults without Django."""
    from django.conf import settings

    if not settings.configured:  # a plain script
        return ScheduleSettings()
    raw_from = str(getattr(settings, "KRX_AFTER_MARKET_FROM", "") or "")
    return ScheduleSettings(
        krx_after_market_from=date.fromisoformat(raw_from) if raw_from else None,
        indicative_minutes_before_open=int(
            getattr(settings, "KRX_INDICATIVE_MINUTES_BEFORE_OPEN", INDICATIVE_MINUTES_BEFORE_OPEN)
        ),
        nxt_shift_with_krx=bool(getattr(settings, "NXT_SHIFT_WITH_KRX", False)),
    )


def _at(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, tzinfo=KST)


def _minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def day_windows(
    day: date,
    venue: str,
    *,
    open_time: time = REGULAR_OPEN,
    close_time: time = REGULAR_CLOSE,
    krx_after_market_from: date | None = None,
    nxt_shift_with_krx: bool = False,
) -> list[PhaseWindow]:
    """The phase windows of ``venue`` on trading day ``day`` (whose KRX session runs ``open_time``–``close_time``),
    sorted by start. Gaps between windows are CLOSED (NXT pauses 08:50–09:00:30 and 15:20–15:30 while KRX runs
    its auctions). Only market-wide phases: VI and halts are per stock and come from the feed."""
    if venue == KRX:
        o, c = _at(day, open_time), _at(day, close_time)
        windows = [
            PhaseWindow(KRX, OPENING_AUCTION, o - _minutes(_OPEN_AUCTION_MINUTES), o),
            PhaseWindow(
                KRX,
                PRE_CLOSE_PRICE,
                o - _minutes(_PRE_CLOSE_PRICE_MINUTES[0]),
                o - _minutes(_PRE_CLOSE_PRICE_MINUTES[1]),
                matching_from=o - _minutes(_PRE_CLOSE_PRICE_MINUTES[0]),
                concurrent=True,
            ),
            PhaseWindow(KRX, CONTINUOUS, o, c - _minutes(_CLOSING_AUCTION_MINUTES), matching_from=o),
            PhaseWindow(KRX, CLOSING_AUCTION, c - _minutes(_CLOSING_AUCTION_MINUTES), c),
            PhaseWindow(
                KRX,
                POST_CLOSE_PRICE,
                c + _minutes(_POST_CLOSE_PRICE[0]),
                c + _minutes(_POST_CLOSE_PRICE[2]),
                matching_from=c + _minutes(_POST_CLOSE_PRICE[1]),
            ),
        ]
        after_start = c + _minutes(_AFTER_HOURS_SINGLE[0])
        if krx_after_market_from is not None and day >= krx_after_market_from:
            after_end = max(_at(day, KRX_AFTER_MARKET_END), after_start)
            windows.append(PhaseWindow(KRX, KRX_AFTER_MARKET, after_start, after_end, matching_from=after_start))
        else:
            windows.append(PhaseWindow(KRX, AFTER_HOURS_SINGLE, after_start, c + _minutes(_AFTER_HOURS_SINGLE[1])))
        return sorted(windows, key=lambda w: (w.start, w.concurrent))
    if venue == NXT:
        shift = timedelta(0)
        close_shift = timedelta(0)
        if nxt_shift_with_krx:
            shift = _at(day, open_time) - _at(day, REGULAR_OPEN)
            close_shift = _at(day, close_time) - _at(day, REGULAR_CLOSE)
        return [
            PhaseWindow(
                NXT,
                NXT_PRE,
                _at(day, NXT_PRE_START) + shift,
                _at(day, NXT_PRE_END) + shift,
                matching_from=_at(day, NXT_PRE_START) + shift,
            ),
            PhaseWindow(
                NXT,
                CONTINUOUS,
                _at(day, NXT_MAIN_START) + shift,
                _at(day, NXT_MAIN_END) + close_shift,
                matching_from=_at(day, NXT_MAIN_START) + shift,
            ),
            PhaseWindow(
                NXT,
                NXT_AFTER,
                _at(day, NXT_AFTER_START) + close_shift,
                _at(day, NXT_AFTER_END) + close_shift,
                matching_from=_at(day, NXT_AFTER_MATCH) + close_shift,
            ),
        ]
    raise ValueError(f"unknown venue {venue!r} (KRX or NXT; SOR is a route, not a venue)")


def _primary(windows: Iterable[PhaseWindow]) -> list[PhaseWindow]:
    return [w for w in windows if not w.concurrent]


def phase_at(
    venue: str,
    when: datetime,
    *,
    session_open: time | None,
    session_close: time | None = None,
    krx_after_market_from: date | None = None,
    indicative_minutes_before_open: int = INDICATIVE_MINUTES_BEFORE_OPEN,
    nxt_shift_with_krx: bool = False,
) -> PhaseNow:
    """The phase of ``venue`` at ``when`` on a day whose KRX session runs ``session_open``–``session_close``.

    ``session_open`` None: not a trading day, CLOSED (since/until unknown: see ``phase_now`` for the calendar's
    answer with the next trading day). Outside every window the phase is CLOSED; before the first window of the
    day ``until``/``next_phase`` name it, after the last one they are None (the next trading day is the
    calendar's to say)."""
    when = when.astimezone(KST)
    if session_open is None:
        if venue not in VENUES:
            raise ValueError(f"unknown venue {venue!r}")
        return PhaseNow(venue=venue, phase=CLOSED, since=None, until=None, next_phase=None, matching=False)
    windows = day_windows(
        when.date(),
        venue,
        open_time=session_open,
        close_time=session_close or REGULAR_CLOSE,
        krx_after_market_from=krx_after_market_from,
        nxt_shift_with_krx=nxt_shift_with_krx,
    )
    primary = _primary(windows)
    also = tuple(w.phase for w in windows if w.concurrent and w.contains(when))
    for index, window in enumerate(primary):
        if window.contains(when):
            following = primary[index + 1] if index + 1 < len(primary) else None
            if following is not None and following.start > window.end:
                next_phase = CLOSED  # a pause (NXT during KRX's auctions)
            else:
                next_phase = following.phase if following is not None else CLOSED
            matching = window.matching_from is not None and when >= window.matching_from
            indicative = False
            if window.phase == OPENING_AUCTION:
                indicative = when >= window.end - _minutes(indicative_minutes_before_open)
            elif window.phase == CLOSING_AUCTION:
                indicative = True  # the closing call's expected price is published throughout (verify)
            return PhaseNow(
                venue=venue,
                phase=window.phase,
                since=window.start,
                until=window.end,
                next_phase=next_phase,
                also=also,
                matching=matching,
                indicative=indicative,
            )
    before = [w for w in primary if w.end <= when]
    after = [w for w in primary if w.start > when]
    return PhaseNow(
        venue=venue,
        phase=CLOSED,
        since=before[-1].end if before else None,
        until=after[0].start if after else None,
        next_phase=after[0].phase if after else None,
        matching=False,
    )


_KINDS: dict[tuple[str, str], frozenset[str]] = {
    # KRX (krx-rules §3.3): the auctions and continuous matching take limit and market orders; each
    # closing-price / after-hours session takes its own order kind (KIS codes 05/06/07) and nothing else.
    (KRX, OPENING_AUCTION): frozenset({LIMIT, MARKET}),
    (KRX, PRE_CLOSE_PRICE): frozenset({PRE_CLOSE_PRICE_KIND}),
    (KRX, CONTINUOUS): frozenset({LIMIT, MARKET}),
    (KRX, VI_AUCTION): frozenset({LIMIT, MARKET}),
    (KRX, CLOSING_AUCTION): frozenset({LIMIT, MARKET}),
    (KRX, POST_CLOSE_PRICE): frozenset({POST_CLOSE_PRICE_KIND}),
    (KRX, AFTER_HOURS_SINGLE): frozenset({AFTER_HOURS_SINGLE_KIND}),
    (KRX, KRX_AFTER_MARKET): frozenset({LIMIT}),  # (verify) with the after-market's rules
    # NXT (krx-rules §3.4, shared brief): limit-type orders only outside the main market.
    (NXT, NXT_PRE): frozenset({LIMIT}),
    (NXT, CONTINUOUS): frozenset({LIMIT, MARKET}),
    (NXT, VI_AUCTION): frozenset({LIMIT, MARKET}),
    (NXT, NXT_AFTER): frozenset({LIMIT}),
}


def accepted_kinds(venue: str, phase: str) -> frozenset[str]:
    """The order kinds ``venue`` takes (new orders) in ``phase``; empty when closed or halted (cancels only)."""
    if venue not in VENUES:
        raise ValueError(f"unknown venue {venue!r} (KRX or NXT; SOR is a route, not a venue)")
    return _KINDS.get((venue, phase), frozenset())


def accepted_kinds_any(venue: str, phases: Iterable[str]) -> frozenset[str]:
    """The union of ``accepted_kinds`` over concurrent phases (``PhaseNow.phases``)."""
    out: frozenset[str] = frozenset()
    for phase in phases:
        out |= accepted_kinds(venue, phase)
    return out


def after_hours_call_times(window: PhaseWindow) -> list[datetime]:
    """The call times of an AFTER_HOURS_SINGLE window: every 10 minutes from start+10 to the end inclusive
    (16:10, 16:20, ..., 18:00: 12 calls on a regular day; krx-rules §3.3)."""
    if window.phase != AFTER_HOURS_SINGLE:
        raise ValueError(f"{window.phase} has no 10-minute calls")
    step = _minutes(AFTER_HOURS_CALL_MINUTES)
    calls, at = [], window.start + step
    while at <= window.end:
        calls.append(at)
        at += step
    return calls


def phase_now(venue: str, when: datetime, calendar, *, settings: ScheduleSettings | None = None) -> PhaseNow:
    """``phase_at`` with the day's session from ``calendar`` (a ``KrxCalendar``) and the schedule settings; after
    the day's last window (or on a closed day) ``until``/``next_phase`` point to the next trading day's first
    window (looking up to 15 days ahead)."""
    cfg = settings or schedule_settings()
    when = when.astimezone(KST)
    session = calendar.session(when.date())
    kwargs = {
        "krx_after_market_from": cfg.krx_after_market_from,
        "indicative_minutes_before_open": cfg.indicative_minutes_before_open,
        "nxt_shift_with_krx": cfg.nxt_shift_with_krx,
    }
    now = phase_at(
        venue,
        when,
        session_open=session.open.astimezone(KST).time() if session else None,
        session_close=session.close.astimezone(KST).time() if session else None,
        **kwargs,
    )
    if now.phase != CLOSED or now.until is not None:
        return now
    for ahead in range(1, 16):
        day = when.date() + timedelta(days=ahead)
        upcoming = calendar.session(day)
        if upcoming is None:
            continue
        first = _primary(
            day_windows(
                day,
                venue,
                open_time=upcoming.open.astimezone(KST).time(),
                close_time=upcoming.close.astimezone(KST).time(),
                krx_after_market_from=cfg.krx_after_market_from,
                nxt_shift_with_krx=cfg.nxt_shift_with_krx,
            )
        )[0]
        return PhaseNow(
            venue=venue, phase=CLOSED, since=now.since, until=first.start, next_phase=first.phase, matching=False
        )
    return now
