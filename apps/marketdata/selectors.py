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
        row.date: Override(closed=row.closed, open_time=row.open_time, close_time=row.close_time)
        for row in CalendarOverride.objects.all()
    }


def krx_calendar():
    from .calendar import KrxCalendar

    return KrxCalendar(calendar_overrides())


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
