"""Collection tasks (queue ``default``). Thin: they take the market clock, hold a lock, call one service.

Each job checks the market clock first, so nothing does market work on a closed day; the minute job
holds a Redis lock so two runs never overlap (a run that finds the lock held is skipped, and the next
one backfills whatever it missed).
"""

from __future__ import annotations

import asyncio
import logging

from celery import shared_task

logger = logging.getLogger(__name__)

MINUTE_LOCK_KEY = "hoga:lock:collect_minute_bars"
MINUTE_LOCK_TTL = 300  # seconds; a crashed run's lock expires by itself
DAILY_LOCK_KEY = "hoga:lock:collect_daily_bars"
DAILY_LOCK_TTL = 3600


def _second_sources():
    from django.conf import settings

    from .sources.fdr import FinanceDataReaderSource
    from .sources.recorded import RecordedFdrSource, RecordedYahooSource

    sources = [FinanceDataReaderSource()]
    if settings.HOGA_DATA_DIR:
        sources += [RecordedFdrSource(settings.HOGA_DATA_DIR), RecordedYahooSource(settings.HOGA_DATA_DIR)]
    return sources


def _market_now():
    from .market_clock import MarketClockUnavailable, market_now
    from .selectors import krx_calendar

    calendar = krx_calendar()
    try:
        return calendar, market_now(calendar)
    except MarketClockUnavailable as exc:
        logger.warning("market clock unavailable; collection skipped", extra={"error": str(exc)})
        return calendar, None


@shared_task(bind=True, name="marketdata.collect_minute_bars", expires=55, ignore_result=True)
def collect_minute_bars(self, codes: list[str] | None = None, force: bool = False) -> dict | None:
    """Every minute in session: completed 1-minute bars of the universe, backfilling any gap."""
    from apps.core.redis import get_redis

    from .broker_services import kis_client_async
    from .collection import minute_collect, universe_codes

    calendar, market = _market_now()
    if market is None or market.trading_date is None or (market.session == "pre_open" and not force):
        return None
    lock = get_redis().lock(MINUTE_LOCK_KEY, timeout=MINUTE_LOCK_TTL, blocking=False)
    if not lock.acquire():
        logger.info("minute collection still running; this run is skipped")
        return None
    try:
        run_codes = codes or universe_codes()

        async def go():
            async with kis_client_async() as client:
                return await minute_collect(client=client, market=market, calendar=calendar, codes=run_codes)

        run = asyncio.run(go())
        return {"run": run.pk, "stored": run.stored, "failed": run.failed, "backfilled": run.backfilled}
    finally:
        lock.release()


@shared_task(bind=True, name="marketdata.collect_daily_bars", ignore_result=True)
def collect_daily_bars(self, codes: list[str] | None = None, force: bool = False) -> dict | None:
    """After the close: daily bars from the broker and the second source, then source validation."""
    from apps.core.redis import get_redis

    from .broker_services import kis_client_async
    from .collection import daily_collect, universe_codes
    from .models import CollectionRun

    calendar, market = _market_now()
    if market is None or market.trading_date is None:
        return None
    if market.session != "closed" and not force:
        return None
    day = market.trading_date
    if (
        not force
        and CollectionRun.objects.filter(
            job="daily", status=CollectionRun.Status.SUCCEEDED, window_end__date=day
        ).exists()
    ):
        return None  # already collected for this trading day
    lock = get_redis().lock(DAILY_LOCK_KEY, timeout=DAILY_LOCK_TTL, blocking=False)
    if not lock.acquire():
        return None
    try:
        run_codes = codes or universe_codes()

        async def go():
            async with kis_client_async() as client:
                return await daily_collect(
                    client=client,
                    trading_date=day,
                    calendar=calendar,
                    codes=run_codes,
                    second_sources=_second_sources(),
                )

        run = asyncio.run(go())
    finally:
        lock.release()
    validate_daily_sources.delay(day.isoformat())
    return {"run": run.pk, "stored": run.stored, "failed": run.failed}


@shared_task(name="marketdata.validate_daily_sources", ignore_result=True)
def validate_daily_sources(trading_date: str, days: int = 90) -> dict | None:
    """Compare the broker's daily bars with every second source stored for the last ``days`` trading days."""
    from datetime import date

    from .models import BarSource, DailyBar
    from .selectors import krx_calendar
    from .services import validation_run_execute

    day = date.fromisoformat(trading_date)
    start = krx_calendar().trading_days_back(day, days)[0]
    results = {}
    for source in (BarSource.FDR, BarSource.YAHOO):
        if DailyBar.objects.filter(source=source, date__range=(start, day)).exists():
            run = validation_run_execute(source_a=BarSource.KIS, source_b=source, date_from=start, date_to=day)
            results[source] = run.pk
    return results


@shared_task(
    bind=True, name="marketdata.backfill_daily_bars", ignore_result=True, soft_time_limit=3300, time_limit=3600
)
def backfill_daily_bars(self, start: str, end: str, codes: list[str] | None = None) -> dict:
    """A long backfill; its progress shows in Flower (task state PROGRESS) and in the admin (CollectionRun)."""
    from datetime import date

    from .broker_services import kis_client_async
    from .collection import daily_backfill, universe_codes

    run_codes = codes or universe_codes()

    def report(done: int, total: int) -> None:
        self.update_state(state="PROGRESS", meta={"done": done, "total": total})

    async def go():
        async with kis_client_async() as client:
            return await daily_backfill(
                client=client,
                codes=run_codes,
                start=date.fromisoformat(start),
                end=date.fromisoformat(end),
                progress=report,
            )

    run = asyncio.run(go())
    return {"run": run.pk, "stored": run.stored, "failed": run.failed}
