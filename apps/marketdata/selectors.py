from django.db.models import QuerySet

from .models import Stock


def stock_list_universe(*, market: str | None = None) -> QuerySet[Stock]:
    qs = Stock.objects.filter(active=True).order_by("rank", "code")
    return qs.filter(market=market) if market else qs
