"""The Redis lease against real Redis: exclusive, renewable, taken over after the TTL, fenced by token."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from apps.live.feed.lease import RedisLease, lease_key


@pytest.fixture
def key(redis_client):
    name = lease_key(f"paper:test-{uuid.uuid4().hex}", prefix="hoga:test:feed:lease")
    yield name
    redis_client.delete(name)


def test_timings_are_checked() -> None:
    with pytest.raises(ValueError):
        RedisLease(object(), "k", ttl=3.0, renew_interval=2.0)  # fewer than two renewals per ttl


@pytest.mark.asyncio
async def test_exclusive_and_renewable(aredis, key) -> None:
    a = RedisLease(aredis, key, token="a", ttl=1.0, renew_interval=0.3)
    b = RedisLease(aredis, key, token="b", ttl=1.0, renew_interval=0.3)
    assert await a.acquire() is True
    assert await b.acquire() is False
    assert await a.acquire() is True  # re-entrant for the same token (it renews)
    for _ in range(5):  # renewals keep it alive well past the ttl
        await asyncio.sleep(0.3)
        assert await a.renew() is True
        assert await b.acquire() is False
    assert await b.holder() == "a" and not a.expired_locally()
    assert await a.release() is True
    assert await b.acquire() is True and await a.holder() == "b"


@pytest.mark.asyncio
async def test_takeover_after_ttl_and_fencing(aredis, key) -> None:
    dead = RedisLease(aredis, key, token="dead", ttl=0.6, renew_interval=0.2)
    live = RedisLease(aredis, key, token="live", ttl=0.6, renew_interval=0.2)
    assert await dead.acquire()
    await asyncio.sleep(0.45)
    assert dead.expired_locally()  # no renewal for ttl - renew: the holder must stop now...
    assert await live.acquire() is False  # ...before anyone else can take it
    await asyncio.sleep(0.25)
    assert await live.acquire() is True  # expired: taken over
    # The stale holder can neither extend nor delete the new holder's lease.
    assert await dead.renew() is False
    assert await dead.release() is False
    assert await live.holder() == "live"
    ttl_ms = await aredis.pttl(key)
    assert 0 < ttl_ms <= 600
