"""Process-wide Redis clients for the REDIS_URL (one pool per process)."""

from __future__ import annotations

import functools

import redis
from django.conf import settings


@functools.cache
def get_redis() -> redis.Redis:
    """A synchronous client with short timeouts: callers must never hang on a dead Redis."""
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )
