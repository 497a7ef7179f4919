"""Collection services: minute and daily bars from the broker into PostgreSQL, with gap backfill.

The minute bars a day should have come from the calendar and the phases (``bars.expected_minute_bars``: the
broker's chart has the continuous minutes and the closing print's bar); each stored bar carries its phase.

Every run is recorded as a CollectionRun (requested / stored / failed / backfilled). Writes are bulk
upserts, so re-running a window is harmless. The broker client is passed in (it never touches the ORM;
these services do).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

from channels.db import database_sync_to_async as sync_to_async  # closes stale connections around each call
from django.db.models import Max
from django.utils import timezone

from apps.brokers.base import BrokerError, CircuitOpen
from apps.core.krx.calendar import KST, KrxCalendar, Session
from apps.core.krx.phases import CONTINUOUS

from .bars import BROKER_CHART_PHASES, BarSlot, broker_bar_phase, completed_bars
from .market_clock import MarketNow
from .models import BarSource, CollectionRun, DailyBar, MinuteBar, Stock
from .services import daily_bars_upsert, minute_bars_upsert
from .sources.base import DailySource, SourceUnavailable

logger = logging.getLogger(__name__)

DAILY_BACKFILL_DAYS = 90
MINUTE_CONCURRENCY = 8  # in-flight requests; the shared rate limiter does the pacing


@dataclass(frozen=True)
class MinuteRow:
    code: str
    ts: datetime
    open: int
    high: int
    low: int
    close: int
    volume: int
    phase: str = CONTINUOUS


def completed_minutes(session: Session, now: datetime) -> list[datetime]:
    """Minutes of the broker's chart of ``session`` complete at ``now`` (the closing print once it printed)."""
    return [slot.ts for slot in completed_bars(session, now, phases=BROKER_CHART_PHASES)]


def _first_missing(expected: list[BarSlot], stored: set[tuple[datetime, str]]) -> BarSlot | None:
    for slot in expected:
        if (slot.ts, slot.phase) not in stored:
            return slot
    return None


def _run_start(job: str, **fields) -> CollectionRun:
    return CollectionRun.objects.create(job=job, **fields)


def _run_finish(
    run: CollectionRun, *, requested: int, stored: int, failed: int, backfilled: int, errors: dict, note: str = ""
) -> CollectionRun:
    if failed == 0:
        status = CollectionRun.Status.SUCCEEDED
    elif failed < requested:
        status = CollectionRun.Status.PARTIAL
    else:
        status = CollectionRun.Status.FAILED
    CollectionRun.objects.filter(pk=run.pk).update(
        finished_at=timezone.now(),
        status=status,
        requested=requested,
        stored=stored,
        failed=failed,
        backfilled=backfilled,
        progress=1.0,
        error_summary=errors,
        note=note,
    )
    run.refresh_from_db()
    logger.info(
        "collection run finished",
        extra={
            "job": run.job,
            "run": run.pk,
            "status": run.status,
            "requested": requested,
            "stored": stored,
            "failed": failed,
            "backfilled": backfilled,
            "success_rate": run.success_rate,
        },
    )
    return run


async def minute_collect(
    *,
    client,
    market: MarketNow,
    calendar: KrxCalendar,
    codes: Sequence[str],
    progress: Callable[[float], None] | None = None,
) -> CollectionRun:
    """Store every completed minute of today's session not yet stored, for each stock.

    For each stock the broker is asked back to the first missing minute of the day (not only the last
    one), so a gap of any length (worker down, broker outage, breaker open) is backfilled on the next run.
    """
    day = market.trading_date
    session = calendar.session(day) if day else None
    if session is None:
        raise ValueError(f"{day} is not a trading day")
    now = market.now if market.now.date() == day else datetime.combine(day, time(23, 59), tzinfo=KST)
    expected = completed_bars(session, now, phases=BROKER_CHART_PHASES)
    run = await sync_to_async(_run_start)(
        "minute", window_start=session.open, window_end=expected[-1].ts if expected else session.open
    )
    if not expected:
        return await sync_to_async(_run_finish)(
            run, requested=0, stored=0, failed=0, backfilled=0, errors={}, note="no completed minute yet"
        )

    stored_by_code = await sync_to_async(_stored_minutes)(codes, session)
    latest = expected[-1]
    errors: dict[str, str] = {}
    stored = backfilled = 0
    done = 0
    semaphore = asyncio.Semaphore(MINUTE_CONCURRENCY)

    async def one(code: str) -> list[MinuteRow]:
        nonlocal done
        first = _first_missing(expected, stored_by_code.get(code, set()))
        if first is None:
            return []
        async with semaphore:
            try:
                bars = await client.minute_bars_today(code, since=first.ts.time(), until=latest.ts.time())
            except BrokerError as exc:
                errors[code] = f"{type(exc).__name__}: {exc}"[:300]
                return []
            finally:
                done += 1
                if progress:
                    progress(min(1.0, done / len(codes)))
        wanted = {(slot.ts, slot.phase) for slot in expected} - stored_by_code.get(code, set())
        rows = []
        for bar in bars:
            ts = bar.at.astimezone(KST)
            phase = broker_bar_phase(ts, session)
            if (ts, phase) in wanted:
                rows.append(MinuteRow(code, ts, bar.open, bar.high, bar.low, bar.close, bar.volume, phase))
        return rows

    results = await asyncio.gather(*(one(code) for code in codes))
    # While the breaker is half-open only its probe goes through; stocks refused then get one more try
    # after everything else, when the probe has decided.
    retry = [code for code, error in errors.items() if error.startswith(CircuitOpen.__name__)]
    for code in retry:
        del errors[code]
        results.append(await one(code))
    rows = [row for group in results for row in group]
    if rows:
        stored = await sync_to_async(minute_bars_upsert)(source=BarSource.KIS, bars=rows)
        backfilled = sum(1 for row in rows if row.ts < latest.ts)
    return await sync_to_async(_run_finish)(
        run, requested=len(codes), stored=stored, failed=len(errors), backfilled=backfilled, errors=errors
    )


