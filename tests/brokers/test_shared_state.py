"""The Redis limiter and circuit breaker, against the real Redis (unique key prefixes per test)."""

from __future__ import annotations

import asyncio
import time

import pytest
import pytest_asyncio
from django.conf import settings
from redis.asyncio import Redis as AsyncRedis

from apps.brokers.base import LimiterTimeout
from apps.brokers.breaker import Permit, RedisCircuitBreaker, Rejection, read_breaker
from apps.brokers.metrics import BrokerMetrics, read_metrics
from apps.brokers.ratelimit import RedisRateLimiter


@pytest_asyncio.fixture
async def aredis():
    client = AsyncRedis.from_url(settings.REDIS_URL)
    yield client
    await client.aclose()


@pytest.mark.asyncio
async def test_limiter_spaces_reservations_by_the_interval(aredis, redis_prefix):
    limiter = RedisRateLimiter(aredis, key=f"{redis_prefix}:rl", rate=50.0, burst=1)
    waits = [await limiter.reserve() for _ in range(10)]
    # Reservations made back to back: the k-th waits about k * 20 ms (minus the time spent reserving).
    for k, wait in enumerate(waits):
        assert k * 0.020 - 0.015 <= wait <= k * 0.020 + 0.001


@pytest.mark.asyncio
async def test_limiter_burst_allows_back_to_back_calls(aredis, redis_prefix):
    limiter = RedisRateLimiter(aredis, key=f"{redis_prefix}:rl", rate=10.0, burst=3)
    waits = [await limiter.reserve() for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0.05 < waits[3] <= 0.1


@pytest.mark.asyncio
async def test_limiter_shared_by_independent_clients(aredis, redis_prefix):
    """Two limiters on two connections (as in two processes) share one schedule."""
    other = AsyncRedis.from_url(settings.REDIS_URL)
    try:
        a = RedisRateLimiter(aredis, key=f"{redis_prefix}:rl", rate=20.0)
        b = RedisRateLimiter(other, key=f"{redis_prefix}:rl", rate=20.0)
        started = time.perf_counter()
        await asyncio.gather(*(lim.acquire() for lim in [a, b] * 5))
        elapsed = time.perf_counter() - started
        assert 9 * 0.05 - 0.02 <= elapsed <= 9 * 0.05 + 0.1
    finally:
        await other.aclose()


@pytest.mark.asyncio
async def test_limiter_wait_is_bounded(aredis, redis_prefix):
    limiter = RedisRateLimiter(aredis, key=f"{redis_prefix}:rl", rate=2.0, max_wait=1.0)
    waits = [await limiter.reserve() for _ in range(3)]
    assert waits[2] == pytest.approx(1.0, abs=0.02)
    with pytest.raises(LimiterTimeout):
        await limiter.reserve()


@pytest.mark.asyncio
async def test_breaker_opens_after_threshold_then_single_probe(aredis, redis_client, redis_prefix):
    breaker = RedisCircuitBreaker(aredis, prefix=redis_prefix, scope="paper:k", threshold=3, open_seconds=0.3)
    for _ in range(2):
        assert await breaker.before_call() is Permit.NORMAL
        assert await breaker.after_call(ok=False, permit=Permit.NORMAL) == ""
    # A success resets the count of consecutive failures.
    assert await breaker.after_call(ok=True, permit=Permit.NORMAL) == ""
    transitions = [await breaker.after_call(ok=False, permit=Permit.NORMAL) for _ in range(3)]
    assert transitions == ["", "", "opened"]
    rejection = await breaker.before_call()
    assert isinstance(rejection, Rejection) and 0 < rejection.retry_after <= 0.3
    assert read_breaker(redis_client, prefix=redis_prefix, scope="paper:k")["state"] == "open"

    await asyncio.sleep(0.35)
    assert read_breaker(redis_client, prefix=redis_prefix, scope="paper:k")["state"] == "half_open_pending"
    first, second = await asyncio.gather(breaker.before_call(), breaker.before_call())
    assert {type(first), type(second)} == {Permit, Rejection}
    # The probe fails: open again for another cool-down.
    assert await breaker.after_call(ok=False, permit=Permit.PROBE) == "reopened"
    assert isinstance(await breaker.before_call(), Rejection)
    await asyncio.sleep(0.35)
    assert await breaker.before_call() is Permit.PROBE
    assert await breaker.after_call(ok=True, permit=Permit.PROBE) == "closed"
    state = read_breaker(redis_client, prefix=redis_prefix, scope="paper:k")
    assert state["state"] == "closed" and state["failures"] == 0 and state["opened_total"] == 2


@pytest.mark.asyncio
async def test_breaker_released_probe_lets_another_caller_probe(aredis, redis_prefix):
    breaker = RedisCircuitBreaker(aredis, prefix=redis_prefix, scope="real:k", threshold=1, open_seconds=0.1)
    assert await breaker.after_call(ok=False, permit=Permit.NORMAL) == "opened"
    await asyncio.sleep(0.15)
    assert await breaker.before_call() is Permit.PROBE
    assert isinstance(await breaker.before_call(), Rejection)
    await breaker.after_call(ok=None, permit=Permit.PROBE)
    assert await breaker.before_call() is Permit.PROBE


@pytest.mark.asyncio
async def test_breaker_ignores_late_failures_while_open(aredis, redis_prefix):
    breaker = RedisCircuitBreaker(aredis, prefix=redis_prefix, scope="real:k", threshold=1, open_seconds=5)
    assert await breaker.after_call(ok=False, permit=Permit.NORMAL) == "opened"
    assert await breaker.after_call(ok=False, permit=Permit.NORMAL) == ""
    assert await breaker.after_call(ok=True, permit=Permit.NORMAL) == ""  # only a probe may close it
    assert isinstance(await breaker.before_call(), Rejection)


@pytest.mark.asyncio
async def test_metrics_counters(aredis, redis_client, redis_prefix):
    metrics = BrokerMetrics(aredis, prefix=redis_prefix, scope="paper:k")
    await metrics.incr({"calls": 2, "calls:FHKST01010100": 2, "errors": 1, "errors:EGW00201": 1, "latency_ms": 30})
    data = read_metrics(redis_client, prefix=redis_prefix, scope="paper:k")
    assert data["calls"] == 2 and data["errors"] == 1
    assert data["calls_by_tr_id"] == {"FHKST01010100": 2}
    assert data["errors_by_code"] == {"EGW00201": 1}
    assert data["mean_latency_ms"] == 15.0
    assert data["breaker"]["state"] == "closed"


@pytest.mark.django_db
def test_metrics_api_is_staff_only(api_client, user, redis_client, settings):
    settings.MARKET_BROKER, settings.KIS_ENV, settings.KIS_APP_KEY = "sandbox", "paper", ""
    assert api_client.get("/api/marketdata/broker/metrics").status_code == 403
    user.is_staff = True
    user.save()
    body = api_client.get("/api/marketdata/broker/metrics").json()
    assert body["env"] == "paper" and len(body["key_id"]) == 12
    assert {"calls", "errors_by_code", "retries", "limiter_waits", "breaker"} <= set(body)
    assert body["breaker"]["state"] in ("closed", "open", "half_open", "half_open_pending")


@pytest.mark.django_db
def test_token_encryption_round_trip_and_binding():
    from apps.marketdata.broker_services import decrypt_token, encrypt_token

    blob = encrypt_token("eyJ.secret.token", key_hash="a" * 64, env="paper")
    assert "secret" not in blob and blob.startswith("v1:")
    assert decrypt_token(blob, key_hash="a" * 64, env="paper") == "eyJ.secret.token"
    assert decrypt_token(blob, key_hash="b" * 64, env="paper") is None  # bound to its row
    assert encrypt_token("x", key_hash="a" * 64, env="paper") != encrypt_token("x", key_hash="a" * 64, env="paper")
