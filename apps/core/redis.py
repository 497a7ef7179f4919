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


def async_redis():
    """The asyncio Redis client of the running event loop (one pool per loop: pools are loop-bound)."""
    import asyncio

    import redis.asyncio as aioredis

    loop = asyncio.get_running_loop()
    client = _async_by_loop.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
        _async_by_loop[loop] = client
    return client
