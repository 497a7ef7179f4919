"""A synthetic-market sandbox (no recorded data: six stocks, 260 weekdays of history) replaying a fixed day, and
KIS clients on its paper listener. The sandbox's flows and statements are synthetic and internally consistent
(``apps/sandbox/fundamentals.py``), which the tests use as their oracle."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import httpx
import pytest
from django.conf import settings

ADMIN = "fundamentals-test-admin"
REPLAY_DAY = date(2026, 2, 20)


@pytest.fixture(scope="module")
def sandbox():
    from apps.sandbox.config import LIGHT_TAPE, AppCredential, SandboxConfig
    from apps.sandbox.server import SandboxThread

    cred = AppCredential(f"PSFUND{uuid.uuid4().hex}"[:36].ljust(36, "0"), "f" * 180, "paper")
    cfg = SandboxConfig(
        data_dir=None,
        replay_date=REPLAY_DAY,
        real_rest_port=0,
        paper_rest_port=0,
        real_ws_port=0,
        paper_ws_port=0,
        speed=1.0,
        admin_token=ADMIN,
        app_credentials=(cred,),
        paper_rate_limit=400.0,
        real_rate_limit=400.0,
        token_issue_interval_s=1.0,
        tape_density=LIGHT_TAPE,
    )
    with SandboxThread(cfg) as running:
        running.credential = cred
        yield running


@pytest.fixture(autouse=True)
def _close_worker_thread_connections():
    """The services reach the database from asgiref's worker thread; close that connection afterwards."""
    yield
    from channels.db import database_sync_to_async
    from django.db import connections

    asyncio.run(database_sync_to_async(connections.close_all)())


@pytest.fixture
def admin(sandbox):
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{sandbox.ports.paper_rest}", headers={"X-Sandbox-Admin": ADMIN}, timeout=10
    )
    yield client
    client.delete("/sandbox/faults")
    client.close()


@pytest.fixture
def client_factory(sandbox, redis_client):
    from apps.brokers.kis.client import AsyncKisClient
    from apps.brokers.kis.config import KisConfig
    from apps.marketdata.broker_services import DatabaseTokenStore

    prefix = f"hoga:test:fund:{uuid.uuid4().hex[:10]}"
    config = KisConfig.for_sandbox(
        env="paper",
        rest_port=sandbox.ports.paper_rest,
        app_key=sandbox.credential.appkey,
        app_secret=sandbox.credential.appsecret,
        rate_limit=360.0,
        backoff_base=0.01,
        backoff_max=0.05,
        breaker_open_seconds=0.5,
        token_issue_interval=1.0,
        redis_prefix=prefix,
    )

    def make():
        return AsyncKisClient(config, token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL)

    yield make
    keys = list(redis_client.scan_iter(f"{prefix}:*"))
    if keys:
        redis_client.delete(*keys)


def jump(admin, hhmmss: str) -> None:
    response = admin.post("/sandbox/clock", json={"time": hhmmss, "speed": 0.0001})
    assert response.status_code == 200, response.text


def universe(codes) -> None:
    from apps.marketdata.models import Stock

    for rank, code in enumerate(codes, start=1):
        Stock.objects.update_or_create(code=code, defaults={"name": f"종목{code}", "market": "KOSPI", "rank": rank})


def run(client_factory, fn, **kwargs):
    async def go():
        async with client_factory() as client:
            return await fn(client=client, **kwargs)

    return asyncio.run(go())
