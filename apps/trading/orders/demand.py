"""Keeping the feed's demand for stocks with open orders current (on commit), and where the fill-tick
stream stood when an order was placed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import transaction

from apps.core.redis import get_redis
from apps.live.realtime import keys
from apps.live.realtime.fillpath import order_demand_add, order_demand_remove, order_demand_replace

from .models import OPEN_STATUSES, Order

logger = logging.getLogger(__name__)


def fill_stream_position() -> str:
    """The id of the newest entry of the fill-tick stream: ticks up to it printed before the order existed.

    Falls back to the current time in ms when Redis cannot be asked (the stream ids are Redis server ms).
    """

    try:
        newest = get_redis().xrevrange(keys.FILL_TICKS_STREAM, count=1)
    except Exception:  # Redis down: placement still works; the engine catches up when Redis is back
        logger.warning("fill stream unavailable at order placement; using the wall clock as its position")
        return fill_stream_position_unknown()
    return fill_stream_position_of(newest)


def fill_stream_position_send(pipe: Any) -> Callable[[Any], str]:
    """Queue ``fill_stream_position``'s read on a Redis pipeline; the function returned reads its reply."""
    pipe.xrevrange(keys.FILL_TICKS_STREAM, count=1)
    return fill_stream_position_of


def fill_stream_position_of(newest: Any) -> str:
    """The id of the first entry of an ``XREVRANGE ... COUNT 1`` reply ("0-0" for an empty stream)."""
    if not newest:
        return "0-0"
    entry_id = newest[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def fill_stream_position_unknown() -> str:
    """The wall clock as a stream position, for when Redis cannot be asked."""
    return f"{int(time.time() * 1000)}-0"


def demand_add_on_commit(code: str, *, user_id: int | None = None) -> None:
    def add() -> None:

        try:
            order_demand_add(get_redis(), code, user_id=user_id, at=time.time())
        except Exception:  # the engine rebuilds ORDERS_SET from the database periodically
            logger.warning("could not add %s to the open-order demand set", code)

    transaction.on_commit(add)


def demand_prune_on_commit(codes: set[str]) -> None:
    """After commit, drop from ORDERS_SET the codes that no longer have an open order."""
    if not codes:
        return

    def prune() -> None:

        still_open: dict[str, set[int]] = {}
        for code, user_id in Order.objects.filter(stock__code__in=codes, status__in=OPEN_STATUSES).values_list(
            "stock__code", "account__user_id"
        ):
            still_open.setdefault(code, set()).add(user_id)
        try:
            redis = get_redis()
            for code in sorted(codes):
                order_demand_remove(redis, code, keep_users=still_open.get(code))
        except Exception:
            logger.warning("could not prune the open-order demand set")

    transaction.on_commit(prune)


def order_demand_sync() -> set[str]:
    """Make ORDERS_SET exactly the codes with open orders (from the database); return them."""
    from django.db.models import Min

    users: dict[tuple[int, str], float] = {}
    rows = (
        Order.objects.filter(status__in=OPEN_STATUSES)
        .values("account__user_id", "stock__code")
        .annotate(first=Min("created_at"))
    )
    for row in rows:
        users[(row["account__user_id"], row["stock__code"])] = row["first"].timestamp()
    codes = {code for _user, code in users}
    order_demand_replace(get_redis(), codes, users=users)
    return codes
