import copy

from django.conf import settings
from django.db.models import QuerySet

from apps.core.krx.calendar import BrokerDay, KrxCalendar, Override
from apps.core.process_cache import ProcessCache

from .bars import phase_order
from .models import BrokerCalendarDay, CalendarOverride, ChartPreference, DailyBar, MinuteBar, Stock
from .search import SearchIndex
from .studies import DEFAULT_STUDIES, STUDIES


def stock_list_universe(*, market: str | None = None) -> QuerySet[Stock]:
    """The collection universe (listed and in it), by market-cap rank."""
    qs = Stock.objects.filter(active=True, in_universe=True).order_by("rank", "code")
    return qs.filter(market=market) if market else qs


def calendar_overrides() -> dict:
    """Operator overrides of the KRX calendar, keyed by date, for ``KrxCalendar``."""

    return {
        row.date: Override(closed=row.closed, open_time=row.open_time, close_time=row.close_time, note=row.note)
        for row in CalendarOverride.objects.all()
    }


BROKER_DAYS_WINDOW = 320  # days before the newest stored answer that are loaded: 90 trading days back fit


def calendar_broker_days() -> dict:
    """The broker's stored answers (``BrokerCalendarDay``), keyed by date: the newest ``BROKER_DAYS_WINDOW`` days
    of them (the sync stores ~90 days ahead of the market's today, which is the replay date with the sandbox)."""
    from django.db.models.expressions import RawSQL

    table = BrokerCalendarDay._meta.db_table
    newest_minus = RawSQL(f"(SELECT max(date) FROM {table}) - %s", [BROKER_DAYS_WINDOW])  # noqa: S611 - our table
    rows = BrokerCalendarDay.objects.filter(date__gte=newest_minus).values_list("date", "is_open")
    return {day: BrokerDay(is_open=is_open) for day, is_open in rows}


def _calendar_cache_seconds() -> float:
    return float(settings.CALENDAR_CACHE_SECONDS)


_calendar_cache = ProcessCache("krx_calendar", ttl=_calendar_cache_seconds, max_entries=1)


def krx_calendar() -> KrxCalendar:
    """The KRX calendar with every layer: package, the broker's stored answers, operator overrides.

    Kept per process for CALENDAR_CACHE_SECONDS (every order and page asks for it; building it costs two
    queries): a change saved in this process clears it at once (signals in apps.py, and the broker calendar's
    bulk upsert), one saved elsewhere is seen within that time."""

    return _calendar_cache.get("krx", lambda: KrxCalendar(calendar_overrides(), calendar_broker_days()))


def calendar_cache_clear(*_args, **_kwargs) -> None:
    _calendar_cache.invalidate()


_stocks = ProcessCache("stocks_by_code", ttl=_calendar_cache_seconds, max_entries=5_000)


def stock_by_code(code: str) -> Stock | None:
    """The stock row of ``code`` (a copy), kept per process like the calendar: a stock saved in this process is
    re-read at once (signals in apps.py, and the universe refresh), one saved elsewhere within that time."""
    stock = _stocks.get(code, lambda: Stock.objects.filter(code=code).first())
    return copy.copy(stock) if stock is not None else None


def stocks_cache_clear(*_args, **_kwargs) -> None:
    _stocks.invalidate()
    _search_version.invalidate()  # the next search compares the listing's version at once


SEARCH_VERSION_CHECK = 5.0  # seconds between checks (one aggregate query) that the listing is unchanged
_search_version = ProcessCache("stock_search_version", ttl=SEARCH_VERSION_CHECK, max_entries=1)
_search_indexes = ProcessCache("stock_search_index", ttl=24 * 3600, max_entries=2)


def _listing_version() -> tuple:
    from django.db.models import Count, Max

    row = Stock.objects.filter(active=True).aggregate(n=Count("id"), at=Max("updated_at"))
    return (row["n"], row["at"])


def _search_index_build() -> SearchIndex:
    rows = Stock.objects.filter(active=True).values_list(
        "code", "name", "market", "in_universe", "market_cap", "halted", "administrative", "warning"
    )
    return SearchIndex(rows)


def stock_search_index():
    """The process's :class:`~apps.marketdata.search.SearchIndex` of the listed stocks, rebuilt when the listing
    changed (its version, count and newest change, is checked every ``SEARCH_VERSION_CHECK`` seconds, and at once
    after a change in this process)."""
    version = _search_version.get("listing", _listing_version)
    return _search_indexes.get(version, _search_index_build)


def stock_search(*, query: str, limit: int = 10) -> list:
    """The best listed stocks for ``query`` (code, Hangul name, 초성 or romanised name): ``search.Hit``s."""
    return stock_search_index().search(query, limit=limit)


def calendar_upcoming(*, start, days: int = 60) -> list:
    """Closures and shifted sessions on the weekdays of the ``days`` days from ``start`` (``CalendarNote``s)."""
    from datetime import timedelta

    return krx_calendar().notes_between(start, start + timedelta(days=days))


def calendar_disagreements(*, since=None) -> list:
    """Dates from ``since`` on whose sources (package, stored broker answer, override) disagree."""
    calendar = krx_calendar()
    return [d for d in calendar.disagreements() if since is None or d.day >= since]


def daily_bars_for(*, code: str, date_from, date_to, source: str = "kis") -> list[dict]:

    return list(
        DailyBar.objects.filter(stock__code=code, source=source, date__range=(date_from, date_to))
        .order_by("date")
        .values("date", "open", "high", "low", "close", "volume", "value")
    )


def minute_bars_for(*, code: str, start, end, source: str = "kis", phases=None) -> list[dict]:
    """1-minute bars of ``code`` from ``source`` with their phase (``apps.marketdata.bars``), oldest first;
    ``phases`` limits them (None: every phase)."""
    qs = MinuteBar.objects.filter(stock__code=code, source=source, ts__gte=start, ts__lte=end)
    if phases is not None:
        qs = qs.filter(phase__in=list(phases))
    rows = list(qs.values("ts", "open", "high", "low", "close", "volume", "phase"))
    return sorted(rows, key=lambda row: (row["ts"], phase_order(row["phase"])))


def chart_studies_for_user(*, user) -> list[str]:
    """The studies the user's charts show: the last ones chosen, else the Korean default moving averages."""
    found = ChartPreference.objects.filter(user=user).values_list("studies", flat=True).first()
    return [s for s in found if s in STUDIES] if found is not None else list(DEFAULT_STUDIES)
