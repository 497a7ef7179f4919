"""The start-up fill: what trading and charts need before the stack reports healthy.

On a deployment's first start (an empty database) it stores, for every universe stock, the broker's daily
bars of the last ``DAILY_BACKFILL_DAYS`` (90) trading days up to the last completed session, the base price
of any stock the broker has no daily bar for, and the current session's minute bars so far. Later starts
fill only what is missing: stocks whose daily bars reach the last completed session cost no call, and the
minute job asks only for minutes not stored yet.

Calls: one period-chart call (``FHKST03010100``, 100 rows) per stock for the daily history, one minute-chart
call per 30 minutes of the session, one quote call per stock without daily bars. They go through the shared
rate limiter of the key in use (``broker_services.kis_bulk_config``), so KIS's limits are never exceeded.
The broker client is passed in (it never touches the ORM; this module does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta

from channels.db import database_sync_to_async as sync_to_async

from apps.brokers.base import BrokerError
from apps.core.krx.calendar import KST, KrxCalendar

from .collection import DAILY_BACKFILL_DAYS, _last_daily, _run_finish, _run_start, minute_collect
from .market_clock import CLOSED, PRE_OPEN, MarketNow
from .models import BarSource, CollectionRun, ReferencePrice, Stock
from .services import daily_bars_upsert

logger = logging.getLogger(__name__)

JOB = "bootstrap"
DAILY_CONCURRENCY = 8  # in-flight requests; the shared rate limiter does the pacing

Progress = Callable[[str, int, int], None]  # (phase, done, total)


def last_completed_session(market: MarketNow, calendar: KrxCalendar) -> date:
    """The newest trading day whose session has closed at ``market.now`` (its daily bar is final)."""
    today = market.now.astimezone(KST).date()
    if market.trading_date == today and market.session != CLOSED:
        return calendar.previous_trading_day(today)
    if market.trading_date is not None and market.session == CLOSED:
        return market.trading_date
    return calendar.trading_days_back(today, 1)[0]


def bootstrap_ready() -> bool:
    """True once a start-up fill has completed on this database (later fills only close gaps)."""
    return CollectionRun.objects.filter(
        job=JOB, status__in=(CollectionRun.Status.SUCCEEDED, CollectionRun.Status.PARTIAL)
    ).exists()


async def market_data_bootstrap(
    *,
    client,
    market: MarketNow,
    calendar: KrxCalendar,
    codes: Sequence[str],
    progress: Progress | None = None,
    backfill_days: int = DAILY_BACKFILL_DAYS,
) -> CollectionRun:
    """Fill the daily history, the missing base prices and today's minutes (module docstring); returns the
    ``bootstrap`` CollectionRun (``requested`` = stocks, ``failed`` = stocks with an error in any phase)."""
    target = last_completed_session(market, calendar)
    first_day = calendar.trading_days_back(target, backfill_days)[0]
    run = await sync_to_async(_run_start)(
        JOB,
        window_start=datetime.combine(first_day, time.min, tzinfo=KST),
        window_end=market.now,
        requested=len(codes),
    )
    errors: dict[str, str] = {}
    report = progress or (lambda phase, done, total: None)

    # 1. Daily bars up to the last completed session, for the stocks that do not reach it yet.
    last_by_code = await sync_to_async(_last_daily)(codes, BarSource.KIS)
    needed = [c for c in codes if (last_by_code.get(c) or date.min) < target]
    semaphore = asyncio.Semaphore(DAILY_CONCURRENCY)
    done = 0
    report("daily", 0, len(needed))

    async def daily(code: str) -> list:
        nonlocal done
        last = last_by_code.get(code)
        start = max(first_day, last + timedelta(days=1)) if last else first_day
        async with semaphore:
            try:
                return await client.daily_bars(code, start, target, adjusted=False)
            except BrokerError as exc:
                errors[code] = f"daily: {type(exc).__name__}: {exc}"[:300]
                return []
            finally:
                done += 1
                report("daily", done, len(needed))

    results = await asyncio.gather(*(daily(code) for code in needed))
    bars = [bar for group in results for bar in group]
    daily_stored = await sync_to_async(daily_bars_upsert)(source=BarSource.KIS, bars=bars)

    # 2. The day's base price of a stock the broker has no daily bar for (newly listed, or a failed call).
    session_day = market.trading_date
    base_prices = 0
    if session_day is not None:
        missing = await sync_to_async(_without_reference)(codes, target, session_day)
        report("base prices", 0, len(missing))
        for index, code in enumerate(missing, start=1):
            try:
                quote = await client.current_price(code)
            except BrokerError as exc:
                errors.setdefault(code, f"base price: {type(exc).__name__}: {exc}"[:300])
            else:
                if quote.base_price > 0:
                    base_prices += await sync_to_async(_store_base_price)(code, session_day, quote.base_price)
            report("base prices", index, len(missing))

    # 3. The current session's minute bars so far (only the minutes not stored yet).
    minutes_stored = 0
    if session_day is not None and market.session != PRE_OPEN:

        def minute_progress(fraction: float) -> None:
            report("minute bars", round(fraction * len(codes)), len(codes))

        minute_run = await minute_collect(
            client=client, market=market, calendar=calendar, codes=codes, progress=minute_progress
        )
        minutes_stored = minute_run.stored
        for code, error in (minute_run.error_summary or {}).items():
            errors.setdefault(code, f"minutes: {error}"[:300])

    note = (
        f"daily: {len(needed)} of {len(codes)} stocks asked, {daily_stored} bars up to {target}; "
        f"base prices: {base_prices}; minute bars: {minutes_stored}"
    )
    return await sync_to_async(_run_finish)(
        run,
        requested=len(codes),
        stored=daily_stored + minutes_stored + base_prices,
        failed=len(errors),
        backfilled=daily_stored,
        errors=errors,
        note=note,
    )


def _without_reference(codes: Sequence[str], target: date, session_day: date) -> list[str]:
    """Codes with neither a daily bar of ``target`` nor a stored base price for ``session_day``."""
    with_bar = set(
        Stock.objects.filter(code__in=codes, daily_bars__date__gte=target).values_list("code", flat=True).distinct()
    )
    with_base = set(
        ReferencePrice.objects.filter(stock__code__in=codes, trading_date=session_day).values_list(
            "stock__code", flat=True
        )
    )
    return [c for c in codes if c not in with_bar and c not in with_base]


def _store_base_price(code: str, session_day: date, price: int) -> int:
    stock = Stock.objects.get(code=code)
    _, created = ReferencePrice.objects.get_or_create(
        stock=stock,
        trading_date=session_day,
        defaults={"price": price, "source": ReferencePrice.Source.BROKER_QUOTE},
    )
    return int(created)
