"""The market day as the paper orders see it: which phase a venue is in for a new order, which prints can fill
an order, and when an order's last phase ends (its DAY expiry).

Per order type (KIS order codes, krx-rules §3.3) and route:

- MARKET: taken in KRX's auctions, continuous session and VI calls, and NXT's main session; filled by the
  prints of those (never by NXT pre-/after-market prints, which take limit-type orders only).
- LIMIT: as MARKET, plus NXT's pre-market (08:00–08:50) and after-market (15:30–20:00) and their prints.
- PRE_CLOSE_PRICE: taken KRX 08:30–08:40, filled by ``pre_close_price`` prints (the previous close).
- POST_CLOSE_PRICE: taken KRX 15:30–16:00, filled by ``post_close_price`` prints from 15:40 (today's close).
- AFTER_HOURS_SINGLE: taken KRX 16:00–18:00, filled by the ``after_hours_single`` calls (every 10 minutes).

Routes: KRX orders fill from KRX prints, NXT orders from NXT prints, SOR orders from either (``fills``).
An order's DAY ends with the last phase that can fill it (``order_due_at``, plus ``EXPIRY_GRACE`` for its last
print to arrive): KRX regular orders at the close (15:30), PRE_CLOSE_PRICE at 08:40, POST_CLOSE_PRICE at 16:00,
AFTER_HOURS_SINGLE at 18:00, orders that may trade
on NXT (route NXT, or SOR of an NXT-eligible stock: ``apps.live.nxt``) at the end of NXT's after-market (20:00).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from apps.core.krx import phases
from apps.core.krx.calendar import KST, KrxCalendar
from apps.marketdata.market_clock import CLOSED as SESSION_CLOSED
from apps.marketdata.market_clock import MarketNow

from .models import OrderType, Route, order_kind

#: Phases of the regular KRX session: the market clock's own session state wins over the schedule for them
#: (a sandbox replay whose day has ended, or not begun, is closed whatever the time of day says).
_REGULAR = frozenset({phases.OPENING_AUCTION, phases.CONTINUOUS, phases.CLOSING_AUCTION})

#: Phases whose prints fill each order type (see the module docstring).
_REGULAR_PRINTS = frozenset({phases.CONTINUOUS, *phases.CALL_PHASES} - {phases.AFTER_HOURS_SINGLE})
FILLED_BY: dict[str, frozenset[str]] = {
    OrderType.MARKET: _REGULAR_PRINTS,
    OrderType.LIMIT: _REGULAR_PRINTS | {phases.NXT_PRE, phases.NXT_AFTER, phases.KRX_AFTER_MARKET},
    OrderType.PRE_CLOSE_PRICE: frozenset({phases.PRE_CLOSE_PRICE}),
    OrderType.POST_CLOSE_PRICE: frozenset({phases.POST_CLOSE_PRICE}),
    OrderType.AFTER_HOURS_SINGLE: frozenset({phases.AFTER_HOURS_SINGLE}),
}

#: The window (by phase) whose end closes an order type's DAY on KRX.
_KRX_LAST_PHASE: dict[str, str] = {
    OrderType.MARKET: phases.CLOSING_AUCTION,
    OrderType.LIMIT: phases.CLOSING_AUCTION,
    OrderType.PRE_CLOSE_PRICE: phases.PRE_CLOSE_PRICE,
    OrderType.POST_CLOSE_PRICE: phases.POST_CLOSE_PRICE,
    OrderType.AFTER_HOURS_SINGLE: phases.AFTER_HOURS_SINGLE,
}


def route_venues(route: str, *, nxt_eligible: bool) -> tuple[str, ...]:
    """The venues an order of ``route`` may trade on (SOR of a stock NXT does not list: KRX only)."""
    if route == Route.NXT:
        return (phases.NXT,)
    if route == Route.SOR and nxt_eligible:
        return (phases.KRX, phases.NXT)
    return (phases.KRX,)


def fills_from(*, order_type: str, route: str, venue: str, phase: str) -> bool:
    """Whether a print of ``phase`` on ``venue`` can fill an order of this type and route (price aside)."""
    if route not in (venue, Route.SOR):
        return False
    return phase in FILLED_BY.get(order_type, frozenset())


def venue_phase(market: MarketNow, venue: str, calendar: KrxCalendar) -> phases.PhaseNow:
    """The phase of ``venue`` the market clock gives (``MarketNow.phases``; else ``phases.phase_now`` at its time),
    reconciled with the clock's regular-session state: the clock saying the day is closed (a finished replay, a
    closed day) closes the regular KRX phases."""
    now = market.phases.get(venue) or phases.phase_now(venue, market.now, calendar)
    closed_day = market.trading_date is None
    if venue == phases.KRX and (closed_day or market.session == SESSION_CLOSED) and now.phase in _REGULAR:
        return phases.PhaseNow(venue=venue, phase=phases.CLOSED, since=None, until=None, next_phase=None,
                               matching=False)  # fmt: skip
    return now


@dataclass(frozen=True, slots=True)
class Acceptance:
    """Where and in which phase a new order is taken now."""

    venue: str
    phase: str


def acceptance(
    *, order_type: str, venues: tuple[str, ...], now: dict[str, phases.PhaseNow], stock_phase: str | None = None
) -> Acceptance | None:
    """The first of ``venues`` whose current phase takes ``order_type`` (the phase that takes it: e.g. a
    PRE_CLOSE_PRICE order at 08:35 is taken by ``pre_close_price``, a LIMIT one by ``opening_auction``), or None.

    ``stock_phase``: the stock's own phase from the feed (``vi_auction`` while it is under a VI, which takes
    the regular order types as a call; ``halted`` takes nothing)."""
    kind = order_kind(order_type)
    for venue in venues:
        current = now[venue]
        candidates = current.phases
        if stock_phase == phases.HALTED:
            continue
        if stock_phase == phases.VI_AUCTION and current.phase in (phases.CONTINUOUS, phases.CLOSING_AUCTION):
            candidates = (phases.VI_AUCTION, *current.also)
        for phase in candidates:
            if kind in phases.accepted_kinds(venue, phase):
                return Acceptance(venue, phase)
    return None


def _windows(day: date, venue: str, calendar: KrxCalendar) -> list[phases.PhaseWindow]:
    session = calendar.session(day)
    if session is None:
        return []
    cfg = phases.schedule_settings()
    return phases.day_windows(
        day,
        venue,
        open_time=session.open.astimezone(KST).time(),
        close_time=session.close.astimezone(KST).time(),
        krx_after_market_from=cfg.krx_after_market_from,
        nxt_shift_with_krx=cfg.nxt_shift_with_krx,
    )


def next_acceptance(*, order_type: str, venue: str, after: datetime, calendar: KrxCalendar) -> datetime | None:
    """When ``venue`` next takes an order of ``order_type`` after ``after`` (within 15 days), or None."""
    kind = order_kind(order_type)
    after = after.astimezone(KST)
    for ahead in range(16):
        day = after.date() + timedelta(days=ahead)
        for window in _windows(day, venue, calendar):
            if window.end > after and kind in phases.accepted_kinds(venue, window.phase):
                return max(window.start, after)
    return None


def clock_text(moment: datetime) -> str:
    """``"09:00"``, or ``"09:00:30"`` when the time has seconds (NXT's main session)."""
    return f"{moment:%H:%M:%S}" if moment.second else f"{moment:%H:%M}"


def when_text(moment: datetime | None, *, today: date) -> str:
    """``"from 16:00 KST"`` / ``"from 08:30 KST on 2026-03-04"`` / ``"on no day within 15 days"``."""
    if moment is None:
        return "on no day within 15 days"
    moment = moment.astimezone(KST)
    label = f"from {clock_text(moment)} KST"
    return label if moment.date() == today else f"{label} on {moment.date().isoformat()}"


#: How long after the end of its last phase an order stays open: a call prints after its scheduled end (the
#: closing call's random end adds up to 30 s, krx-rules §3.5) and the print reaches the fill engine after the
#: feed's delay (seconds of real time are minutes of a fast sandbox replay). No phase that could fill the order
#: runs meanwhile, so the grace changes nothing but the order's last chance at its last print.
EXPIRY_GRACE = timedelta(minutes=5)


def order_due_at(*, order_type: str, route: str, nxt_eligible: bool, day: date, calendar: KrxCalendar) -> datetime:
    """When the DAY of an order of ``day`` ends: ``EXPIRY_GRACE`` after the end of the last phase that can fill it
    (module docstring). A day without a session (the order was queued for it and it closed): its midnight."""
    ends: list[datetime] = []
    krx = {w.phase: w for w in _windows(day, phases.KRX, calendar)}
    if route in (Route.KRX, Route.SOR):
        last = _KRX_LAST_PHASE.get(order_type, phases.CLOSING_AUCTION)
        if last == phases.AFTER_HOURS_SINGLE and last not in krx:
            last = phases.KRX_AFTER_MARKET  # KRX's after-market replaces the single-price calls when it runs
        if last in krx:
            ends.append(krx[last].end)
    on_nxt = phases.NXT in route_venues(route, nxt_eligible=nxt_eligible)
    if order_type in (OrderType.MARKET, OrderType.LIMIT) and on_nxt:
        nxt = _windows(day, phases.NXT, calendar)
        if nxt:
            ends.append(max(w.end for w in nxt))
    if not ends:
        return datetime.combine(day, datetime.min.time(), tzinfo=KST)
    return max(ends) + EXPIRY_GRACE
