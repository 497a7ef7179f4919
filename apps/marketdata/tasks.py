"""Collection tasks (queue ``default``). Thin: they take the market clock, hold a lock, call one service.

Each job checks the market clock first, so nothing does market work on a closed day; the minute job
holds a Redis lock so two runs never overlap (a run that finds the lock held is skipped, and the next
one backfills whatever it missed).
"""

from __future__ import annotations

import asyncio
import logging

from celery import shared_task

from apps.core.krx.calendar import now_kst
from apps.core.redis import get_redis

from .bootstrap import market_data_bootstrap
from .broker_services import kis_bulk_config, kis_client_async
from .calendar_sync import calendar_sync, calendar_synced_on
from .collection import daily_backfill, daily_collect, minute_collect, universe_codes
from .listing import listing_sync, listing_synced_on
from .market_clock import MarketClockUnavailable, market_now, sandbox_now
from .models import BarSource, CollectionRun, DailyBar
from .on_demand import collection_codes
from .selectors import krx_calendar
from .services import validation_run_execute
from .sources.fdr import FinanceDataReaderSource
from .sources.recorded import RecordedFdrSource, RecordedYahooSource

logger = logging.getLogger(__name__)

MINUTE_LOCK_KEY = "hoga:lock:collect_minute_bars"
MINUTE_LOCK_TTL = 300  # seconds; a crashed run's lock expires by itself
DAILY_LOCK_KEY = "hoga:lock:collect_daily_bars"
DAILY_LOCK_TTL = 3600


def _second_sources():
    from django.conf import settings

    sources = [FinanceDataReaderSource()]
    if settings.HOGA_DATA_DIR:
        sources += [RecordedFdrSource(settings.HOGA_DATA_DIR), RecordedYahooSource(settings.HOGA_DATA_DIR)]
    return sources


def _market_now():

    calendar = krx_calendar()
    try:
        return calendar, market_now(calendar)
    except MarketClockUnavailable as exc:
        logger.warning("market clock unavailable; collection skipped", extra={"error": str(exc)})
        return calendar, None


@shared_task(bind=True, name="marketdata.collect_minute_bars", expires=55, ignore_result=True)
def collect_minute_bars(self, codes: list[str] | None = None, force: bool = False) -> dict | None:
    """Every minute in session: completed 1-minute bars of the universe and of the stocks opened on demand,
    backfilling any gap."""

    calendar, market = _market_now()
    if market is None or market.trading_date is None or (market.session == "pre_open" and not force):
        return None
    lock = get_redis().lock(MINUTE_LOCK_KEY, timeout=MINUTE_LOCK_TTL, blocking=False)
    if not lock.acquire():
        logger.info("minute collection still running; this run is skipped")
        return None
    try:
        run_codes = codes or collection_codes()

        async def go():
            async with kis_client_async() as client:
                return await minute_collect(client=client, market=market, calendar=calendar, codes=run_codes)

        run = asyncio.run(go())
        return {"run": run.pk, "stored": run.stored, "failed": run.failed, "backfilled": run.backfilled}
    finally:
        lock.release()


@shared_task(bind=True, name="marketdata.collect_daily_bars", ignore_result=True)
def collect_daily_bars(self, codes: list[str] | None = None, force: bool = False) -> dict | None:
    """After the close: daily bars from the broker and the second source (the universe and the stocks opened on
    demand), then source validation."""

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
        run_codes = codes or collection_codes()

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


# --- the calendar sync and the start-up fill ------------------------------------------------------------------

BOOTSTRAP_LOCK_KEY = "hoga:lock:bootstrap"
BOOTSTRAP_LOCK_TTL = 1900  # seconds; longer than the task's hard time limit
BOOTSTRAP_STATE_KEY = "hoga:marketdata:bootstrap"  # JSON progress of the running or last fill (for /healthz)
BOOTSTRAP_QUEUED_KEY = (
    "hoga:marketdata:bootstrap:queued"  # workers starting together enqueue one fill (until it starts)
)
BOOTSTRAP_RETRY_MAX = 60  # seconds between attempts at most (doubling from 2 s)


def _market_today():
    """The market's today: the sandbox's replay date, else the KST date."""
    from django.conf import settings

    if settings.MARKET_BROKER == "sandbox":
        try:
            market = sandbox_now()
            return market.trading_date or market.now.date()
        except MarketClockUnavailable as exc:
            logger.warning(
                "sandbox clock unavailable; the calendar sync starts at today's date", extra={"error": str(exc)}
            )
    return now_kst().date()


def calendar_sync_if_due(*, force: bool = False):
    """Run the broker calendar sync unless one succeeded today (KIS: about once a day); the run or None."""
    from django.conf import settings

    if not force and calendar_synced_on(now_kst().date()):
        return None
    since = _market_today()

    async def go():
        async with kis_client_async(kis_bulk_config()) as client:
            return await calendar_sync(client=client, since=since, days=settings.CALENDAR_SYNC_DAYS)

    return asyncio.run(go())


@shared_task(bind=True, name="marketdata.sync_calendar", expires=3600, ignore_result=True)
def sync_calendar(self, force: bool = False) -> dict | None:
    """Daily: store the broker's answer of which days KRX is open (KIS 국내휴장일조회 CTCA0903R)."""
    run = calendar_sync_if_due(force=force)
    return None if run is None else {"run": run.pk, "status": run.status, "stored": run.stored}


