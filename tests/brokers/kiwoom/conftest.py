"""Fixtures for the Kiwoom client tests: the sandbox (Kiwoom listeners on free ports, short PINGs, a small
condition page size), fresh Kiwoom key pairs per test (the sandbox keeps tokens and rate buckets per key),
and a config factory with test-friendly timings."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps.brokers.kiwoom.config import KiwoomConfig
from apps.sandbox.config import AppCredential
from apps.sandbox.server import SandboxThread
from tests.brokers.conftest import ADMIN, sandbox_config

KIWOOM_CREDENTIALS = tuple(
    AppCredential(f"kwclient{mode}{i:035d}"[:43], f"kwclientsecret{mode}{i:029d}"[:43], mode)
    for mode in ("real", "mock")
    for i in range(40)
)
_next = {"real": 0, "mock": 0}
#: The shipped rules plus seq "9", which every stock with a print today matches (several result pages).
CONDITIONS = Path(__file__).with_name("conditions.json")
#: The sandbox's Kiwoom limit here, and the client's (10% below, as in production).
SANDBOX_RATE = 20.0
CLIENT_RATE = 18.0


@pytest.fixture(scope="session")
def kbox() -> Iterator[SandboxThread]:
    cfg = sandbox_config(
        speed=120.0,
        kiwoom_app_credentials=KIWOOM_CREDENTIALS,
        kiwoom_rate_limit=SANDBOX_RATE,
        kiwoom_ping_interval=0.5,
        kiwoom_ping_timeout=3.0,
        kiwoom_condition_page_size=1,
        kiwoom_conditions=CONDITIONS,
        kiwoom_daily_rows=20,
        kiwoom_minute_rows=30,
        ws_flush_interval_s=0.05,
    )
    with SandboxThread(cfg) as box:
        yield box


@pytest.fixture
def kiwoom_credential() -> Callable[[str], AppCredential]:
    def take(mode: str = "mock") -> AppCredential:
        pool = [c for c in KIWOOM_CREDENTIALS if c.mode == mode]
        cred = pool[_next[mode] % len(pool)]
        _next[mode] += 1
        return cred

    return take


@pytest.fixture
def kiwoom_config_factory(kbox, redis_prefix) -> Callable[..., KiwoomConfig]:
    def make(cred: AppCredential, **overrides: Any) -> KiwoomConfig:
        values: dict[str, Any] = {
            "rate_limit": CLIENT_RATE,
            "backoff_base": 0.05,
            "backoff_max": 0.5,
            "timeout": 5.0,
            "token_lock_timeout": 30.0,
            "redis_prefix": redis_prefix,
        }
        values.update(overrides)
        return KiwoomConfig.for_sandbox(
            env=cred.mode,
            rest_port=kbox.ports.kiwoom_rest,
            ws_port=kbox.ports.kiwoom_ws,
            app_key=cred.appkey,
            secret_key=cred.appsecret,
            **values,
        )

    return make


@pytest.fixture
def kadmin(kbox) -> Iterator[httpx.Client]:
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{kbox.ports.paper_rest}",
        headers={"X-Sandbox-Admin": ADMIN},
        timeout=10,
        trust_env=False,
    )
    yield client
    client.delete("/sandbox/faults")
    client.close()


def kiwoom_tokens(box: SandboxThread, appkey: str) -> int:
    """Tokens the sandbox issued for ``appkey`` (read on its loop)."""
    auth = box.server.core.kiwoom_auth  # type: ignore[union-attr]
    return box.call(lambda: sum(1 for t in auth._tokens.values() if t.appkey == appkey))


def unique_prefix() -> str:
    return f"hoga:test:kiwoom:{uuid.uuid4().hex[:12]}"
