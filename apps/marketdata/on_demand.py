"""Bars on demand for a listed stock outside the collection universe.

The first time someone opens such a stock (its page or its bars), :func:`stock_bars_ensure` asks the broker for
what the start-up fill gives a universe stock: the daily bars of the last ``DAILY_BACKFILL_DAYS`` trading days up
to the last completed session, the day's base price when the broker has no daily bar for it, and the session's
minute bars so far. Only what is missing is asked for (the same gap logic as the fill), and one fill per stock
runs at a time (a Redis lock; a request that finds it held answers with what is stored).

Then the stock is kept current while someone watches it: every open of its page or bars marks it in
``ON_DEMAND_ZSET`` (code → epoch seconds), and the minute and daily collection jobs add the codes marked within
``ON_DEMAND_KEEP_SECONDS`` to the universe (:func:`collection_codes`).
"""

from __future__ import annotations

import logging
import time as _time
from datetime import date, datetime, time, timedelta

from django.conf import settings

from apps.brokers.base import BrokerError
from apps.brokers.config import ImproperlyConfiguredBroker
from apps.core.krx.calendar import KST, KrxCalendar
from apps.core.redis import get_redis

from .bootstrap import _store_base_price, _without_reference, last_completed_session
from .broker_services import kis_bulk_config, kis_client_sync
from .collection import (
    DAILY_BACKFILL_DAYS,
    MinuteRow,
    _last_daily,
    _stored_minutes,
    completed_minutes,
    universe_codes,
)
from .market_clock import CLOSED, PRE_OPEN, MarketClockUnavailable, MarketNow, market_now
from .models import BarSource
from .selectors import krx_calendar
from .services import daily_bars_upsert, minute_bars_upsert

logger = logging.getLogger(__name__)

ON_DEMAND_ZSET = "hoga:marketdata:on_demand"
FILL_LOCK = "hoga:lock:on_demand:{code}"
FILL_LOCK_TTL = 120  # seconds; longer than a fill of one stock (4-6 calls) takes at the paper key's 2 req/s
#: ``hoga:marketdata:filled:<code>`` holds the session date the stock was last filled for (checked before the DB).
FILLED_KEY = "hoga:marketdata:filled:{code}"
FILLED_TTL = 6 * 3600
USER_FILLS_KEY = "hoga:marketdata:on_demand:user:{user}"  # fills a user caused in the last minute
MINUTE_REFILL_SECONDS = 60  # during a session a stock is filled again (new minutes) at most once a minute


def on_demand_touch(code: str, *, now: float | None = None) -> None:
    """Mark ``code`` as watched now (its page or bars were opened)."""
    get_redis().zadd(ON_DEMAND_ZSET, {code: _time.time() if now is None else now})


def on_demand_codes(*, now: float | None = None, keep: float | None = None) -> list[str]:
    """Codes opened within ``keep`` seconds (``ON_DEMAND_KEEP_SECONDS``), most recent first; older ones are pruned."""
    now = _time.time() if now is None else now
    keep = float(settings.ON_DEMAND_KEEP_SECONDS if keep is None else keep)
    redis = get_redis()
    redis.zremrangebyscore(ON_DEMAND_ZSET, "-inf", f"({now - keep}")
    return [c.decode() if isinstance(c, bytes) else c for c in redis.zrevrange(ON_DEMAND_ZSET, 0, -1)]


def collection_codes() -> list[str]:
    """What the collection jobs collect: the universe by rank, then the stocks opened on demand."""
    codes = universe_codes()
    seen = set(codes)
    return codes + [c for c in on_demand_codes() if c not in seen]


