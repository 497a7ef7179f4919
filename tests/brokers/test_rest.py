"""The shared REST call loop (apps/brokers/rest.py) behaves the same for both protocols: a scripted transport
answers KIS and Kiwoom alike, and the breaker, the retries and the token renewal are checked through each."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest
from django.conf import settings

from apps.brokers.base import KST, BrokerBusinessError, BrokerRateLimited, CircuitOpen
from apps.brokers.breaker import read_breaker
from apps.brokers.kis.client import AsyncKisClient, SyncKisClient
from apps.brokers.kis.config import KisConfig
from apps.brokers.kiwoom.client import AsyncKiwoomClient
from apps.brokers.kiwoom.config import KiwoomConfig
from apps.brokers.metrics import read_metrics
from apps.brokers.rest import backoff_delay
from apps.brokers.tokens import MemoryTokenStore

KIS_PRICE = "/uapi/domestic-stock/v1/quotations/inquire-price"
KIWOOM_INFO = "/api/dostk/stkinfo"
COMMON = {"backoff_base": 0.01, "backoff_max": 0.02, "rate_limit": 1000.0, "breaker_threshold": 2}


class Script:
    """Answers token requests of both protocols; data paths answer from ``responses`` (the last one repeats)."""

    def __init__(self, responses: list[httpx.Response]) -> None:
        self.responses = responses
        self.calls = 0
        self.tokens = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/tokenP":
            self.tokens += 1
            expires = (dt.datetime.now(KST) + dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
            return httpx.Response(
                200, json={"access_token": f"kis{self.tokens}", "token_type": "Bearer", "expires_in": 86400,
                           "access_token_token_expired": expires},
            )  # fmt: skip
        if request.url.path == "/oauth2/token":
            self.tokens += 1
            expires = (dt.datetime.now(KST) + dt.timedelta(days=1)).strftime("%Y%m%d%H%M%S")
            return httpx.Response(
                200, json={"token": f"kiwoom{self.tokens}", "token_type": "bearer", "expires_dt": expires,
                           "return_code": 0, "return_msg": "ok"},
            )  # fmt: skip
        self.calls += 1
        return self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]


def kis_client(script: Script, redis_prefix: str, **overrides: object) -> AsyncKisClient:
    config = KisConfig(
        env="paper", rest_url="http://kis.test", ws_url="ws://kis.test", app_key="PS" + "k" * 34,
        app_secret="s" * 180, redis_prefix=redis_prefix, **{**COMMON, **overrides},  # type: ignore[arg-type]
    )  # fmt: skip
    return AsyncKisClient(
        config, token_store=MemoryTokenStore(), redis_url=settings.REDIS_URL, transport=httpx.MockTransport(script)
    )


def kiwoom_client(script: Script, redis_prefix: str, **overrides: object) -> AsyncKiwoomClient:
    config = KiwoomConfig(
        env="mock", rest_url="http://kiwoom.test", ws_url="ws://kiwoom.test", app_key="a" * 43, secret_key="b" * 43,
        redis_prefix=redis_prefix, **{**COMMON, **overrides},  # type: ignore[arg-type]
    )  # fmt: skip
    return AsyncKiwoomClient(
        config, token_store=MemoryTokenStore(), redis_url=settings.REDIS_URL, transport=httpx.MockTransport(script)
    )


KIS_RATE_LIMITED = httpx.Response(
    500, json={"rt_cd": "1", "msg_cd": "EGW00201", "msg1": "초당 거래건수를 초과하였습니다."}
)
KIWOOM_RATE_LIMITED = httpx.Response(
    429, json={"return_code": 5, "return_msg": "허용된 요청 개수를 초과하였습니다[1700:]"}
)


async def _quote(client: AsyncKisClient | AsyncKiwoomClient) -> object:
    if isinstance(client, AsyncKisClient):
        return await client.current_price("005930")
    return await client.quote("005930")


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["kis", "kiwoom"])
async def test_rate_limit_retries_running_out_count_against_the_breaker_for_both_protocols(
    protocol, redis_client, redis_prefix
):
    """Both clients retry a rate-limited call ``max_retries`` times, then report a failure to the breaker: two
    such calls (the threshold) open it, and the next call fails fast without reaching the broker."""
    if protocol == "kis":
        script = Script([KIS_RATE_LIMITED])
        client: AsyncKisClient | AsyncKiwoomClient = kis_client(script, redis_prefix, max_retries=1)
    else:
        script = Script([KIWOOM_RATE_LIMITED])
        client = kiwoom_client(script, redis_prefix, max_retries=1)
    try:
        for _ in range(2):
            with pytest.raises(BrokerRateLimited):
                await _quote(client)
        assert script.calls == 4  # two calls, each tried twice
        breaker = read_breaker(redis_client, prefix=redis_prefix, scope=client.config.scope)
        assert breaker["state"] == "open"
        with pytest.raises(CircuitOpen):
            await _quote(client)
        assert script.calls == 4
        counters = read_metrics(redis_client, prefix=redis_prefix, scope=client.config.scope)
        assert counters["retries"] == 2 and counters["breaker_rejected"] == 1
    finally:
        await client.aclose()


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["kis", "kiwoom"])
async def test_business_errors_count_for_the_breaker_and_are_not_retried(protocol, redis_client, redis_prefix):
    if protocol == "kis":
        script = Script([httpx.Response(400, json={"rt_cd": "1", "msg_cd": "OPSQ0001", "msg1": "bad input"})])
        client: AsyncKisClient | AsyncKiwoomClient = kis_client(script, redis_prefix)
    else:
        script = Script([httpx.Response(200, json={"return_code": 2, "return_msg": "입력값 오류[2000:]"})])
        client = kiwoom_client(script, redis_prefix)
    try:
        for _ in range(3):
            with pytest.raises(BrokerBusinessError):
                await _quote(client)
        assert script.calls == 3
        assert read_breaker(redis_client, prefix=redis_prefix, scope=client.config.scope)["state"] == "closed"
    finally:
        await client.aclose()


def test_sync_facade_refuses_a_running_loop_and_closes_once(redis_prefix):
    script = Script([httpx.Response(200, json={})])
    config = KisConfig(
        env="paper", rest_url="http://kis.test", ws_url="ws://kis.test", app_key="PS" + "k" * 34,
        app_secret="s" * 180, redis_prefix=redis_prefix, **COMMON,  # type: ignore[arg-type]
    )  # fmt: skip
    with SyncKisClient(
        config, token_store=MemoryTokenStore(), redis_url=settings.REDIS_URL, transport=httpx.MockTransport(script)
    ) as client:
        assert client.config is config

        async def inside() -> None:
            with pytest.raises(RuntimeError, match="SyncKisClient cannot be used inside a running event loop"):
                client.approval_key()

        asyncio.run(inside())
    client.close()  # a second close is a no-op


def test_backoff_delay_has_equal_jitter_and_a_cap():
    assert backoff_delay(1, base=1.0, cap=8.0, rng=lambda: 0.0) == 0.5
    assert backoff_delay(1, base=1.0, cap=8.0, rng=lambda: 1.0) == 1.0
    assert backoff_delay(3, base=1.0, cap=8.0, rng=lambda: 1.0) == 4.0
    assert backoff_delay(10, base=1.0, cap=8.0, rng=lambda: 1.0) == 8.0
