"""Which stocks the feed subscribes: demand-driven, prioritised, capped per connection, with a grace period.

Sources, in priority order:

1. codes with open paper orders (``ORDERS_SET``; per user in ``ORDER_USERS_HASH``) and of running strategies
   (``STRATEGY_CODES_SET``; per owner in ``STRATEGY_USERS_HASH``): the fill path and the strategies need their
   trades. Taken round-robin across users, each user's oldest first, and only up to a fair share per user
   (live slots / users with open orders, at least ``min_per_user``): parking 1-share orders on many stocks
   cannot take the slots another user's order needs;
2. codes browsers are watching now (``VIEWERS_ZSET`` members ``<code>|<user id>|<conn id>`` whose score, the
   time of the last heartbeat in epoch seconds, is younger than ``VIEWER_TTL``): each user counts once per
   stock and carries one vote split over the stocks they watch, so a few sockets subscribing many stocks
   weigh no more than one person; highest weight first;
3. the rest of the users' open-order codes (beyond their fair share);
4. codes wanted by 1-3 within the last ``grace`` seconds (the grace period: a page reload or a brief
   disconnect must not cause an unsubscribe/subscribe churn), most recently wanted first;
5. the watchlist (the active universe by rank).

Codes wanted by orders or viewers that get no live slot are returned by :func:`overflow`; the holder polls
their prices over REST (``.poller``) so they still get quotes and their orders still fill.

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

from apps.core import groups

from ..realtime import keys

#: code -> epoch seconds when orders or viewers last wanted it (written by the holders).
RECENT_HASH = "hoga:feed:demand:recent"
#: ``<user id>|<code>`` -> epoch seconds of that user's oldest open order on the code (the orders services).
ORDER_USERS_HASH = keys.ORDER_USERS_HASH
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
    #: code -> number of users watching it live (stale ones already excluded)
    viewers: Mapping[str, int] = dataclasses.field(default_factory=dict)
    #: code -> Σ over its viewers of 1 / (stocks that viewer watches); empty: rank by ``viewers``
    viewer_weights: Mapping[str, float] = dataclasses.field(default_factory=dict)
    #: user id -> codes of their open orders, oldest first; empty: ``orders`` all rank first (unknown owners)
    order_users: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)
    #: code -> epoch seconds when it was last wanted by orders or viewers
    recent: Mapping[str, float] = dataclasses.field(default_factory=dict)
    #: the active universe, best rank first
    watchlist: Sequence[str] = ()

    @property
    def wanted_now(self) -> set[str]:
        """Codes wanted by orders or viewers at this instant (what refreshes ``recent``)."""
        return {c for c in (*self.orders, *self.viewers) if groups.valid_code(c)}


def fair_order_share(*, capacity: int | None, users: int, min_per_user: int = 2) -> int | None:
    """Open-order stocks per user that rank first: the live slots divided among the users with open orders."""
    if capacity is None or users == 0:
        return None
    return max(min_per_user, capacity // users)


def ordered_codes(
    demand: Demand, *, now: float, grace: float, capacity: int | None = None, min_per_user: int = 2
) -> list[str]:
    """Every wanted code once, by priority (fair-share orders, viewers, other orders, in grace, watchlist);
    invalid codes skipped. ``capacity``: live slots in all (None: no per-user share, every order first)."""
    ordered: list[str] = []
    seen: set[str] = set()

    def add(codes: Iterable[str]) -> None:
        for code in codes:
            if code not in seen and groups.valid_code(code):
                seen.add(code)
                ordered.append(code)

    rank = {code: i for i, code in enumerate(demand.watchlist)}
    per_user = {user: list(codes) for user, codes in sorted(demand.order_users.items()) if codes}
    share = fair_order_share(capacity=capacity, users=len(per_user), min_per_user=min_per_user)
    if per_user:
        longest = max(len(codes) for codes in per_user.values())
        rounds = longest if share is None else min(share, longest)
        for i in range(rounds):  # round-robin: every user's oldest, then every user's second, ...
            add(codes[i] for codes in per_user.values() if i < len(codes))
        owned = {c for codes in per_user.values() for c in codes}
        unowned = sorted(c for c in demand.orders if c not in owned)
    else:
        unowned = sorted(demand.orders)
    if share is None or not per_user:
        add(unowned)  # codes with open orders of unknown owners (the per-user map is rebuilt every sync)
    weight = demand.viewer_weights or {c: float(n) for c, n in demand.viewers.items()}
    add(sorted(demand.viewers, key=lambda c: (-weight.get(c, 0.0), -demand.viewers[c], rank.get(c, 1 << 30), c)))
    for codes in per_user.values():
        add(codes)
    add(unowned)
    in_grace = [c for c, at in demand.recent.items() if now - at <= grace]
    add(sorted(in_grace, key=lambda c: (-demand.recent[c], c)))
    add(demand.watchlist)
    return ordered


def plan(
    demand: Demand,
    *,
    now: float,
    grace: float,
    per_connection: int,
    slot: int = 0,
    slots: int = 1,
    min_per_user: int = 2,
) -> list[str]:
    """The codes connection ``slot`` (of ``slots``) should carry, in priority order (at most ``per_connection``)."""
    if not 0 <= slot < slots or per_connection < 1:
        raise ValueError(f"bad slot {slot}/{slots} or per_connection {per_connection}")
    start = slot * per_connection
    ordered = ordered_codes(demand, now=now, grace=grace, capacity=per_connection * slots, min_per_user=min_per_user)
    return ordered[start : start + per_connection]


def overflow(
    demand: Demand, *, now: float, grace: float, per_connection: int, slots: int = 1, min_per_user: int = 2
) -> list[str]:
    """Codes wanted now (open orders or live viewers) that no connection carries, in priority order: the
    REST poller's list."""
    capacity = per_connection * slots
    ordered = ordered_codes(demand, now=now, grace=grace, capacity=capacity, min_per_user=min_per_user)
    wanted = demand.wanted_now
    return [c for c in ordered[capacity:] if c in wanted]


