"""What time it is in the market, which every job agrees on.

With the sandbox broker (MARKET_BROKER=sandbox) "now" is the sandbox's replay clock (GET /sandbox/clock),
so that a replayed session is open whenever the stack runs. With a real broker it is KST wall time
and the KRX calendar. No ORM here: the calendar is passed in.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import httpx
from django.conf import settings

from .calendar import KST, KrxCalendar

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

    @property
    def is_open(self) -> bool:
        return self.session in (CONTINUOUS, CLOSING_AUCTION)


class MarketClockUnavailable(Exception):
    pass


def sandbox_rest_url() -> str:
    port = settings.SANDBOX_PAPER_REST_PORT if settings.KIS_ENV == "paper" else settings.SANDBOX_REAL_REST_PORT
    return f"http://{settings.SANDBOX_CONNECT_HOST}:{port}"


SANDBOX_CLOCK_TTL = 1.0  # seconds a process reuses the sandbox clock's answer (extrapolated at its speed)
_sandbox_cache: dict[str, tuple[float, dict]] = {}  # clock URL -> (monotonic time fetched, answer)


def _sandbox_clock_body(timeout: float) -> tuple[dict, float]:
    """The last answer of GET /sandbox/clock and the seconds since it (re-fetched after SANDBOX_CLOCK_TTL)."""
    url = f"{sandbox_rest_url()}/sandbox/clock"
    now = time.monotonic()
    cached = _sandbox_cache.get(url)
    if cached is not None and now - cached[0] < SANDBOX_CLOCK_TTL:
        return cached[1], now - cached[0]
    response = httpx.get(url, timeout=timeout)
    response.raise_for_status()
    body = response.json()
    _sandbox_cache[url] = (time.monotonic(), body)
    return body, 0.0


def sandbox_now(timeout: float = 3.0) -> MarketNow:
    """The sandbox's replay clock. Answers are reused for up to a second and moved forward at the
    replay speed, so order placement does not make an HTTP call per request; session-state changes
    (open, closing auction, close) are seen within that second."""
    try:
        body, age = _sandbox_clock_body(timeout)
        now = datetime.fromisoformat(body["now"]).astimezone(KST)
        speed = float(body.get("speed") or 0)
        session = body["session"]
        if age and speed and body.get("clock") != "wallclock":
            now += timedelta(seconds=age * speed)
        return MarketNow(
            now=now,
            trading_date=date.fromisoformat(body["replay_date"]),
            session=session,
            source="sandbox",
            synthetic=bool(body.get("synthetic")),
            data_source=str(body.get("data_source", "")),
        )
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise MarketClockUnavailable(f"sandbox clock at {sandbox_rest_url()} unavailable: {exc}") from exc


def calendar_now(calendar: KrxCalendar, now: datetime | None = None) -> MarketNow:
    now = (now or datetime.now(tz=KST)).astimezone(KST)
    session = calendar.session(now.date())
    if session is None:
        return MarketNow(now=now, trading_date=None, session=CLOSED, source="calendar")
    if now < session.open:
        state = PRE_OPEN
    elif now < session.auction_start:
        state = CONTINUOUS
    elif now < session.close:
        state = CLOSING_AUCTION
    else:
        state = CLOSED
    return MarketNow(now=now, trading_date=session.day, session=state, source="calendar")


def market_now(calendar: KrxCalendar) -> MarketNow:
    if settings.MARKET_BROKER == "sandbox":
        return sandbox_now()
    return calendar_now(calendar)
