"""Reads behind the pages: the market clock, the feed status, the latest quote and order-book snapshots in
Redis, the order ticket's price band, and the data-quality summaries. No writes.

Every read that depends on another process (Redis, the sandbox clock) degrades to an "unknown" value instead
of failing the page: a page without live data still renders its server-side snapshot.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db.models.functions import TruncDate
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from apps.core.krx.calendar import KST
from apps.core.krx.phases import SOR, VENUES, phase_now
from apps.core.krx.rules import DEFAULT_TICKS
from apps.live import quotes as live_quotes
from apps.live.reference import reference_price_resolve
from apps.marketdata import market_clock
from apps.marketdata.bars import BROKER_CHART_PHASES, LIVE_PHASES, completeness, expected_minute_bars
from apps.marketdata.models import CollectionRun, DailyBar, MinuteBar, ReferencePrice, ValidationRun
from apps.marketdata.selectors import calendar_disagreements as disagreements
from apps.marketdata.selectors import calendar_upcoming as upcoming
from apps.marketdata.selectors import krx_calendar

from .market_day import StockFlags, VenuePhase, countdown, from_phase_now, stock_flags

logger = logging.getLogger(__name__)

SESSION_LABELS = {
    "pre_open": _("Pre-open"),
    "continuous": _("Continuous trading"),
    "closing_auction": _("Closing auction"),
    "closed": _("Closed"),
    "unknown": _("Unknown"),
}
FEED_STATUS_LABELS = {
    "connected": _("Connected"),
    "reconnecting": _("Reconnecting"),
    "stale": _("Stale"),
    "closed": pgettext_lazy("feed", "Closed"),
    "stopped": _("Stopped"),
    "unknown": _("Unknown"),
}
FEED_STATUSES = tuple(FEED_STATUS_LABELS)
CLOCK_TIMEOUT = 1.0  # seconds a page waits for the sandbox clock before showing "unknown"


@dataclass(frozen=True)
class MarketStatus:
    available: bool
    now: dt.datetime | None  # aware, KST
    trading_date: dt.date | None
    session: str  # pre_open | continuous | closing_auction | closed | unknown
    source: str  # sandbox | calendar | ""
    synthetic: bool
    speed: float  # replay seconds per wall second (1.0 for the real clock)
    error: str = ""
    phases: tuple[VenuePhase, ...] = ()  # KRX then NXT: the phase bar

    @property
    def phase_lines(self) -> list[dict]:
        """The phase bar's lines with the countdown rendered server-side (the JS ticks it from there)."""
        return [
            {
                "line": line,
                "seconds_left": line.seconds_left(self.now),
                "countdown": countdown(line.seconds_left(self.now)),
            }
            for line in self.phases
        ]

    @property
    def session_label(self) -> str:
        return str(SESSION_LABELS.get(self.session, self.session))

    @property
    def is_open(self) -> bool:
        return self.session in ("continuous", "closing_auction")

    def as_json(self) -> dict:
        return {
            "available": self.available,
            "now": self.now.isoformat() if self.now else None,
            "trading_date": self.trading_date.isoformat() if self.trading_date else None,
            "session": self.session,
            "session_label": self.session_label,
            "source": self.source,
            "synthetic": self.synthetic,
            "speed": self.speed,
            "error": self.error,
            "phases": [line.as_json() for line in self.phases],
        }


def market_status() -> MarketStatus:
    """The market clock every job agrees on (the sandbox's replay clock, else KST and the KRX calendar)."""
    try:
        if settings.MARKET_BROKER == "sandbox":
            market = market_clock.sandbox_now(timeout=CLOCK_TIMEOUT, calendar=krx_calendar())
            speed = 1.0 if settings.SANDBOX_CLOCK == "wallclock" else float(settings.SANDBOX_SPEED)
        else:
            market = market_clock.calendar_now(krx_calendar())
            speed = 1.0
    except market_clock.MarketClockUnavailable as exc:
        logger.warning("market clock unavailable for a page: %s", exc)
        return MarketStatus(False, None, None, "unknown", "", False, 1.0, error=str(exc))
    return MarketStatus(
        True,
        market.now,
        market.trading_date,
        market.session,
        market.source,
        market.synthetic,
        speed,
        phases=venue_phases(market),
    )


