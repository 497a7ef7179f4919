"""Fixtures for the feed tests: a sandbox broker with a fast replay on free ports, sandbox credentials
unique to this package, an asyncio Redis client, and cleanup of the shared real-time keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from apps.brokers.kis.config import KisConfig
from apps.brokers.kiwoom.config import KiwoomConfig
from apps.live.feed.demand import RECENT_HASH
from apps.live.realtime import keys
from apps.sandbox.config import AppCredential
from apps.sandbox.server import SandboxThread
from tests.brokers.conftest import ADMIN, sandbox_config

#: Credentials only these tests use (the sandbox keeps approval keys and connections per app key).
CREDENTIALS = tuple(
    AppCredential(f"PSFEED{i:030d}"[:36], f"feed-secret-{i}".ljust(180, "z"), "paper") for i in range(20)
)
_next = [0]
#: Kiwoom key pairs only these tests use (mode "mock").
KIWOOM_CREDENTIALS = tuple(
    AppCredential(f"kwfeed{i:037d}"[:43], f"kwfeedsecret{i:031d}"[:43], "mock") for i in range(10)
)
_next_kiwoom = [0]

SHARED_KEYS = (
    keys.QUOTES_HASH,
    keys.BOOKS_HASH,
    keys.FEED_STATUS_KEY,
    keys.FEED_STATUS_DETAIL_KEY,
    keys.VIEWERS_ZSET,
    keys.ORDERS_SET,
    keys.FILL_TICKS_STREAM,
    RECENT_HASH,
)


@pytest.fixture(scope="session")
def feedbox() -> Iterator[SandboxThread]:
    """The sandbox with a 120x replay clock set to 10:00 KST (market open) and short PINGPONGs."""
    cfg = sandbox_config(
        speed=120.0,
        pingpong_interval=1.0,
        pingpong_timeout=10.0,
        ws_flush_interval_s=0.05,
        app_credentials=CREDENTIALS,
        kiwoom_app_credentials=KIWOOM_CREDENTIALS,
        kiwoom_ping_interval=1.0,
        kiwoom_ping_timeout=10.0,
    )
    with SandboxThread(cfg) as box:
        _open_session(box)
        yield box


def _open_session(box: SandboxThread) -> None:
    """Move the replay clock back to 10:00: at 120x the session closes 165 s after 10:00, and this sandbox
    lives for the whole test session."""
    resp = httpx.post(
        f"http://127.0.0.1:{box.ports.paper_rest}/sandbox/clock",
        json={"time": "10:00:00"},
        headers={"X-Sandbox-Admin": ADMIN},
        trust_env=False,
    )
    assert resp.status_code == 200, resp.text


@pytest.fixture
def feed_admin(feedbox: SandboxThread) -> Iterator[httpx.Client]:
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{feedbox.ports.paper_rest}",
        headers={"X-Sandbox-Admin": ADMIN},
        timeout=10,
        trust_env=False,
    )
    yield client
    client.delete("/sandbox/faults")
    client.close()


@pytest.fixture
def feed_credential() -> AppCredential:
    cred = CREDENTIALS[_next[0] % len(CREDENTIALS)]
    _next[0] += 1
    return cred


@pytest.fixture
def feed_config(feedbox: SandboxThread, feed_credential: AppCredential) -> KisConfig:
    _open_session(feedbox)  # every holder test starts in an open session
    return KisConfig.for_sandbox(
        env="paper",
        rest_port=feedbox.ports.paper_rest,
        ws_port=feedbox.ports.paper_ws,
        app_key=feed_credential.appkey,
        app_secret=feed_credential.appsecret,
        rate_limit=18.0,
        redis_prefix=f"hoga:test:feed:{uuid.uuid4().hex[:12]}",
    )


@pytest.fixture
def kiwoom_feed_config(feedbox: SandboxThread) -> KiwoomConfig:
    _open_session(feedbox)
    cred = KIWOOM_CREDENTIALS[_next_kiwoom[0] % len(KIWOOM_CREDENTIALS)]
    _next_kiwoom[0] += 1
    return KiwoomConfig.for_sandbox(
        env="mock",
        rest_port=feedbox.ports.kiwoom_rest,
        ws_port=feedbox.ports.kiwoom_ws,
        app_key=cred.appkey,
        secret_key=cred.appsecret,
        rate_limit=18.0,
        redis_prefix=f"hoga:test:feed:{uuid.uuid4().hex[:12]}",
    )


def sandbox_codes(box: SandboxThread, n: int) -> list[str]:
    return list(box.server.core.market.tapes)[:n]  # type: ignore[union-attr]


def open_sandbox_connections(box: SandboxThread) -> list[int]:
    """Registration count of every open sandbox connection with at least one registration."""
    return box.call(lambda: [len(c.subs) for c in box.server.core.hub.connections if c.subs])  # type: ignore[union-attr]


@pytest.fixture
def shared_keys(redis_client) -> Iterator[None]:
    """The real-time keys are global names: empty them before and after a test (tests own this Redis DB)."""
    redis_client.delete(*SHARED_KEYS)
    yield
    redis_client.delete(*SHARED_KEYS)


@pytest_asyncio.fixture
async def aredis() -> AsyncIterator[object]:
    import redis.asyncio as aioredis
    from django.conf import settings

    client = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
    yield client
    await client.aclose()