def _member_parts(member: bytes | str) -> tuple[str, str] | None:
    """``<code>|<user>|<conn>`` (or the older ``<code>|<conn>``) → (code, viewer); None when malformed."""
    text = member.decode() if isinstance(member, bytes) else member
    parts = text.split("|")
    if len(parts) not in (2, 3) or not groups.valid_code(parts[0]) or not all(parts[1:]):
        return None
    return parts[0], parts[1]


def _viewer_pairs(members: Iterable[bytes | str]) -> set[tuple[str, str]]:
    """Members → distinct (code, viewer) pairs (malformed members are ignored)."""
    return {parts for member in members if (parts := _member_parts(member)) is not None}


def viewer_counts(members: Iterable[bytes | str]) -> dict[str, int]:
    """Members → distinct viewers (users) per code (malformed members are ignored)."""
    return _counts(_viewer_pairs(members))


def _counts(pairs: Iterable[tuple[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for code, _viewer in pairs:  # distinct pairs: one per viewer of the code
        counts[code] = counts.get(code, 0) + 1
    return counts


def viewer_weights(members: Iterable[bytes | str]) -> dict[str, float]:
    """Members → per code, Σ over its viewers of 1 / (number of stocks that viewer watches)."""
    return _weights(_viewer_pairs(members))


def _weights(pairs: Iterable[tuple[str, str]]) -> dict[str, float]:
    by_viewer: dict[str, set[str]] = {}
    for code, viewer in pairs:
        by_viewer.setdefault(viewer, set()).add(code)
    weights: dict[str, float] = {}
    for codes in by_viewer.values():
        for code in codes:
            weights[code] = weights.get(code, 0.0) + 1.0 / len(codes)
    return weights


def order_users(fields: Mapping[bytes | str, bytes | str]) -> dict[str, list[str]]:
    """``ORDER_USERS_HASH`` → user id → codes, oldest open order first (malformed fields ignored)."""
    entries: dict[str, list[tuple[float, str]]] = {}
    for raw_key, raw_at in fields.items():
        key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
        user, sep, code = key.partition("|")
        if not sep or not user or not groups.valid_code(code):
            continue
        try:
            at = float(raw_at)
        except (TypeError, ValueError):
            continue
        entries.setdefault(user, []).append((at, code))
    return {user: [code for _at, code in sorted(items)] for user, items in entries.items()}


#: The live viewers' members as ONE newline-joined string: with hundreds of browsers the set holds thousands of
#: members, and parsing them as thousands of replies took a quarter of the feed holder's CPU, in bursts that
#: held up its publishing (bench/fanout.py at 500 clients). Members never contain a newline (validated codes,
#: integer user ids, hex connection ids).
LIVE_VIEWERS_SCRIPT = "return table.concat(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf'), '\\n')"


def _split_members(joined: bytes | str | None) -> list[str]:
    if not joined:
        return []
    return (joined.decode() if isinstance(joined, bytes) else joined).split("\n")


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
    pipe.eval(LIVE_VIEWERS_SCRIPT, 1, keys.VIEWERS_ZSET, repr(cutoff))
    pipe.sunion(keys.ORDERS_SET, keys.STRATEGY_CODES_SET)  # running strategies' stocks rank like orders
    pipe.hgetall(RECENT_HASH)
    pipe.hgetall(ORDER_USERS_HASH)
    pipe.hgetall(keys.STRATEGY_USERS_HASH)  # a running strategy's stocks count in its owner's share
    _pruned, joined, orders_raw, recent_raw, users_raw, strategy_users_raw = await pipe.execute()
    pairs = _viewer_pairs(_split_members(joined))  # parsed once for both figures
    users_raw = {**strategy_users_raw, **users_raw}
    orders = frozenset(m.decode() if isinstance(m, bytes) else m for m in orders_raw)
    recent: dict[str, float] = {}
    for raw_code, raw_at in recent_raw.items():
        code = raw_code.decode() if isinstance(raw_code, bytes) else raw_code
        try:
            recent[code] = float(raw_at)
        except (TypeError, ValueError):
            continue
    demand = Demand(
        orders=orders,
        viewers=_counts(pairs),
        viewer_weights=_weights(pairs),
        order_users={u: tuple(c for c in codes if c in orders) for u, codes in order_users(users_raw).items()},
        recent=recent,
        watchlist=tuple(watchlist),
    )
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
