"""Counters per app key, in one Redis hash per scope (``<prefix>:m:<scope>``), shared by all processes.

Fields: ``calls`` (HTTP requests sent), ``calls:<tr_id>``, ``ok``, ``errors``, ``errors:<code>`` (the
broker's msg_cd, ``http_<status>`` or the error class), ``retries``, ``limiter_waits`` (requests that
had to wait for a slot), ``limiter_wait_ms`` (total wait), ``latency_ms`` (sum of request latencies),
``tokens_issued``, ``tokens_refreshed``, ``breaker_rejected``, ``breaker_opened``.

Counting never breaks a call: a Redis error while counting is logged at DEBUG and ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from .breaker import read_breaker

logger = logging.getLogger(__name__)


def metrics_key(prefix: str, scope: str) -> str:
    return f"{prefix}:m:{scope}"


class BrokerMetrics:
    """Asynchronous counter writer for one scope."""

    def __init__(self, redis: AsyncRedis, *, prefix: str, scope: str) -> None:
        self._redis = redis
        self.key = metrics_key(prefix, scope)

    async def incr(self, counts: dict[str, int]) -> None:
        """Add each value to its counter in one round trip."""
        if not counts:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            for name, value in counts.items():
                pipe.hincrby(self.key, name, int(value))
            await pipe.execute()
        except Exception as exc:  # noqa: BLE001
            logger.debug("broker metrics not recorded", extra={"error": type(exc).__name__})


def read_metrics(redis: Redis, *, prefix: str, scope: str) -> dict[str, Any]:
    """Counters and breaker state of one scope, for the metrics API (synchronous, read-only)."""
    raw = redis.hgetall(metrics_key(prefix, scope))
    counters = {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in sorted(raw.items())}
    by_tr = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("calls:")}
    errors = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("errors:")}
    plain = {k: v for k, v in counters.items() if ":" not in k}
    calls = plain.get("calls", 0)
    return {
        **{
            name: plain.get(name, 0)
            for name in (
                "calls",
                "ok",
                "errors",
                "retries",
                "limiter_waits",
                "limiter_wait_ms",
                "tokens_issued",
                "tokens_refreshed",
                "breaker_rejected",
                "breaker_opened",
            )
        },
        "mean_latency_ms": round(plain.get("latency_ms", 0) / calls, 1) if calls else None,
        "calls_by_tr_id": by_tr,
        "errors_by_code": errors,
        "breaker": read_breaker(redis, prefix=prefix, scope=scope),
    }