def venue_phases(market: market_clock.MarketNow) -> tuple[VenuePhase, ...]:
    """KRX's and NXT's phase at the market's now: the clock's own (``MarketNow.phases``: the schedule of the
    calendar's session for that day, or what the sandbox reports), else ``apps.core.krx.phases.phase_now`` with
    the calendar (a late open shifts the KRX windows; after the day's last window the countdown runs to the next
    trading day). Empty when it cannot be computed: the page renders without its phase bar."""
    try:
        if market.phases:
            return tuple(from_phase_now(market.phases[venue]) for venue in VENUES if venue in market.phases)
        calendar = krx_calendar()
        return tuple(from_phase_now(phase_now(venue, market.now, calendar)) for venue in VENUES)
    except Exception:
        logger.exception("market phases unavailable for a page")
        return ()


def accepted_now(market: MarketStatus, *, route: str) -> frozenset[str]:
    """The order kinds (``apps.core.krx.phases`` names) the route takes now: its venue's, or for SOR either
    venue's. Empty when the phases are unknown (the engine still decides; the ticket only hints)."""
    venues = set(VENUES) if route == SOR else {route}
    accepted: set[str] = set()
    for line in market.phases:
        if line.venue in venues:
            accepted.update(line.accepted)
    return frozenset(accepted)


def feed_status() -> str:
    """The feed holder's status (connected / reconnecting / stale / closed / stopped), else ``unknown``."""
    try:
        status = live_quotes.feed_status()
    except Exception:  # Redis down: the page says unknown
        logger.warning("feed status unavailable for a page")
        return "unknown"
    return status if status in FEED_STATUSES else "unknown"


def book_latest(*, code: str) -> dict | None:
    """The stored order-book snapshot of ``code`` (see ``realtime/snapshots.py``), or None."""
    try:
        return live_quotes.book_snapshot(code)
    except Exception:
        logger.warning("order book snapshot unavailable for a page")
        return None


def book_levels(book: dict | None, *, base: int | None = None) -> dict:
    """Ten ask levels (level 10 first, as drawn top-down) and ten bid levels with depth percentages.

    Each level's ``direction`` compares its price with ``base`` (the previous close, 기준가): ``up`` above,
    ``down`` below, as Korean order books colour them (red above the base, blue below)."""
    asks = [tuple(level) for level in (book or {}).get("asks", [])][:10]
    bids = [tuple(level) for level in (book or {}).get("bids", [])][:10]
    asks += [(0, 0)] * (10 - len(asks))
    bids += [(0, 0)] * (10 - len(bids))
    biggest = max([q for _, q in asks + bids] + [0])

    def rows(levels, side):
        return [
            {
                "side": side,
                "level": i + 1,
                "price": price or None,
                "qty": qty if price else None,
                "depth": 0 if not biggest or not qty else min(100, round(qty * 100 / biggest)),
                "direction": _direction(price, base),
            }
            for i, (price, qty) in enumerate(levels)
        ]

    return {
        "asks": list(reversed(rows(asks, "ask"))),
        "bids": rows(bids, "bid"),
        "total_ask_qty": (book or {}).get("total_ask_qty"),
        "total_bid_qty": (book or {}).get("total_bid_qty"),
        "time": (book or {}).get("time"),
        "base": base,
    }


def _direction(price: int | None, base: int | None) -> str:
    if not price or not base or price == base:
        return ""
    return "up" if price > base else "down"


