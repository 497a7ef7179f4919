"""The order-fill path's interface: trade ticks of stocks with open orders, durable and in order.

Producers: the feed holder's ``QuotePublisher`` appends every trade tick of a code in ``ORDERS_SET`` to
the ``FILL_TICKS_STREAM`` Redis stream. The orders services keep ``ORDERS_SET`` current with
``order_demand_add`` / ``order_demand_remove`` (which also makes the feed subscribe those stocks first).

Consumers: a ``FillTickReader`` in a consumer group reads entries at its own pace; an entry is delivered
to one consumer of the group and stays pending until ``ack``; after a crash the group's pending entries
are claimed again (``claim_stale``), so no tick of a stock with open orders is lost, and a tick read
twice carries the same ``stream_id`` (consumers apply fills idempotently on it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from apps.core import groups

from . import keys


@dataclass(frozen=True)
class FillTick:
    stream_id: str
    code: str
    price: int
    volume: int
    cum_volume: int
    at: datetime
    ask: int
    bid: int
    #: ``tick``: a trade print from the live feed; ``poll``: a REST price snapshot of a stock without a live
    #: slot (its ``volume`` is what traded since the previous poll; no price path in between).
    source: str = "tick"
    #: Where the print happened (``apps.core.krx.phases.VENUES``) and the phase it happened in
    #: (``apps.core.krx.phases.PHASES``; a call phase's print is that call's single price).
    venue: str = "KRX"
    phase: str = "continuous"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(stream_id, fields: dict) -> FillTick:
    data = {_text(k): _text(v) for k, v in fields.items()}
    return FillTick(
        stream_id=_text(stream_id),
        code=data["code"],
        price=int(data["price"]),
        volume=int(data["volume"]),
        cum_volume=int(data["cum_volume"]),
        at=datetime.fromisoformat(data["at"]),
        ask=int(data["ask"]),
        bid=int(data["bid"]),
        source=data.get("source") or "tick",
        venue=data.get("venue") or "KRX",
        phase=data.get("phase") or "continuous",
    )


def order_demand_add(redis, code: str, *, user_id: int | None = None, at: float | None = None) -> None:
    """``code`` has an open order (of ``user_id``, placed at ``at`` epoch seconds: the per-user share)."""
    if not groups.valid_code(code):
        raise ValueError(f"not a stock code: {code!r}")
    pipe = redis.pipeline(transaction=False)
    pipe.sadd(keys.ORDERS_SET, code)
    if user_id is not None:
        pipe.hsetnx(keys.ORDER_USERS_HASH, f"{int(user_id)}|{code}", repr(float(at or 0.0)))
    pipe.execute()


def order_demand_remove(redis, code: str, *, keep_users: set[int] | None = None) -> None:
    """``code`` has no open order any more (``keep_users``: it still has, for these users only)."""
    if not keep_users:
        redis.srem(keys.ORDERS_SET, code)
    fields = [f.decode() if isinstance(f, bytes) else f for f in redis.hkeys(keys.ORDER_USERS_HASH)]
    gone = [f for f in fields if f.endswith(f"|{code}") and int(f.partition("|")[0]) not in (keep_users or set())]
    if gone:
        redis.hdel(keys.ORDER_USERS_HASH, *gone)


def order_demand_replace(redis, codes: set[str], *, users: dict[tuple[int, str], float] | None = None) -> None:
    """Make ORDERS_SET exactly ``codes`` and the per-user map exactly ``users`` ((user id, code) -> epoch
    seconds of the oldest open order): reconciliation from the database of open orders."""
    bad = sorted(c for c in codes if not groups.valid_code(c))
    if bad:
        raise ValueError(f"not stock codes: {bad}")
    pipe = redis.pipeline(transaction=True)
    pipe.delete(keys.ORDERS_SET)
    if codes:
        pipe.sadd(keys.ORDERS_SET, *sorted(codes))
    if users is not None:
        pipe.delete(keys.ORDER_USERS_HASH)
        if users:
            pipe.hset(keys.ORDER_USERS_HASH, mapping={f"{u}|{c}": repr(at) for (u, c), at in sorted(users.items())})
    pipe.execute()


class FillTickReader:
    """A consumer in a Redis consumer group on the fill-tick stream (synchronous redis-py client)."""

    def __init__(self, redis, *, group: str, consumer: str, stream: str = keys.FILL_TICKS_STREAM):
        self.redis = redis
        self.group = group
        self.consumer = consumer
        self.stream = stream

    def ensure_group(self, *, start: str = "$") -> None:
        """Create the group (idempotent). ``start="$"``: only ticks appended from now on."""
        import redis as redis_lib

        try:
            self.redis.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except redis_lib.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def skip_to_latest(self) -> None:
        """Move the group to the stream's end: entries appended so far are never delivered to it (entries it
        delivered and nobody acknowledged stay pending)."""
        import redis as redis_lib

        try:
            self.redis.xgroup_setid(self.stream, self.group, id="$")
        except redis_lib.ResponseError as exc:  # no group (or no stream) any more: a flushed Redis
            text = str(exc)
            if "NOGROUP" not in text and "requires the key to exist" not in text:
                raise
            self.ensure_group()

    def read(self, *, count: int = 500, block_ms: int = 1000, ack: Sequence[FillTick] = ()) -> list[FillTick]:
        """New entries for this consumer, oldest first; waits at most ``block_ms``. ``ack``: entries to
        acknowledge first, in the same round trip (a pipeline of ``XACK`` and ``XREADGROUP``)."""
        if ack:
            pipe = self.redis.pipeline(transaction=False)
            pipe.xack(self.stream, self.group, *[t.stream_id for t in ack])
            pipe.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms)
            _acked, replies = pipe.execute()
        else:
            replies = self.redis.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms)
        return [_decode(entry_id, fields) for _stream, entries in replies or [] for entry_id, fields in entries]

    def ack(self, ticks: Sequence[FillTick]) -> int:
        if not ticks:
            return 0
        return int(self.redis.xack(self.stream, self.group, *[t.stream_id for t in ticks]))

    def claim_stale(self, *, min_idle_ms: int = 30_000, count: int = 500) -> list[FillTick]:
        """Take over entries another consumer read but never acknowledged (it crashed)."""
        _next, entries, *_ = self.redis.xautoclaim(self.stream, self.group, self.consumer, min_idle_ms, count=count)
        return [_decode(entry_id, fields) for entry_id, fields in entries if fields]
