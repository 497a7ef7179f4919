"""What time it is in the market, which every job agrees on.

With the sandbox broker (MARKET_BROKER=sandbox) "now" is the sandbox's replay clock (GET /sandbox/clock),
so that a replayed session is open whenever the stack runs. With a real broker it is KST wall time
and the KRX calendar. No ORM here: the calendar is passed in.

``MarketNow.session`` is the regular session's state (pre_open / continuous / closing_auction / closed), as
before. ``MarketNow.phases`` adds the market day per venue (``apps.core.krx.phases``: KRX's auctions, closing-price
sessions and after-hours single price, NXT's pre-, main and after-market), computed from the same "now" (the
sandbox's replay clock or KST wall time) and the calendar's session for that day; ``MarketNow.phase(venue)``
reads one. Per-stock states (VI, halts) are not here: they come with the stock's quote.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dt_time

import httpx
from django.conf import settings

from apps.core.krx import phases as market_phases
from apps.core.krx.calendar import KST, KrxCalendar
from apps.core.krx.phases import PhaseNow

logger = logging.getLogger(__name__)

PRE_OPEN, CONTINUOUS, CLOSING_AUCTION, CLOSED = "pre_open", "continuous", "closing_auction", "closed"


@dataclass(frozen=True)
class MarketNow:
    now: datetime  # aware, KST
    trading_date: date | None  # None on a closed day
    session: str  # pre_open | continuous | closing_auction | closed
    source: str  # "sandbox" | "calendar"
    synthetic: bool = False
    data_source: str = ""
    #: venue (KRX, NXT) -> its phase now; empty when built by hand (``phase`` then derives it)
    phases: dict[str, PhaseNow] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_open(self) -> bool:
        return self.session in (CONTINUOUS, CLOSING_AUCTION)

    def phase(self, venue: str = market_phases.KRX) -> PhaseNow:
        """``venue``'s phase now. A MarketNow built without phases (tests, older callers) derives it from
        ``now`` and ``trading_date`` on a regular 09:00-15:30 day (CLOSED when ``trading_date`` is None)."""
        known = self.phases.get(venue)
        if known is not None:
            return known
        return market_phases.phase_at(
            venue,
            self.now,
            session_open=market_phases.REGULAR_OPEN if self.trading_date is not None else None,
            session_close=market_phases.REGULAR_CLOSE,
            **_schedule_kwargs(market_phases.schedule_settings()),
        )


class MarketClockUnavailable(Exception):
    pass


def sandbox_rest_url() -> str:
    port = settings.SANDBOX_PAPER_REST_PORT if settings.KIS_ENV == "paper" else settings.SANDBOX_REAL_REST_PORT
    return f"http://{settings.SANDBOX_CONNECT_HOST}:{port}"


SANDBOX_CLOCK_TTL = 1.0  # seconds a process reuses the sandbox clock's answer (extrapolated at its speed)
SANDBOX_CLOCK_STALE = 5.0  # while one thread re-fetches, others reuse an answer up to this old
_sandbox_cache: dict[str, tuple[float, dict]] = {}  # clock URL -> (monotonic time fetched, answer)
_sandbox_fetch = threading.Lock()  # single flight: one request per process asks the sandbox at a time
_sandbox_client: tuple[int, httpx.Client] | None = None  # (pid, client): one kept-alive connection per process


def _clock_client() -> httpx.Client:
    """The process's kept-alive client (a fresh one in a forked child: connections are not shared)."""
    global _sandbox_client
    if _sandbox_client is None or _sandbox_client[0] != os.getpid():
        _sandbox_client = (os.getpid(), httpx.Client(limits=httpx.Limits(max_connections=2)))
    return _sandbox_client[1]


def _sandbox_clock_body(timeout: float) -> tuple[dict, float]:
    """The last answer of GET /sandbox/clock and the seconds since it (re-fetched after SANDBOX_CLOCK_TTL).

    Single flight: when the answer is due, one thread asks the sandbox over the process's kept-alive
    connection; the others meanwhile reuse the previous answer (extrapolated by the caller) when it is less
    than SANDBOX_CLOCK_STALE old, or wait for the fresh one."""
    url = f"{sandbox_rest_url()}/sandbox/clock"
    now = time.monotonic()
    cached = _sandbox_cache.get(url)
    if cached is not None and now - cached[0] < SANDBOX_CLOCK_TTL:
        return cached[1], now - cached[0]
    usable = cached is not None and now - cached[0] < SANDBOX_CLOCK_STALE
    if not (_sandbox_fetch.acquire(blocking=False) if usable else _sandbox_fetch.acquire(timeout=timeout)):
        if usable:
            return cached[1], now - cached[0]  # another thread is fetching; this answer is still close enough
        raise httpx.TimeoutException("another request's sandbox clock call did not finish")
    try:
        cached = _sandbox_cache.get(url)  # a thread that held the lock meanwhile may have fetched it
        now = time.monotonic()
        if cached is not None and now - cached[0] < SANDBOX_CLOCK_TTL:
            return cached[1], now - cached[0]
        response = _clock_client().get(url, timeout=timeout)
        response.raise_for_status()
        body = response.json()
        _sandbox_cache[url] = (time.monotonic(), body)
        return body, 0.0
    finally:
        _sandbox_fetch.release()


