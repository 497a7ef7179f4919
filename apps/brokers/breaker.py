"""A circuit breaker shared through Redis by every process using one app key.

States (Redis hash ``<prefix>:cb:<scope>``; times are Redis ``TIME`` in ms, never local clocks):

- ``closed``: calls go through. Each *failed call* (a call that ended in a transient failure after
  its retries: network error, timeout, 5xx) increments ``failures``; any answered call (success or
  a business/auth error: the broker is alive) resets it to 0. ``failures >= threshold`` → ``open``.
- ``open`` until ``open_until``: every call fails fast with :class:`CircuitOpen`.
- ``half_open``: once the cool-down is over, exactly one caller wins ``SET probe NX PX ttl`` and makes
  a single-attempt probe call; everyone else keeps failing fast. The probe's success closes the
  breaker, its failure re-opens it for another cool-down. If the prober dies, its probe key expires
  after ``probe_ttl`` and another caller may probe.

Every transition happens inside one Lua script, so concurrent processes cannot interleave it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from .base import BrokerUnavailable

_BEFORE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'closed' then return {0, 0} end
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if state == 'open' and now < open_until then return {2, open_until - now} end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', tonumber(ARGV[1])) then
  redis.call('HSET', KEYS[1], 'state', 'half_open')
  return {1, 0}
end
local ttl = redis.call('PTTL', KEYS[2])
if ttl < 0 then ttl = 0 end
return {2, ttl}
"""

_AFTER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ok = ARGV[1] == '1'
local probe = ARGV[2] == '1'
if ARGV[1] == 'r' then
  if probe then redis.call('DEL', KEYS[2]) end
  return ''
end
local threshold = tonumber(ARGV[3])
local open_ms = tonumber(ARGV[4])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if ok then
  if probe or state == 'closed' then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0)
    if probe then redis.call('DEL', KEYS[2]) end
    if state ~= 'closed' then return 'closed' end
  end
  return ''
end
if probe then
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', now + open_ms, 'opened_at', now)
  redis.call('HINCRBY', KEYS[1], 'opened', 1)
  redis.call('DEL', KEYS[2])
  return 'reopened'
end
if state ~= 'closed' then return '' end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= threshold then
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', now + open_ms, 'opened_at', now)
  redis.call('HINCRBY', KEYS[1], 'opened', 1)
  return 'opened'
end
return ''
"""


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Permit(enum.Enum):
    """What a caller may do: a normal call (with retries) or the single-attempt probe."""

    NORMAL = "normal"
    PROBE = "probe"


@dataclass(frozen=True, slots=True)
class Rejection:
    """The breaker refused the call; retry in ``retry_after`` seconds at the earliest."""

    retry_after: float


def breaker_key(prefix: str, scope: str) -> str:
    return f"{prefix}:cb:{scope}"


class RedisCircuitBreaker:
    """The shared breaker of one scope (``<env>:<app key hash>``)."""

    def __init__(
        self,
        redis: AsyncRedis,
        *,
        prefix: str,
        scope: str,
        threshold: int = 5,
        open_seconds: float = 60.0,
        probe_ttl: float = 30.0,
    ) -> None:
        if threshold < 1 or open_seconds <= 0 or probe_ttl <= 0:
            raise ValueError("threshold >= 1, open_seconds > 0 and probe_ttl > 0 are required")
        self.key = breaker_key(prefix, scope)
        self.probe_key = self.key + ":probe"
        self.threshold = threshold
        self.open_ms = round(open_seconds * 1000)
        self.probe_ttl_ms = round(probe_ttl * 1000)
        self._before = redis.register_script(_BEFORE)
        self._after = redis.register_script(_AFTER)

    async def before_call(self) -> Permit | Rejection:
        try:
            verdict, wait_ms = await self._before(keys=[self.key, self.probe_key], args=[self.probe_ttl_ms])
        except Exception as exc:  # noqa: BLE001
            raise BrokerUnavailable(f"circuit breaker unavailable: {type(exc).__name__}: {exc}") from exc
        verdict = int(verdict)
        if verdict == 0:
            return Permit.NORMAL
        if verdict == 1:
            return Permit.PROBE
        return Rejection(retry_after=int(wait_ms) / 1000)

    async def after_call(self, *, ok: bool | None, permit: Permit) -> str:
        """Record a call's outcome; returns the transition it caused ("opened", "reopened", "closed" or "").

        ``ok=None`` means "no verdict" (the call never reached the broker): nothing is counted and a
        probe permit is released so that another caller can probe.
        """
        outcome = "r" if ok is None else ("1" if ok else "0")
        result = await self._after(
            keys=[self.key, self.probe_key],
            args=[outcome, "1" if permit is Permit.PROBE else "0", self.threshold, self.open_ms],
        )
        return result.decode() if isinstance(result, bytes) else str(result or "")


def read_breaker(redis: Redis, *, prefix: str, scope: str) -> dict[str, Any]:
    """Current breaker state for display (/healthz, metrics); synchronous, read-only."""
    key = breaker_key(prefix, scope)
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(key)
    pipe.time()
    raw, (seconds, micros) = pipe.execute()
    data = {k.decode(): v.decode() for k, v in raw.items()}
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    state = data.get("state", BreakerState.CLOSED.value)
    open_until = int(data.get("open_until", "0") or 0)
    if state == BreakerState.OPEN.value and now_ms >= open_until:
        state = "half_open_pending"  # cool-down over; the next call becomes the probe
    return {
        "state": state,
        "failures": int(data.get("failures", "0") or 0),
        "opened_total": int(data.get("opened", "0") or 0),
        "open_remaining_s": round(max(0, open_until - now_ms) / 1000, 1) if state == "open" else 0.0,
    }
