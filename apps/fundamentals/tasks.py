"""Fundamentals tasks (queue ``default``). Thin: they ask the market clock, hold a lock, call one service.

Each job checks the market clock first (a closed day does nothing). The flow job runs once per trading day after
the close, the estimate job only while the session is open, the statement job daily in earnings seasons and
weekly otherwise (``statements_due``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta

from celery import shared_task
from django.conf import settings

from apps.core.krx.calendar import now_kst
from apps.core.redis import get_redis
from apps.marketdata.broker_services import kis_bulk_config, kis_client_async
from apps.marketdata.collection import universe_codes
from apps.marketdata.market_clock import MarketClockUnavailable, market_now
from apps.marketdata.models import CollectionRun
from apps.marketdata.selectors import krx_calendar

from .collection import estimates_collect, flows_collect, statements_collect
from .services import flows_validate

logger = logging.getLogger(__name__)

FLOWS_LOCK_KEY = "hoga:lock:collect_flows"
FLOWS_LOCK_TTL = 3600  # seconds; a crashed run's lock expires by itself
ESTIMATES_LOCK_KEY = "hoga:lock:collect_flow_estimates"
ESTIMATES_LOCK_TTL = 900
STATEMENTS_LOCK_KEY = "hoga:lock:collect_statements"
STATEMENTS_LOCK_TTL = 3600
FLOW_VALIDATION_DAYS = 60  # trading days compared by the validation job


def _market():
    calendar = krx_calendar()
    try:
        return calendar, market_now(calendar)
    except MarketClockUnavailable as exc:
        logger.warning("market clock unavailable; collection skipped", extra={"error": str(exc)})
        return calendar, None


def _parse_season(text: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    seasons = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        start, end = part.split(":")
        seasons.append((tuple(int(x) for x in start.split("-")), tuple(int(x) for x in end.split("-"))))
    return seasons  # type: ignore[return-value]


def statements_due(*, today: date, last_success: date | None, seasons: str, in_season_days: int, off_days: int) -> bool:
    """Whether the statements should be refreshed ``today``: every ``in_season_days`` inside an earnings season
    (``MM-DD:MM-DD`` windows, comma-separated), every ``off_days`` outside; always when never collected."""
    if last_success is None:
        return True
    md = (today.month, today.day)
    in_season = any(start <= md <= end for start, end in _parse_season(seasons))
    return today - last_success >= timedelta(days=in_season_days if in_season else off_days)


@shared_task(bind=True, name="fundamentals.collect_flows", ignore_result=True)
def collect_flows(self, codes: list[str] | None = None, force: bool = False) -> dict | None:
    """After the close: the day's investor flows of the universe, backfilling gaps; then the flow validation."""
    calendar, market = _market()
    if market is None or market.trading_date is None:
        return None
    if market.session != "closed" and not force:
        return None
    day = market.trading_date
    if (
        not force
        and CollectionRun.objects.filter(
            job="flows", status=CollectionRun.Status.SUCCEEDED, window_end__date=day
        ).exists()
    ):
        return None  # already collected for this trading day
    lock = get_redis().lock(FLOWS_LOCK_KEY, timeout=FLOWS_LOCK_TTL, blocking=False)
    if not lock.acquire():
        return None
    try:
        run_codes = codes or universe_codes()

        async def go():
            async with kis_client_async(kis_bulk_config()) as client:
                return await flows_collect(client=client, trading_date=day, calendar=calendar, codes=run_codes)

        run = asyncio.run(go())
    finally:
        lock.release()
    validate_flows.delay(day.isoformat())
    return {"run": run.pk, "stored": run.stored, "failed": run.failed, "backfilled": run.backfilled}


@shared_task(bind=True, name="fundamentals.collect_flow_estimates", expires=900, ignore_result=True)
def collect_flow_estimates(self, codes: list[str] | None = None, force: bool = False) -> dict | None:
    """During the session: the broker's intraday 외국인/기관 estimates (HHPTJ04160200), stored as estimates."""
    if not settings.KIS_INVESTOR_ESTIMATES:
        return None
    _calendar, market = _market()
    if market is None or market.trading_date is None or (not market.is_open and not force):
        return None
    lock = get_redis().lock(ESTIMATES_LOCK_KEY, timeout=ESTIMATES_LOCK_TTL, blocking=False)
    if not lock.acquire():
        return None
    try:
        run_codes = codes or universe_codes()
        day = market.trading_date

        async def go():
            async with kis_client_async() as client:
                return await estimates_collect(
                    client=client, trading_date=day, codes=run_codes, path=settings.KIS_INVESTOR_ESTIMATE_PATH or None
                )

        run = asyncio.run(go())
    finally:
        lock.release()
    return {"run": run.pk, "status": run.status, "stored": run.stored}


@shared_task(name="fundamentals.validate_flows", ignore_result=True)
def validate_flows(trading_date: str, days: int = FLOW_VALIDATION_DAYS) -> dict:
    """Compare the stored flows with a second source, or record that there is none."""
    day = date.fromisoformat(trading_date)
    start = krx_calendar().trading_days_back(day, days)[0]
    run = flows_validate(date_from=start, date_to=day)
    return {"run": run.pk, "second_source": run.second_source}


@shared_task(
    bind=True, name="fundamentals.collect_statements", ignore_result=True, soft_time_limit=3300, time_limit=3600
)
def collect_statements(self, codes: list[str] | None = None, force: bool = False) -> dict | None:
    """Financial statements of the universe (12 TR calls a stock, at the bulk client's rate), when due."""
    last = (
        CollectionRun.objects.filter(job="statements", status=CollectionRun.Status.SUCCEEDED)
        .order_by("-started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    today = now_kst().date()
    due = statements_due(
        today=today,
        last_success=last.astimezone(now_kst().tzinfo).date() if last else None,
        seasons=settings.FUNDAMENTALS_STATEMENT_SEASONS,
        in_season_days=settings.FUNDAMENTALS_STATEMENT_SEASON_DAYS,
        off_days=settings.FUNDAMENTALS_STATEMENT_OFF_SEASON_DAYS,
    )
    if not due and not force:
        return None
    lock = get_redis().lock(STATEMENTS_LOCK_KEY, timeout=STATEMENTS_LOCK_TTL, blocking=False)
    if not lock.acquire():
        return None
    try:
        run_codes = codes or universe_codes()

        async def go():
            async with kis_client_async(kis_bulk_config()) as client:
                return await statements_collect(client=client, codes=run_codes)

        run = asyncio.run(go())
    finally:
        lock.release()
    return {"run": run.pk, "stored": run.stored, "failed": run.failed}