def _schedule_kwargs(cfg: market_phases.ScheduleSettings) -> dict:
    return {
        "krx_after_market_from": cfg.krx_after_market_from,
        "indicative_minutes_before_open": cfg.indicative_minutes_before_open,
        "nxt_shift_with_krx": cfg.nxt_shift_with_krx,
    }


def venue_phases(now: datetime, calendar: KrxCalendar | None) -> dict[str, PhaseNow]:
    """Each venue's phase at ``now`` from ``calendar`` (None: a regular 09:00-15:30 session on weekdays)."""
    cfg = market_phases.schedule_settings()
    if calendar is not None:
        return {venue: market_phases.phase_now(venue, now, calendar, settings=cfg) for venue in market_phases.VENUES}
    weekday = now.astimezone(KST).weekday() < 5
    return {
        venue: market_phases.phase_at(
            venue,
            now,
            session_open=market_phases.REGULAR_OPEN if weekday else None,
            session_close=market_phases.REGULAR_CLOSE,
            **_schedule_kwargs(cfg),
        )
        for venue in market_phases.VENUES
    }


def _sandbox_phases(now: datetime, replay_date: date, body: dict, calendar: KrxCalendar | None) -> dict[str, PhaseNow]:
    """The sandbox replays one day: the phases follow its own session times when the clock reports them
    (``session_open`` / ``session_close``, ISO times or datetimes), else the calendar's session for the replay date.
    When the clock also reports each venue's phase (``day.phases``, ``day.also``) and a name differs from the
    schedule's, the sandbox's wins (it is the exchange the stack trades against), without since/until."""
    raw_open, raw_close = body.get("session_open"), body.get("session_close")
    if raw_open and raw_close:
        open_t, close_t = _clock_time(str(raw_open)), _clock_time(str(raw_close))
        cfg = market_phases.schedule_settings()
        computed = {
            venue: market_phases.phase_at(
                venue, now, session_open=open_t, session_close=close_t, **_schedule_kwargs(cfg)
            )
            for venue in market_phases.VENUES
        }
    elif calendar is not None and now.astimezone(KST).date() == replay_date:
        computed = venue_phases(now, calendar)
    else:
        computed = venue_phases(now, None)
    day = body.get("day")
    reported = day.get("phases") if isinstance(day, dict) else None
    if not isinstance(reported, dict):
        return computed
    for venue, name in reported.items():
        if venue not in computed or name not in market_phases.PHASES or computed[venue].phase == name:
            continue
        also = tuple(a for a in day.get("also", ()) if a in market_phases.PHASES) if venue == market_phases.KRX else ()
        logger.info("sandbox reports %s %s where the schedule says %s", venue, name, computed[venue].phase)
        computed[venue] = PhaseNow(
            venue=venue,
            phase=name,
            since=None,
            until=None,
            next_phase=None,
            also=also,
            matching=name not in market_phases.CALL_PHASES and name not in (market_phases.CLOSED, market_phases.HALTED),
            indicative=name in (market_phases.OPENING_AUCTION, market_phases.CLOSING_AUCTION),
        )
    return computed


def _clock_time(raw: str) -> dt_time:
    if "T" in raw:
        return datetime.fromisoformat(raw).astimezone(KST).time()
    return dt_time.fromisoformat(raw)


def sandbox_now(timeout: float = 3.0, calendar: KrxCalendar | None = None) -> MarketNow:
    """The sandbox's replay clock. Answers are reused for up to a second and moved forward at the
    replay speed, so order placement does not make an HTTP call per request; session-state changes
    (open, closing auction, close) are seen within that second. ``calendar`` gives the replayed day's
    session times for the per-venue phases (None: a regular day, unless the clock reports its times)."""
    try:
        body, age = _sandbox_clock_body(timeout)
        now = datetime.fromisoformat(body["now"]).astimezone(KST)
        speed = float(body.get("speed") or 0)
        session = body["session"]
        if age and speed and body.get("clock") != "wallclock":
            now += timedelta(seconds=age * speed)
        replay_date = date.fromisoformat(body["replay_date"])
        return MarketNow(
            now=now,
            trading_date=replay_date,
            session=session,
            source="sandbox",
            synthetic=bool(body.get("synthetic")),
            data_source=str(body.get("data_source", "")),
            phases=_sandbox_phases(now, replay_date, body, calendar),
        )
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise MarketClockUnavailable(f"sandbox clock at {sandbox_rest_url()} unavailable: {exc}") from exc


def calendar_now(calendar: KrxCalendar, now: datetime | None = None) -> MarketNow:
    now = (now or datetime.now(tz=KST)).astimezone(KST)
    session = calendar.session(now.date())
    phases = venue_phases(now, calendar)
    if session is None:
        return MarketNow(now=now, trading_date=None, session=CLOSED, source="calendar", phases=phases)
    if now < session.open:
        state = PRE_OPEN
    elif now < session.auction_start:
        state = CONTINUOUS
    elif now < session.close:
        state = CLOSING_AUCTION
    else:
        state = CLOSED
    return MarketNow(now=now, trading_date=session.day, session=state, source="calendar", phases=phases)


def market_now(calendar: KrxCalendar) -> MarketNow:
    if settings.MARKET_BROKER == "sandbox":
        return sandbox_now(calendar=calendar)
    return calendar_now(calendar)