def listing_sync_if_due(*, force: bool = False):
    """Refresh the listing from the broker's stock master unless it succeeded today; the run or None. On a day
    KRX is closed the master does not change, so only a forced run (or a first one) goes out then."""
    today = now_kst().date()
    if not force and listing_synced_on(today):
        return None
    if not force and CollectionRun.objects.filter(job="listing").exists():
        if not krx_calendar().is_trading_day(_market_today()):
            return None
    return asyncio.run(listing_sync(as_of=_market_today()))


@shared_task(bind=True, name="marketdata.sync_listing", expires=3600, ignore_result=True)
def sync_listing(self, force: bool = False) -> dict | None:
    """Daily before the session: every listed stock, its market, sector and status flags from the broker's stock
    master (KIS ``*_code.mst``); delisted stocks become inactive."""
    run = listing_sync_if_due(force=force)
    return None if run is None else {"run": run.pk, "status": run.status, "stored": run.stored, "note": run.note}


class ProgressBar:
    """A progress bar in the worker's log, one line per phase and 10 % step, mirrored to Redis for /healthz."""

    WIDTH = 24

    def __init__(self, redis, run_started: float) -> None:
        self.redis = redis
        self.started = run_started
        self._last: tuple[str, int] = ("", -1)

    def state(self, state: str, **fields) -> None:
        import json
        import time

        body = {"state": state, "elapsed_s": round(time.monotonic() - self.started, 1), **fields}
        try:
            self.redis.set(BOOTSTRAP_STATE_KEY, json.dumps(body), ex=86400)
        except Exception:  # progress display only; the fill itself goes on
            logger.warning("start-up fill progress not written to Redis")

    def __call__(self, phase: str, done: int, total: int) -> None:
        self.state("running", phase=phase, done=done, total=total)
        step = 10 * done // total if total else 10
        if (phase, step) == self._last:
            return
        self._last = (phase, step)
        filled = self.WIDTH * done // total if total else self.WIDTH
        bar = "█" * filled + "░" * (self.WIDTH - filled)
        logger.info(f"start-up fill: {phase:<11} ▕{bar}▏ {done}/{total}")


@shared_task(
    bind=True,
    name="marketdata.bootstrap_market_data",
    ignore_result=True,
    soft_time_limit=1800,
    time_limit=BOOTSTRAP_LOCK_TTL - 60,
    max_retries=120,
)
def bootstrap_market_data(self) -> dict | None:
    """At a worker's start: the start-up fill (``bootstrap.market_data_bootstrap``); /healthz reports the
    stack healthy once one has completed on this database. Retried with back-off (2 s doubling to 60 s)
    while the market clock or the broker cannot be reached. One runs at a time (a Redis lock)."""
    import time

    redis = get_redis()
    redis.delete(BOOTSTRAP_QUEUED_KEY)  # from now on a (re)starting worker may enqueue the next fill
    lock = redis.lock(BOOTSTRAP_LOCK_KEY, timeout=BOOTSTRAP_LOCK_TTL, blocking=False)
    if not lock.acquire():
        logger.info("start-up fill already running in another worker; this one is skipped")
        return None
    bar = ProgressBar(redis, time.monotonic())
    error = ""
    run = None
    try:
        bar.state("running", phase="calendar", done=0, total=1)
        try:
            calendar_sync_if_due()
        except Exception as exc:  # the fill does not depend on it; the daily job tries again
            logger.warning("calendar sync at start failed", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})
        try:
            listing_sync_if_due()
        except Exception as exc:  # the universe trades without it; the daily job tries again
            logger.warning("listing refresh at start failed", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})
        calendar, market = _market_now()
        if market is None:
            error = "the market clock is unavailable"
        else:
            codes = universe_codes()
            logger.info(
                "start-up fill started",
                extra={"stocks": len(codes), "trading_date": str(market.trading_date), "session": market.session},
            )

            async def go():
                async with kis_client_async(kis_bulk_config()) as client:
                    return await market_data_bootstrap(
                        client=client, market=market, calendar=calendar, codes=codes, progress=bar
                    )

            run = asyncio.run(go())
            if run.status == CollectionRun.Status.FAILED:
                error = f"every stock failed: {next(iter(run.error_summary.values()), '')}"[:300]
    finally:
        lock.release()
    if error:
        delay = min(BOOTSTRAP_RETRY_MAX, 2 ** (self.request.retries + 1))
        bar.state("retrying", error=error, retry_in_s=delay, attempt=self.request.retries + 1)
        logger.warning("start-up fill not done; retrying", extra={"error": error, "retry_in_s": delay})
        raise self.retry(countdown=delay)
    bar.state("done", run=run.pk, status=run.status, note=run.note)
    logger.info(
        "start-up fill finished",
        extra={"run": run.pk, "status": run.status, "seconds": round(time.monotonic() - bar.started, 1),
               "note": run.note},
    )  # fmt: skip
    return {"run": run.pk, "status": run.status, "stored": run.stored, "failed": run.failed}


def bootstrap_enqueue_once() -> bool:
    """Enqueue the start-up fill unless another worker did within the last minute; True when enqueued."""
    from django.conf import settings

    if not settings.MARKETDATA_BOOTSTRAP:
        return False
    if not get_redis().set(BOOTSTRAP_QUEUED_KEY, "1", nx=True, ex=60):
        return False
    bootstrap_market_data.apply_async(expires=600)
    return True