def _stored_minutes(codes: Sequence[str], session: Session) -> dict[str, set[tuple[datetime, str]]]:
    stored: dict[str, set[tuple[datetime, str]]] = {}
    rows = MinuteBar.objects.filter(
        stock__code__in=codes, source=BarSource.KIS, ts__gte=session.open, ts__lte=session.close
    ).values_list("stock__code", "ts", "phase")
    for code, ts, phase in rows:
        stored.setdefault(code, set()).add((ts.astimezone(KST), phase))
    return stored


async def daily_collect(
    *,
    client,
    trading_date: date,
    calendar: KrxCalendar,
    codes: Sequence[str],
    second_sources: Sequence[DailySource] = (),
    backfill_days: int = DAILY_BACKFILL_DAYS,
) -> CollectionRun:
    """Daily bars up to ``trading_date`` from the broker (raw prices) and from the second source(s).

    A stock with no broker bars yet gets ``backfill_days`` trading days; otherwise the days since its
    last stored bar. A second source that cannot be reached is recorded in the run and skipped; the next
    one in ``second_sources`` (e.g. recorded files) is tried instead.
    """
    first_day = calendar.trading_days_back(trading_date, backfill_days)[0]
    run = await sync_to_async(_run_start)(
        "daily",
        window_start=datetime.combine(first_day, time.min, tzinfo=KST),
        window_end=datetime.combine(trading_date, time.max, tzinfo=KST),
    )
    last_by_code = await sync_to_async(_last_daily)(codes, BarSource.KIS)
    errors: dict[str, str] = {}
    notes: list[str] = []
    broker_rows = []
    for code in codes:
        start = last_by_code.get(code) or first_day
        try:
            bars = await client.daily_bars(code, start, trading_date, adjusted=False)
        except BrokerError as exc:
            errors[code] = f"{type(exc).__name__}: {exc}"[:300]
            continue
        broker_rows.extend(bars)
    stored = await sync_to_async(daily_bars_upsert)(source=BarSource.KIS, bars=broker_rows)

    for source in second_sources:
        try:
            rows = []
            for code in codes:
                rows.extend(await sync_to_async(source.daily_bars)(code, first_day, trading_date))
        except SourceUnavailable as exc:
            notes.append(f"second source {source.name} unavailable: {exc}")
            logger.warning(
                "second source unavailable; trying the next one", extra={"source": source.name, "error": str(exc)}
            )
            continue
        stored_b = await sync_to_async(daily_bars_upsert)(source=source.name, bars=rows)
        notes.append(f"second source {source.name}: {stored_b} bars")
        break
    else:
        if second_sources:
            notes.append("no second source could be reached")
    return await sync_to_async(_run_finish)(
        run, requested=len(codes), stored=stored, failed=len(errors), backfilled=0, errors=errors, note="; ".join(notes)
    )


def _last_daily(codes: Sequence[str], source: str) -> dict[str, date]:
    return dict(
        DailyBar.objects.filter(stock__code__in=codes, source=source)
        .values("stock__code")
        .annotate(last=Max("date"))
        .values_list("stock__code", "last")
    )


def universe_codes() -> list[str]:
    """The collection universe's codes by rank."""
    return list(
        Stock.objects.filter(active=True, in_universe=True).order_by("rank", "code").values_list("code", flat=True)
    )


async def daily_backfill(
    *,
    client,
    codes: Sequence[str],
    start: date,
    end: date,
    progress: Callable[[int, int], None] | None = None,
) -> CollectionRun:
    """Broker daily bars (raw prices) for an explicit range, stock by stock, recording progress.

    Progress is written to the CollectionRun after each stock (visible in the admin) and reported to
    ``progress(done, total)`` (the command's progress bar, the task's state in Flower).
    """
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    run = await sync_to_async(_run_start)(
        "daily_backfill",
        window_start=datetime.combine(start, time.min, tzinfo=KST),
        window_end=datetime.combine(end, time.max, tzinfo=KST),
        requested=len(codes),
    )
    errors: dict[str, str] = {}
    stored = 0
    for index, code in enumerate(codes, start=1):
        try:
            bars = await client.daily_bars(code, start, end, adjusted=False)
            stored += await sync_to_async(daily_bars_upsert)(source=BarSource.KIS, bars=bars)
        except BrokerError as exc:
            errors[code] = f"{type(exc).__name__}: {exc}"[:300]
        await sync_to_async(CollectionRun.objects.filter(pk=run.pk).update)(progress=index / len(codes), stored=stored)
        if progress:
            progress(index, len(codes))
    return await sync_to_async(_run_finish)(
        run, requested=len(codes), stored=stored, failed=len(errors), backfilled=stored, errors=errors
    )
