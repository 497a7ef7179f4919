"""A cluster-wide rate limiter: GCRA with reservations, one Lua script, Redis server time.

Algorithm (Generic Cell Rate Algorithm, "virtual scheduling"): Redis keeps one number per scope, the
theoretical arrival time ``tat`` (microseconds, Redis ``TIME``). A caller atomically reserves the
next slot:

    send_at = max(now, tat - tau)          tau = (burst - 1) * T,  T = 1 / rate
    tat'    = max(tat, now) + T

and then sleeps ``send_at - now`` locally before sending. Invariants:

- Over any interval of length L, at most ``burst + L / T`` reservations have send times inside it,
  whichever process or machine made them: the schedule lives in one Redis key and the only clock
  read is Redis ``TIME`` (local clocks of the callers are never compared, only local sleep durations).
- Reservations are first-come first-served; nobody spins or polls.
- A reservation that would wait longer than ``max_wait`` is not made (the caller gets
  :class:`LimiterTimeout`), so waits are bounded and the queue cannot grow without limit.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from redis.asyncio import Redis as AsyncRedis

from .base import BrokerUnavailable, LimiterTimeout

logger = logging.getLogger(__name__)

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = (tonumber(ARGV[2]) - 1) * interval
local max_wait = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tau - now
if wait < 0 then wait = 0 end
if wait > max_wait then return {-1, wait} end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1000)
return {0, wait}
"""


# The wait a new reservation would get now, without making it (microseconds).
_PEEK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tau = (tonumber(ARGV[2]) - 1) * tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tau - now
if wait < 0 then wait = 0 end
return wait
"""


@dataclass(frozen=True, slots=True)
class Reservation:
    """The outcome of one acquire: how long the caller slept before its slot (seconds)."""

    waited: float


class RedisRateLimiter:
    """Shared limiter for one scope (``<env>:<app key hash>``) at ``rate`` calls per second."""

    def __init__(
        self,
        redis: AsyncRedis,
        *,
        key: str,
        rate: float,
        burst: int = 1,
        max_wait: float = 30.0,
    ) -> None:
        if rate <= 0 or burst < 1 or max_wait <= 0:
            raise ValueError("rate > 0, burst >= 1 and max_wait > 0 are required")
        self._redis = redis
        self.key = key
        self.rate = rate
        self.burst = burst
        self.max_wait = max_wait
        self._interval_us = max(1, round(1_000_000 / rate))
        self._script = redis.register_script(_RESERVE)
        self._peek = redis.register_script(_PEEK)

    async def idle(self) -> bool:
        """True when a call made now would not wait: the budget the other callers left free right now.
        Reserves nothing (the REST poller asks this before each call, so it never delays collection)."""
        try:
            wait_us = await self._peek(keys=[self.key], args=[self._interval_us, self.burst])
        except Exception as exc:  # noqa: BLE001
            raise BrokerUnavailable(f"rate limiter unavailable: {type(exc).__name__}: {exc}") from exc
        return int(wait_us) == 0

    async def reserve(self) -> float:
        """Reserve the next slot; returns the seconds to wait before sending (no sleeping here)."""
        try:
            status, wait_us = await self._script(
                keys=[self.key], args=[self._interval_us, self.burst, round(self.max_wait * 1_000_000)]
            )
        except Exception as exc:  # noqa: BLE001 - no shared limiter means no safe way to call the broker
            raise BrokerUnavailable(f"rate limiter unavailable: {type(exc).__name__}: {exc}") from exc
        if int(status) != 0:
            raise LimiterTimeout(
                f"rate limiter queue is {int(wait_us) / 1e6:.1f}s long (max wait {self.max_wait:.1f}s)",
                kind="limiter_timeout",
            )
        return int(wait_us) / 1_000_000

    async def acquire(self) -> Reservation:
        """Reserve a slot and sleep until it (bounded by ``max_wait``)."""
        wait = await self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)
        return Reservation(waited=wait)
