"""The Kiwoom REST client against the sandbox over real HTTP: tokens in the database token store,
limiter / breaker / metrics in the real Redis (kiwoom-api.md §A2–§A5)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from django.conf import settings
from django.db import connection

from apps.brokers.base import KST, UnknownSymbol
from apps.brokers.kiwoom.client import AsyncKiwoomClient
from apps.brokers.metrics import read_metrics
from apps.marketdata.broker_services import DatabaseTokenStore, decrypt_token
from apps.marketdata.models import BrokerToken

from .conftest import kiwoom_tokens

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def make_client(config) -> AsyncKiwoomClient:
    return AsyncKiwoomClient(config, token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL)


def metrics(redis_client, config) -> dict:
    return read_metrics(redis_client, prefix=config.redis_prefix, scope=config.scope)


@pytest.fixture
def code(kbox) -> str:
    return next(iter(kbox.server.core.market.tapes))


async def token_row(config) -> BrokerToken:
    def read() -> BrokerToken:
        try:
            return BrokerToken.objects.get(app_key_hash=config.key_hash, env=config.token_env)
        finally:
            connection.close()

    return await asyncio.to_thread(read)


@pytest.mark.asyncio
async def test_quote_and_token_reuse_across_clients(kbox, kiwoom_credential, kiwoom_config_factory, redis_client, code):
    cred = kiwoom_credential("mock")
    config = kiwoom_config_factory(cred)
    async with make_client(config) as first:
        quote = await first.quote(code)
        await first.quote(code)
    async with make_client(config) as second:  # a new process would read the same row
        again = await second.quote(code)
    assert quote.code == code and quote.price > 0 and again.price > 0
    assert quote.low <= quote.price <= quote.high and quote.upper_limit > quote.price > quote.lower_limit > 0
    assert quote.fetched_at.tzinfo is not None
    assert kiwoom_tokens(kbox, cred.appkey) == 1
    row = await token_row(config)
    assert row.env == "paper" and row.issue_count == 1 and row.app_key_hash != config.app_key
    assert cred.appkey not in row.token_encrypted
    assert decrypt_token(row.token_encrypted, key_hash=row.app_key_hash, env=row.env)
    assert row.expires_at > dt.datetime.now(KST) + dt.timedelta(hours=23)
    m = metrics(redis_client, config)
    assert m["calls_by_tr_id"] == {"ka10001": 3} and m["tokens_issued"] == 1 and m["retries"] == 0


@pytest.mark.asyncio
async def test_expired_token_is_reissued_once(
    kbox, kadmin, kiwoom_credential, kiwoom_config_factory, redis_client, code
):
    cred = kiwoom_credential("mock")
    config = kiwoom_config_factory(cred)
    async with make_client(config) as client:
        await client.quote(code)
        resp = await asyncio.to_thread(kadmin.post, "/sandbox/faults", json={"fault": "expire_tokens"})
        assert resp.status_code == 200 and resp.json()["kiwoom_expired"] >= 1
        quote = await client.quote(code)
    assert quote.price > 0
    m = metrics(redis_client, config)
    assert m["errors_by_code"] == {"8005": 1}
    assert m["tokens_refreshed"] == 1 and m["tokens_issued"] == 2 and m["calls_by_tr_id"] == {"ka10001": 3}
    assert (await token_row(config)).issue_count == 2


@pytest.mark.asyncio
async def test_rate_limit_1700_is_retried(kbox, kiwoom_credential, kiwoom_config_factory, redis_client, code):
    """60 calls at once against a sandbox bucket of 20 (20/s): 1700 answers (HTTP 429 here) are retried until served."""
    cred = kiwoom_credential("mock")
    config = kiwoom_config_factory(cred, rate_limit=1000.0, backoff_base=1.0, backoff_max=4.0)
    async with make_client(config) as client:
        quotes = await asyncio.gather(*(client.quote(code) for _ in range(60)))
    assert all(q.price > 0 for q in quotes)
    m = metrics(redis_client, config)
    assert m["errors_by_code"].get("1700", 0) >= 1
    assert m["retries"] == m["errors_by_code"]["1700"]
    assert m["ok"] == 60 and m["breaker"]["state"] == "closed"


@pytest.mark.asyncio
async def test_daily_bars_page_with_cont_yn_and_next_key(
    kbox, kiwoom_credential, kiwoom_config_factory, redis_client, code
):
    config = kiwoom_config_factory(kiwoom_credential("mock"))
    end = kbox.server.core.market.date  # type: ignore[union-attr]
    start = end - dt.timedelta(days=70)
    async with make_client(config) as client:
        bars = await client.daily_bars(code, start, end)
    dates = [b.date for b in bars]
    assert len(bars) > 20 and dates == sorted(set(dates)) and start <= dates[0] and dates[-1] <= end
    assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars)
    assert metrics(redis_client, config)["calls_by_tr_id"]["ka10081"] >= 2  # 20 rows per page here


@pytest.mark.asyncio
async def test_minute_bars(kbox, kiwoom_credential, kiwoom_config_factory, code):
    config = kiwoom_config_factory(kiwoom_credential("mock"))
    async with make_client(config) as client:
        bars = await client.minute_bars(code)
    assert bars and [b.at for b in bars] == sorted({b.at for b in bars})
    assert all(b.at.tzinfo is not None and b.close > 0 for b in bars)


@pytest.mark.asyncio
async def test_unknown_symbol_is_not_retried(kbox, kiwoom_credential, kiwoom_config_factory, redis_client):
    config = kiwoom_config_factory(kiwoom_credential("mock"))
    async with make_client(config) as client:
        with pytest.raises(UnknownSymbol) as err:
            await client.quote("999990")
        with pytest.raises(UnknownSymbol):
            await client.quote("not-a-code")  # refused before any request
    assert err.value.code == "1902"
    m = metrics(redis_client, config)
    assert m["calls_by_tr_id"] == {"ka10001": 1} and m["retries"] == 0 and m["errors_by_code"] == {"1902": 1}
    assert m["breaker"]["failures"] == 0
