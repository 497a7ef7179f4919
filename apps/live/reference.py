"""The day's reference price (기준가) of a stock, from the best source that has it.

1. the stored close of the previous trading day (a ``DailyBar``; KIS preferred on the same date); a close
   older than that is not the day's base (the stack was down meanwhile) and is not used;
2. a base price stored earlier for the day (``ReferencePrice``: where it came from is kept with it);
3. a live tick of the day: ``price - change`` (the broker's change is against the base price);
4. the broker's own base price: KIS inquire-price ``stck_sdpr`` (one call, only for the broker's current
   session).

Sources 3 and 4 are stored as a ``ReferencePrice`` when an order needs them, so later orders of the day and
the fill path (which never calls out) read the same number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.db import IntegrityError, transaction

from apps.brokers.base import BrokerError
from apps.core.krx.calendar import KST
from apps.core.process_cache import ProcessCache
from apps.core.redis import get_redis
from apps.marketdata.broker_services import kis_client_sync, kis_config
from apps.marketdata.models import BarSource, DailyBar, ReferencePrice, Stock
from apps.marketdata.selectors import krx_calendar

from .quotes import quote_snapshot

logger = logging.getLogger(__name__)

BROKER_TIMEOUT = 3.0  # seconds: an order waits this long at most for the broker's base price
#: After the broker gave no base price for a stock, orders for it do not ask again for this long: a flood of
#: orders cannot spend the key's shared rate limit on the same failing question.
BROKER_MISS_SECONDS = 30
BROKER_MISS_KEY = "hoga:reference:miss:{code}:{day}"


@dataclass(frozen=True)
class Reference:
    price: int
    source: str  # daily_close:<bar source> | broker_quote | live_tick
    as_of: str = ""

    @property
    def label(self) -> str:
        return {
            "broker_quote": "the broker's base price (stck_sdpr)",
            "live_tick": "a live tick (price - change)",
        }.get(self.source, f"the previous close ({self.source.partition(':')[2] or 'stored'})")


def _reference_cache_seconds() -> float:
    return float(settings.CALENDAR_CACHE_SECONDS)


#: Found references per (stock, trading date, provisional), kept like the calendar and the stock rows: every order
#: and every fill asks, and the day's base price does not change once known. A bar or reference saved in this
#: process clears it at once (signals in apps.py), one saved elsewhere is seen within CALENDAR_CACHE_SECONDS.
_references: ProcessCache[Reference | None] = ProcessCache(
    "reference_prices", ttl=_reference_cache_seconds, max_entries=20_000
)


def reference_cache_clear(*_args: object, **_kwargs: object) -> None:
    _references.invalidate()


def reference_stored(
    *, stock_id: int, trading_date: date, calendar=None, provisional: bool = False
) -> Reference | None:
    """Sources 1 and 2 (no network). ``calendar`` (a ``KrxCalendar``) decides which day was the previous
    trading day; the selectors' calendar when omitted. ``provisional``: for an order queued for a later
    session, the newest stored close is taken even if the sessions since have not been collected yet (the
    order is checked again against its session's base at that session's first tick). A found reference is
    kept per process (``_references``); a miss is read again next time."""
    return _references.get(
        (stock_id, trading_date, provisional),
        lambda: _reference_stored(stock_id=stock_id, trading_date=trading_date, calendar=calendar,
                                  provisional=provisional),
        keep=lambda found: found is not None,
    )  # fmt: skip


def _reference_stored(
    *, stock_id: int, trading_date: date, calendar=None, provisional: bool = False
) -> Reference | None:
    rows = list(
        DailyBar.objects.filter(stock_id=stock_id, date__lt=trading_date)
        .order_by("-date")
        .values_list("date", "source", "close")[:8]
    )
    if rows:
        if calendar is None and not provisional:
            calendar = krx_calendar()
        newest = rows[0][0]
        if provisional or newest >= calendar.previous_trading_day(trading_date):
            same_day = [r for r in rows if r[0] == newest]
            preferred = [r for r in same_day if r[1] == BarSource.KIS] or sorted(same_day, key=lambda r: r[1])
            return Reference(int(preferred[0][2]), f"daily_close:{preferred[0][1]}", newest.isoformat())
    stored = (
        ReferencePrice.objects.filter(stock_id=stock_id, trading_date=trading_date)
        .values_list("price", "source", "fetched_at")
        .first()
    )
    if stored is not None:
        return Reference(int(stored[0]), stored[1], stored[2].astimezone(KST).isoformat())
    return None


def reference_live(*, code: str, trading_date: date) -> Reference | None:
    """Source 3: the latest live tick of ``code`` in Redis, when it belongs to ``trading_date``."""
    try:
        snapshot = quote_snapshot(code)
    except Exception:  # Redis down: no live source
        logger.warning("live quote unavailable for the reference price of %s", code)
        return None
    if snapshot is None:
        return None
    try:
        at = datetime.fromisoformat(snapshot["time"]).astimezone(KST)
        price, change = int(snapshot["price"]), int(snapshot["change"])
    except (KeyError, TypeError, ValueError):
        return None
    if at.date() != trading_date or price - change <= 0:
        return None
    return Reference(price - change, ReferencePrice.Source.LIVE_TICK, at.isoformat())


def reference_from_broker(*, code: str, trading_date: date) -> Reference | None:
    """Source 4: KIS inquire-price ``stck_sdpr`` of the broker's current session (one attempt, a short
    timeout); None when the broker does not know the stock or cannot be reached, and then for
    ``BROKER_MISS_SECONDS`` without asking again."""

    miss_key = BROKER_MISS_KEY.format(code=code, day=trading_date.isoformat())
    try:
        if get_redis().exists(miss_key):
            return None
    except Exception:  # Redis down: ask the broker (its limiter needs Redis too and fails fast then)
        logger.warning("reference price miss cache unavailable")
    found = None
    try:
        config = kis_config().with_overrides(max_retries=0, timeout=BROKER_TIMEOUT, rate_max_wait=BROKER_TIMEOUT)
        with kis_client_sync(config) as client:
            quote = client.current_price(code)
        if quote.base_price > 0:
            found = Reference(quote.base_price, ReferencePrice.Source.BROKER_QUOTE, quote.fetched_at.isoformat())
    except BrokerError as exc:
        logger.warning("broker base price unavailable", extra={"code": code, "error": str(exc)[:200]})
    if found is None:
        try:
            get_redis().set(miss_key, "1", ex=BROKER_MISS_SECONDS)
        except Exception:
            logger.warning("reference price miss not cached")
    return found


def reference_price_store(*, stock: Stock, trading_date: date, reference: Reference) -> Reference:
    """Keep ``reference`` as the day's base price of ``stock``; the first one stored for the day wins (two
    orders racing read the same number afterwards)."""
    try:
        with transaction.atomic():
            ReferencePrice.objects.create(
                stock=stock, trading_date=trading_date, price=reference.price, source=reference.source
            )
    except IntegrityError:
        stored = reference_stored(stock_id=stock.pk, trading_date=trading_date)
        if stored is not None:
            return stored
    logger.info(
        "reference price stored",
        extra={"code": stock.code, "trading_date": trading_date.isoformat(), "price": reference.price,
               "source": reference.source},
    )  # fmt: skip
    return reference


def reference_price_resolve(
    *,
    stock: Stock,
    trading_date: date,
    calendar=None,
    broker: bool = True,
    store: bool = True,
    provisional: bool = False,
) -> Reference | None:
    """The day's base price from the first source that has it (module docstring); None when none has.
    ``provisional`` as in ``reference_stored`` (a queued order for a later session)."""
    found = reference_stored(stock_id=stock.pk, trading_date=trading_date, calendar=calendar, provisional=provisional)
    if found is not None:
        return found
    found = reference_live(code=stock.code, trading_date=trading_date)
    if found is None and broker:
        found = reference_from_broker(code=stock.code, trading_date=trading_date)
    if found is None:
        return None
    return reference_price_store(stock=stock, trading_date=trading_date, reference=found) if store else found