def previous_closes(*, codes: list[str], before: dt.date) -> dict[str, int]:
    """Last daily close of each code before ``before`` (kis preferred on the same date), else the base price
    stored for the day ``before`` (``ReferencePrice``)."""
    from django.db.models import Case, IntegerField, Value, When

    stored = dict(
        ReferencePrice.objects.filter(stock__code__in=codes, trading_date=before).values_list("stock__code", "price")
    )

    rows = (
        DailyBar.objects.filter(stock__code__in=codes, date__lt=before)
        .annotate(pref=Case(When(source="kis", then=Value(0)), default=Value(1), output_field=IntegerField()))
        .order_by("stock__code", "-date", "pref", "source")
        .distinct("stock__code")
        .values_list("stock__code", "close")
    )
    return {**{code: int(price) for code, price in stored.items()}, **{code: int(close) for code, close in rows}}


def quote_rows(*, stocks: list, trading_date: dt.date) -> list[dict]:
    """One row per stock for the watch list: the latest quote (live snapshot, else the newest stored bar)
    with change and change rate against the previous close when the snapshot does not carry them."""
    from decimal import ROUND_HALF_UP, Decimal

    codes = [s.code for s in stocks]
    try:
        latest = {q["code"]: q for q in live_quotes.quotes_latest(codes=codes)["quotes"]} if codes else {}
    except Exception:  # Redis down: no quotes, the page still lists the universe
        logger.warning("quotes unavailable for a page")
        latest = {}
    closes = previous_closes(codes=codes, before=trading_date) if codes else {}
    rows = []
    for stock in stocks:
        quote = latest.get(stock.code) or {}
        price = quote.get("price")
        change, rate = quote.get("change"), quote.get("change_rate")
        base = closes.get(stock.code)
        if price is not None and change is None and base:
            change = int(price) - base
            rate = (Decimal(change) * 100 / Decimal(base)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        rows.append(
            {
                "code": stock.code,
                "name": stock.name,
                "market": stock.market,
                "price": price,
                "change": change,
                "change_rate": rate,
                "volume": quote.get("cum_volume", quote.get("volume")),
                "source": quote.get("source", ""),
                "as_of": quote.get("as_of", ""),
                "flags": stock_flags(stock.code, quote if quote.get("source") == "ws" else None),
            }
        )
    return rows


def flags_for(codes) -> dict[str, StockFlags]:
    """The halted / VI / expected-price flags of each code from its live quote snapshot (a code without one, or
    Redis down: no flag). For the pages that list stocks: orders, portfolio."""
    codes = sorted({c for c in codes if c})
    try:
        snapshots = live_quotes.quote_snapshots(codes) if codes else {}
    except Exception:
        logger.warning("quote snapshots unavailable for a page")
        snapshots = {}
    return {code: stock_flags(code, snapshots.get(code)) for code in codes}


def ticket_limits(*, stock, trading_date: dt.date) -> dict:
    """The order ticket's price hints: base price (and where it came from), today's lower/upper limits and the
    tick table in force. Reads only: the stored base price, else the day's live tick (no broker call). The
    source is named when the base is not the previous close."""

    reference = reference_price_resolve(stock=stock, trading_date=trading_date, broker=False, store=False)
    bands = [[bound, tick] for bound, tick in DEFAULT_TICKS.bands(trading_date, stock.market)]
    ticks_json = json.dumps(bands)  # [[exclusive upper bound or null, tick], ...] for the price steppers
    if reference is None:
        return {"base": None, "lower": None, "upper": None, "ticks": bands, "ticks_json": ticks_json, "base_source": ""}
    upper, lower = DEFAULT_TICKS.price_limits(reference.price, trading_date, stock.market)
    return {
        "base": reference.price,
        "base_source": "" if reference.source.startswith("daily_close") else reference.label,
        "lower": lower,
        "upper": upper,
        "ticks": bands,
        "ticks_json": ticks_json,
    }


def calendar_upcoming(*, start: dt.date, days: int = 60) -> list:
    """The next closures and shifted sessions (weekdays from ``start``), for the dashboard; empty when the
    calendar cannot be read."""

    try:
        return upcoming(start=start, days=days)
    except Exception:  # the dashboard renders without it
        logger.exception("calendar unavailable for a page")
        return []


def calendar_disagreements(*, since: dt.date) -> list:

    return disagreements(since=since)


# --- data quality ----------------------------------------------------------------------------------------


def collection_runs_latest(*, limit: int = 30) -> list:

    return list(CollectionRun.objects.order_by("-started_at", "-id")[:limit])


def validation_run_latest():

    return ValidationRun.objects.filter(finished_at__isnull=False).order_by("-started_at", "-id").first()


def validation_daily_diffs(run) -> list[dict]:
    """Per trading day of the run: the largest and the mean absolute close difference (%) between its two
    sources over the stocks both carry, ``(b - a) / a``, from the stored daily bars."""

    if run is None:
        return []
    qs = DailyBar.objects.filter(source__in=(run.source_a, run.source_b), date__range=(run.date_from, run.date_to))
    if run.codes:
        qs = qs.filter(stock__code__in=run.codes)
    closes: dict[tuple[int, dt.date], dict[str, int]] = {}
    for stock_id, day, source, close in qs.values_list("stock_id", "date", "source", "close"):
        closes.setdefault((stock_id, day), {})[source] = close
    per_day: dict[dt.date, list[float]] = {}
    for (_stock, day), by_source in closes.items():
        a, b = by_source.get(run.source_a), by_source.get(run.source_b)
        if a and b:
            per_day.setdefault(day, []).append(abs(b - a) * 100.0 / a)
    return [
        {"date": day, "max": round(max(diffs), 4), "mean": round(sum(diffs) / len(diffs), 4), "stocks": len(diffs)}
        for day, diffs in sorted(per_day.items())
    ]


def validation_disagreements(run, *, limit: int = 20) -> list[dict]:
    """The first rows of the run's CSV report (values outside the tolerance), when the file is readable."""
    if run is None or not run.report_path:
        return []
    path = Path(run.report_path)
    rows: list[dict] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader, None)
            for row in reader:
                if len(row) < 6:
                    continue
                rows.append(
                    {"code": row[0], "date": row[1], "field": row[2], "a": row[3], "b": row[4], "diff_pct": row[5]}
                )
                if len(rows) >= limit:
                    break
    except OSError:
        return []
    return rows


