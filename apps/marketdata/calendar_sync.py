"""The daily calendar sync: ask the broker which days KRX is open (KIS 국내휴장일조회 CTCA0903R) and store its
answer (``BrokerCalendarDay``), which then wins over the package layer; operator overrides still win over it.

KIS asks callers to query it about once a day, so the task runs once a day (and at a worker's start when the
day's sync has not run). A date where the sources disagree is logged as a warning and listed on the
data-quality page. The broker client is passed in (it never touches the ORM; this module does).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

from channels.db import database_sync_to_async as sync_to_async
from django.db import transaction

from apps.brokers.base import BrokerError, MarketDay
from apps.core.krx.calendar import KST

from .collection import _run_finish, _run_start
from .models import BrokerCalendarDay, CollectionRun
from .selectors import calendar_cache_clear, krx_calendar

logger = logging.getLogger(__name__)

JOB = "calendar_sync"
SYNC_DAYS = 90  # how far ahead the broker's answer is stored (about 4 pages of 24 dates)


@transaction.atomic
def broker_calendar_store(*, days: Sequence[MarketDay], source: str = "kis") -> int:
    """Upsert the broker's answer per date (idempotent); returns the number of dates stored."""
    if not days:
        return 0
    rows = [
        BrokerCalendarDay(
            date=d.date,
            is_open=d.is_open,
            business_day=d.business_day,
            trading_day=d.trading_day,
            settlement_day=d.settlement_day,
            weekday_code=d.weekday_code[:2],
            source=source,
        )
        for d in days
    ]
    BrokerCalendarDay.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["date"],
        update_fields=["is_open", "business_day", "trading_day", "settlement_day", "weekday_code", "source",
                       "fetched_at"],
    )  # fmt: skip
    transaction.on_commit(calendar_cache_clear)  # bulk_create sends no post_save
    return len(rows)


def calendar_disagreements_log(*, days: Sequence[date]) -> list:
    """Log every date of ``days`` whose sources disagree (one warning each); return the disagreements."""

    found = krx_calendar().disagreements(list(days))
    for d in found:
        logger.warning(
            "calendar sources disagree",
            extra={
                "day": d.day.isoformat(),
                "package": "open" if d.package_open else "closed",
                "broker": "-" if d.broker_open is None else ("open" if d.broker_open else "closed"),
                "override": "-" if d.override_open is None else ("open" if d.override_open else "closed"),
                "effective": "open" if d.effective_open else "closed",
            },
        )
    return found


def calendar_synced_on(day: date) -> bool:
    """True when a sync succeeded on ``day`` (KST), so the once-a-day query is not repeated."""
    start = datetime.combine(day, time.min, tzinfo=KST)
    return CollectionRun.objects.filter(
        job=JOB, status=CollectionRun.Status.SUCCEEDED, started_at__gte=start, started_at__lt=start + timedelta(days=1)
    ).exists()


async def calendar_sync(*, client, since: date, days: int = SYNC_DAYS) -> CollectionRun:
    """Store the broker's open/closed answer for ``days`` days from ``since``; a broker that refuses or fails
    leaves the stored answers and the other layers as they are (recorded in the run's note)."""
    run = await sync_to_async(_run_start)(
        JOB,
        window_start=datetime.combine(since, time.min, tzinfo=KST),
        window_end=datetime.combine(since + timedelta(days=days - 1), time.max, tzinfo=KST),
    )
    try:
        market_days = await client.market_days(since, days=days)
    except BrokerError as exc:
        note = (
            f"the broker's holiday query failed ({exc.code}: {str(exc)[:200]}); the calendar keeps its stored "
            "broker answers, the announced special days, exchange_calendars and the overrides"
        )
        logger.warning("calendar sync failed", extra={"error_code": exc.code, "error": str(exc)[:200]})
        return await sync_to_async(_run_finish)(
            run, requested=1, stored=0, failed=1, backfilled=0, errors={"chk-holiday": str(exc)[:300]}, note=note
        )
    stored = await sync_to_async(broker_calendar_store)(days=market_days)
    disagreements = await sync_to_async(calendar_disagreements_log)(days=[d.date for d in market_days])
    closed = [d.date.isoformat() for d in market_days if not d.is_open and d.date.weekday() < 5]
    note = f"{stored} dates"
    if market_days:
        note += f" {market_days[0].date} .. {market_days[-1].date}; weekdays closed: {', '.join(closed) or 'none'}"
    if disagreements:
        note += "; sources disagree on " + ", ".join(d.day.isoformat() for d in disagreements)
    return await sync_to_async(_run_finish)(
        run, requested=1, stored=stored, failed=0, backfilled=0, errors={}, note=note
    )
