"""The cluster-wide guards every broker client uses for one app key: a Redis rate limiter, a Redis circuit
breaker and call metrics, all keyed by the config's ``scope`` under its ``redis_prefix``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .breaker import RedisCircuitBreaker
from .metrics import BrokerMetrics
from .ratelimit import RedisRateLimiter


@dataclass(frozen=True, slots=True)
class BrokerGuards:
    limiter: RedisRateLimiter
    breaker: RedisCircuitBreaker
    metrics: BrokerMetrics


def broker_guards(redis: Any, config: Any) -> BrokerGuards:
    """``config`` is a KisConfig or KiwoomConfig (same field names for these settings)."""
    scope = config.scope
    return BrokerGuards(
        limiter=RedisRateLimiter(
            redis,
            key=f"{config.redis_prefix}:rl:{scope}",
            rate=config.rate_limit,
            burst=config.rate_burst,
            max_wait=config.rate_max_wait,
        ),
        breaker=RedisCircuitBreaker(
            redis,
            prefix=config.redis_prefix,
            scope=scope,
            threshold=config.breaker_threshold,
            open_seconds=config.breaker_open_seconds,
            probe_ttl=config.timeout + 5.0,
        ),
        metrics=BrokerMetrics(redis, prefix=config.redis_prefix, scope=scope),
    )