def minute_completeness(*, source: str = "kis", limit: int = 10) -> dict | None:
    """The 1-minute bars of the latest day ``source`` has minute bars for, against the bars that day should have
    (``apps.marketdata.bars``: the calendar's session and the source's phases). None without minute bars."""
    latest = (
        MinuteBar.objects.filter(source=source)
        .annotate(day=TruncDate("ts", tzinfo=KST))
        .order_by("-day")
        .values_list("day", flat=True)
        .first()
    )
    session = krx_calendar().session(latest) if latest else None
    if session is None:
        return None
    phases = BROKER_CHART_PHASES if source == "kis" else LIVE_PHASES
    start = dt.datetime.combine(latest, dt.time.min, tzinfo=KST)
    stored: dict[str, list[tuple[dt.datetime, str]]] = {}
    rows = MinuteBar.objects.filter(source=source, ts__gte=start, ts__lt=start + dt.timedelta(days=1))
    for code, ts, phase in rows.values_list("stock__code", "ts", "phase"):
        stored.setdefault(code, []).append((ts, phase))
    day_end = dt.datetime.combine(latest, dt.time(23, 59), tzinfo=KST)
    now = min(day_end, market_status().now or day_end)  # today's session: only the bars complete by now
    results = sorted(
        (completeness(code, session, bars, phases=phases, now=now) for code, bars in stored.items()),
        key=lambda r: (-len(r.missing), r.code),
    )
    return {
        "day": latest,
        "source": source,
        "expected": len(expected_minute_bars(session, phases=phases)),
        "stocks": len(results),
        "complete": sum(1 for r in results if r.complete),
        "off_hours": sum(r.extra_off_hours for r in results),
        "incomplete": [r for r in results if not r.complete][:limit],
    }


def kst_today() -> dt.date:
    return dt.datetime.now(tz=KST).date()
