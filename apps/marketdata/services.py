"""Market-data services (business rules and transactions around the marketdata models)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import transaction

from .models import Stock
from .universe import ListedStock

logger = logging.getLogger(__name__)


@transaction.atomic
def universe_refresh(*, listed: Sequence[ListedStock]) -> dict[str, int]:
    """Make ``listed`` the active universe: upsert each stock with its rank, deactivate the rest.

    Stocks are never deleted (orders and bars refer to them); dropped ones become inactive.
    """
    if not listed:
        raise ValueError("refusing to replace the universe with an empty list")
    codes = [s.code for s in listed]
    existing = set(Stock.objects.filter(code__in=codes).values_list("code", flat=True))
    for item in listed:
        Stock.objects.update_or_create(
            code=item.code,
            defaults={
                "name": item.name,
                "market": item.market,
                "rank": item.rank,
                "market_cap": item.market_cap,
                "active": True,
            },
        )
    deactivated = Stock.objects.filter(active=True).exclude(code__in=codes).update(active=False, rank=None)
    result = {"created": len(codes) - len(existing), "updated": len(existing), "deactivated": deactivated}
    logger.info("universe refreshed", extra={f"stocks_{key}": value for key, value in result.items()})
    return result
