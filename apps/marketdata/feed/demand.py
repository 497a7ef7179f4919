"""Which stocks the feed subscribes: demand-driven, prioritised, capped per connection, with a grace period.

Sources, in priority order:

1. codes with open paper orders (``ORDERS_SET``): the fill path needs their trades;
2. codes browsers are watching now (``VIEWERS_ZSET`` members ``<code>|<conn id>`` whose score, the time of
   the last heartbeat in epoch seconds, is younger than ``VIEWER_TTL``), most-watched first;
3. codes wanted by 1 or 2 within the last ``grace`` seconds (the grace period: a page reload or a brief
   disconnect must not cause an unsubscribe/subscribe churn), most recently wanted first;
4. the watchlist (the active universe by rank).

Each stock costs two registrations (trades H0STCNT0 + book H0STASP0), so a connection of ``max_registrations``
(KIS: 41) carries ``max_registrations // 2`` stocks (41 → 20; the odd registration stays unused). With
several app keys, connection ``slot`` of ``slots`` takes the ``slot``-th slice of the ordered list, so every
holder computes the same split from the same shared data.

"Recently wanted" is shared through ``RECENT_HASH`` (code → last time wanted), so the grace period
survives a takeover and every holder agrees on it. The core (:func:`plan`) is pure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..realtime import keys

#: code -> epoch seconds when orders or viewers last wanted it (written by the holders).
RECENT_HASH = "hoga:feed:demand:recent"
#: Registrations per stock: trades + order book.
TRS_PER_STOCK = 2


def stocks_per_connection(max_registrations: int, trs_per_stock: int = TRS_PER_STOCK) -> int:
    """Stocks one connection can carry (rounded down: 41 registrations → 20 stocks)."""
    if max_registrations < trs_per_stock:
        raise ValueError(f"max_registrations {max_registrations} < {trs_per_stock} registrations per stock")
    return max_registrations // trs_per_stock


@dataclasses.dataclass(frozen=True, slots=True)
class Demand:
    """What is wanted at one instant (read from Redis and the universe)."""

    orders: frozenset[str] = frozenset()
    #: code -> number of live viewers (stale ones already excluded)
    viewers: Mapping[str, int] = dataclasses.field(default_factory=dict)
    #: code -> epoch seconds when it was last wanted by orders or viewers
    recent: Mapping[str, float] = dataclasses.field(default_factory=dict)
    #: the active universe, best rank first
    watchlist: Sequence[str] = ()

    @property
    def wanted_now(self) -> set[str]:
        """Codes wanted by orders or viewers at this instant (what refreshes ``recent``)."""
        return {c for c in (*self.orders, *self.viewers) if keys.valid_code(c)}


def ordered_codes(demand: Demand, *, now: float, grace: float) -> list[str]:
    """Every wanted code once, by priority (orders, viewers, in grace, watchlist); invalid codes skipped."""
    ordered: list[str] = []
    seen: set[str] = set()

    def add(codes: Iterable[str]) -> None:
        for code in codes:
            if code not in seen and keys.valid_code(code):
                seen.add(code)
                ordered.append(code)

    add(sorted(demand.orders))
    add(sorted(demand.viewers, key=lambda c: (-demand.viewers[c], c)))
    in_grace = [c for c, at in demand.recent.items() if now - at <= grace]
    add(sorted(in_grace, key=lambda c: (-demand.recent[c], c)))
    add(demand.watchlist)
    return ordered


def plan(demand: Demand, *, now: float, grace: float, per_connection: int, slot: int = 0, slots: int = 1) -> list[str]:
    """The codes connection ``slot`` (of ``slots``) should carry, in priority order (at most ``per_connection``)."""
    if not 0 <= slot < slots or per_connection < 1:
        raise ValueError(f"bad slot {slot}/{slots} or per_connection {per_connection}")
    start = slot * per_connection
    return ordered_codes(demand, now=now, grace=grace)[start : start + per_connection]


def viewer_counts(members: Iterable[bytes | str]) -> dict[str, int]:
    """``<code>|<conn id>`` members → viewers per code (malformed members are ignored)."""
    counts: dict[str, int] = {}
    for member in members:
        text = member.decode() if isinstance(member, bytes) else member
        code, sep, _conn = text.partition("|")
        if sep and keys.valid_code(code):
            counts[code] = counts.get(code, 0) + 1
    return counts


async def read_demand(
    redis: Any, *, now: float, watchlist: Sequence[str], grace: float, viewer_ttl: float = keys.VIEWER_TTL
) -> Demand:
    """Read orders, live viewers and the shared recent map; prune stale viewers; refresh ``RECENT_HASH``.

    Viewers whose last heartbeat is older than ``viewer_ttl`` are removed from ``VIEWERS_ZSET`` (their web
    server died without saying goodbye). Entries of ``RECENT_HASH`` older than ``grace`` are removed.
    """
    cutoff = now - viewer_ttl
    pipe = redis.pipeline(transaction=False)
    pipe.zremrangebyscore(keys.VIEWERS_ZSET, "-inf", f"({cutoff}")
    pipe.zrangebyscore(keys.VIEWERS_ZSET, cutoff, "+inf")
    pipe.smembers(keys.ORDERS_SET)
    pipe.hgetall(RECENT_HASH)
    _pruned, members, orders_raw, recent_raw = await pipe.execute()
    orders = frozenset(m.decode() if isinstance(m, bytes) else m for m in orders_raw)
    recent: dict[str, float] = {}
    for raw_code, raw_at in recent_raw.items():
        code = raw_code.decode() if isinstance(raw_code, bytes) else raw_code
        try:
            recent[code] = float(raw_at)
        except (TypeError, ValueError):
            continue
    demand = Demand(orders=orders, viewers=viewer_counts(members), recent=recent, watchlist=tuple(watchlist))
    wanted = demand.wanted_now
    expired = [c for c, at in recent.items() if now - at > grace and c not in wanted]
    if wanted or expired:
        pipe = redis.pipeline(transaction=False)
        if wanted:
            pipe.hset(RECENT_HASH, mapping={c: repr(now) for c in sorted(wanted)})
        if expired:
            pipe.hdel(RECENT_HASH, *expired)
        await pipe.execute()
    return demand
