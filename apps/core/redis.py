"""Process-wide Redis clients for the REDIS_URL (one pool per process)."""

from __future__ import annotations

import functools
import weakref

import redis
from django.conf import settings


@functools.cache
def get_redis() -> redis.Redis:
    """A synchronous client with short timeouts: callers must never hang on a dead Redis."""
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )


_async_by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
ASYNC_POOL_SIZE = 50  # connections of one event loop's client
ASYNC_POOL_TIMEOUT = 5.0  # seconds a caller waits for a free connection before an error


def async_redis():
    """The asyncio Redis client of the running event loop (one pool per loop: pools are loop-bound)."""
    import asyncio

    import redis.asyncio as aioredis

    loop = asyncio.get_running_loop()
    client = _async_by_loop.get(loop)
    if client is None:
        # A blocking pool: a burst of callers (hundreds of browsers connecting at once) waits up to
        # ASYNC_POOL_TIMEOUT s for one of ASYNC_POOL_SIZE connections instead of failing "Too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=ASYNC_POOL_SIZE,
            timeout=ASYNC_POOL_TIMEOUT,
            socket_connect_timeout=2,
            socket_timeout=5,
        )
        client = aioredis.Redis(connection_pool=pool)
        _async_by_loop[loop] = client
    return client
