from django.db.models import QuerySet

from .models import Stock


def stock_list_universe(*, market: str | None = None) -> QuerySet[Stock]:
    qs = Stock.objects.filter(active=True).order_by("rank", "code")
    return qs.filter(market=market) if market else qs


def calendar_overrides() -> dict:
    """Operator overrides of the KRX calendar, keyed by date, for ``KrxCalendar``."""
    from .calendar import Override
    from .models import CalendarOverride

    return {
        row.date: Override(closed=row.closed, open_time=row.open_time, close_time=row.close_time, note=row.note)
        for row in CalendarOverride.objects.all()
    }


BROKER_DAYS_WINDOW = 320  # days before the newest stored answer that are loaded: 90 trading days back fit


def calendar_broker_days() -> dict:
    """The broker's stored answers (``BrokerCalendarDay``), keyed by date: the newest ``BROKER_DAYS_WINDOW`` days
    of them (the sync stores ~90 days ahead of the market's today, which is the replay date with the sandbox)."""
    from django.db.models.expressions import RawSQL

    from .calendar import BrokerDay
    from .models import BrokerCalendarDay

    table = BrokerCalendarDay._meta.db_table
    newest_minus = RawSQL(f"(SELECT max(date) FROM {table}) - %s", [BROKER_DAYS_WINDOW])  # noqa: S611 - our table
    rows = BrokerCalendarDay.objects.filter(date__gte=newest_minus).values_list("date", "is_open")
    return {day: BrokerDay(is_open=is_open) for day, is_open in rows}


def krx_calendar():
    """The KRX calendar with every layer: package, the broker's stored answers, operator overrides."""
    from .calendar import KrxCalendar

    return KrxCalendar(calendar_overrides(), calendar_broker_days())


def calendar_upcoming(*, start, days: int = 60) -> list:
    """Closures and shifted sessions on the weekdays of the ``days`` days from ``start`` (``CalendarNote``s)."""
    from datetime import timedelta

    return krx_calendar().notes_between(start, start + timedelta(days=days))


def calendar_disagreements(*, since=None) -> list:
    """Dates from ``since`` on whose sources (package, stored broker answer, override) disagree."""
    calendar = krx_calendar()
    return [d for d in calendar.disagreements() if since is None or d.day >= since]


def daily_bars_for(*, code: str, date_from, date_to, source: str = "kis") -> list[dict]:
    from .models import DailyBar

    return list(
        DailyBar.objects.filter(stock__code=code, source=source, date__range=(date_from, date_to))
        .order_by("date")
        .values("date", "open", "high", "low", "close", "volume", "value")
    )


def minute_bars_for(*, code: str, start, end, source: str = "kis") -> list[dict]:
    from .models import MinuteBar

    return list(
        MinuteBar.objects.filter(stock__code=code, source=source, ts__gte=start, ts__lte=end)
        .order_by("ts")
        .values("ts", "open", "high", "low", "close", "volume")
    )


def quotes_latest(*, codes: list[str]) -> dict:
    """The latest known quote of each code, never invented: the live snapshot in Redis (``source: "ws"``,
    ``as_of`` the trade time), else the newest stored minute bar (``minute_bar:<bar source>``, ``as_of``
    the bar's minute, KST), else the last daily close (``daily_bar:<source>``, ``as_of`` the date).
    When no bar is stored, the newest base price the broker gave (``ReferencePrice``, ``source:
    "reference:<source>"``, ``as_of`` its trading date): the start-up fill stores one for every stock the
    broker knows that has no daily bar, so no such stock is shown without a price.
    Codes found nowhere are listed in ``missing``. ``codes`` must already be validated.

    Returns ``{"quotes": [...in the order of codes...], "missing": [...], "feed_status": str}``.
    """
    import json

    from apps.core.redis import get_redis

    from .calendar import KST
    from .models import DailyBar, MinuteBar
    from .realtime import keys

    redis = get_redis()
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(keys.QUOTES_HASH, codes)
    pipe.get(keys.FEED_STATUS_KEY)
    stored, status = pipe.execute()
    found: dict[str, dict] = {}
    for code, raw in zip(codes, stored, strict=True):
        if raw:
            snapshot = json.loads(raw)
            found[code] = {**snapshot, "source": "ws", "as_of": snapshot["time"]}

    # Fallbacks, newest first per stock (PostgreSQL DISTINCT ON; on a tie between sources, the first by name).
    fallbacks = (
        (MinuteBar, "ts", "minute_bar", lambda ts: ts.astimezone(KST).isoformat()),
        (DailyBar, "date", "daily_bar", lambda day: day.isoformat()),
    )
    for model, stamp, label, as_of in fallbacks:
        rest = [c for c in codes if c not in found]
        if not rest:
            break
        bars = (
            model.objects.filter(stock__code__in=rest)
            .order_by("stock__code", f"-{stamp}", "source")
            .distinct("stock__code")
            .values("stock__code", stamp, "open", "high", "low", "close", "volume", "source")
        )
        for bar in bars:
            found[bar["stock__code"]] = {
                "code": bar["stock__code"],
                "price": bar["close"],
                "open": bar["open"],
                "high": bar["high"],
                "low": bar["low"],
                "volume": bar["volume"],
                "source": f"{label}:{bar['source']}",
                "as_of": as_of(bar[stamp]),
            }
    rest = [c for c in codes if c not in found]
    if rest:
        from .models import ReferencePrice

        bases = (
            ReferencePrice.objects.filter(stock__code__in=rest)
            .order_by("stock__code", "-trading_date")
            .distinct("stock__code")
            .values("stock__code", "trading_date", "price", "source")
        )
        for base in bases:
            found[base["stock__code"]] = {
                "code": base["stock__code"],
                "price": base["price"],
                "open": None,
                "high": None,
                "low": None,
                "volume": 0,
                "source": f"reference:{base['source']}",
                "as_of": base["trading_date"].isoformat(),
            }
    return {
        "quotes": [found[c] for c in codes if c in found],
        "missing": [c for c in codes if c not in found],
        "feed_status": status.decode() if status else "unknown",
    }