def stock_history_fill(
    *, client, market: MarketNow, calendar: KrxCalendar, code: str, backfill_days: int = DAILY_BACKFILL_DAYS
) -> dict[str, int | str]:
    """Fill one stock's missing daily bars, base price and session minutes (module docstring) with a blocking
    client (``SyncKisClient``: a web request's thread has no event loop of its own to lend); counts stored.
    Broker errors are reported in ``error`` (what could be stored is kept)."""
    target = last_completed_session(market, calendar)
    first_day = calendar.trading_days_back(target, backfill_days)[0]
    stored: dict[str, int | str] = {"daily": 0, "base_price": 0, "minutes": 0, "error": ""}
    errors: list[str] = []
    last = _last_daily([code], BarSource.KIS).get(code)
    if (last or date.min) < target:
        start = max(first_day, last + timedelta(days=1)) if last else first_day
        try:
            stored["daily"] = daily_bars_upsert(
                source=BarSource.KIS, bars=client.daily_bars(code, start, target, adjusted=False)
            )
        except BrokerError as exc:
            errors.append(f"daily: {type(exc).__name__}: {exc}")
    day = market.trading_date
    if day is not None and _without_reference([code], target, day):
        try:
            quote = client.current_price(code)
        except BrokerError as exc:
            errors.append(f"base price: {type(exc).__name__}: {exc}")
        else:
            if quote.base_price > 0:
                stored["base_price"] = _store_base_price(code, day, quote.base_price)
    session = calendar.session(day) if day is not None else None
    if session is not None and market.session != PRE_OPEN:
        now = market.now if market.now.date() == day else datetime.combine(day, time(23, 59), tzinfo=KST)
        expected = completed_minutes(session, now)
        have = _stored_minutes([code], session).get(code, set())
        missing = [m for m in expected if m not in have]
        if missing:
            try:
                bars = client.minute_bars_today(code, since=missing[0].time(), until=expected[-1].time())
            except BrokerError as exc:
                errors.append(f"minutes: {type(exc).__name__}: {exc}")
            else:
                wanted = set(missing)
                rows = [
                    MinuteRow(code, bar.at.astimezone(KST), bar.open, bar.high, bar.low, bar.close, bar.volume)
                    for bar in bars
                    if bar.at.astimezone(KST) in wanted
                ]
                stored["minutes"] = minute_bars_upsert(source=BarSource.KIS, bars=rows) if rows else 0
    stored["error"] = "; ".join(errors)[:300]
    return stored


def stock_bars_ensure(code: str, *, user_id: int | None = None) -> dict[str, int | str] | None:
    """Fill ``code``'s bars unless they were filled for this session already (or another request is filling
    them); the counts stored, or None when nothing was asked. Never raises for broker or clock trouble: the
    caller answers with what is stored. A user who opens more than ``ON_DEMAND_FILLS_PER_MINUTE`` new stocks a
    minute is answered from what is stored (the fills share the broker key's rate limit with everyone)."""
    redis = get_redis()
    calendar = krx_calendar()
    try:
        market = market_now(calendar)
    except MarketClockUnavailable as exc:
        logger.info("bars on demand skipped: market clock unavailable", extra={"code": code, "error": str(exc)})
        return None
    session_day = market.trading_date or market.now.date()
    open_now = market.trading_date is not None and market.session not in (PRE_OPEN, CLOSED)
    # During the session a fill is good for a minute (new minutes); otherwise for the rest of the day.
    marker = f"{session_day.isoformat()}:{int(_time.time() // MINUTE_REFILL_SECONDS) if open_now else 'day'}"
    key = FILLED_KEY.format(code=code)
    current = redis.get(key)
    if current is not None and (current.decode() if isinstance(current, bytes) else current) == marker:
        return None
    if user_id is not None:
        budget = USER_FILLS_KEY.format(user=user_id)
        used = int(redis.incr(budget))
        if used == 1:
            redis.expire(budget, 60)  # the window starts at the user's first fill
        if used > int(settings.ON_DEMAND_FILLS_PER_MINUTE):
            logger.info("bars on demand refused: the user's budget is spent", extra={"code": code, "user": user_id})
            return None
    lock = redis.lock(FILL_LOCK.format(code=code), timeout=FILL_LOCK_TTL, blocking=False)
    if not lock.acquire():
        return None

    try:
        with kis_client_sync(kis_bulk_config()) as client:
            result = stock_history_fill(client=client, market=market, calendar=calendar, code=code)
    except (BrokerError, ImproperlyConfiguredBroker) as exc:  # no token, no keys: the page shows what is stored
        logger.warning("bars on demand failed", extra={"code": code, "error": f"{type(exc).__name__}: {exc}"[:300]})
        return {"daily": 0, "base_price": 0, "minutes": 0, "error": f"{type(exc).__name__}"}
    finally:
        lock.release()
    if not result["error"]:
        redis.set(key, marker, ex=FILLED_TTL)
    logger.info("bars on demand", extra={"code": code, **result})
    return result
