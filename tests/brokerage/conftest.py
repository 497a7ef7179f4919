"""Fixtures of the broker-linked account tests: the sandbox's KIS servers (one per module) and clients of a link."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date

import httpx
import pytest
from django.conf import settings

from apps.brokerage import services
from apps.brokerage.models import BrokerLink
from apps.brokerage.services import broker_link_credentials

ADMIN = "brokerage-test-admin"
REPLAY_DAY = date(2026, 2, 20)


@pytest.fixture(scope="module")
def sandbox():
    from apps.sandbox.config import LIGHT_TAPE, AppCredential, SandboxConfig
    from apps.sandbox.server import SandboxThread

    creds = (
        AppCredential(f"PSBRK{uuid.uuid4().hex}"[:36].ljust(36, "0"), "p" * 180, "paper"),
        AppCredential(f"RLBRK{uuid.uuid4().hex}"[:36].ljust(36, "0"), "r" * 180, "real"),
    )
    cfg = SandboxConfig(
        data_dir=None, replay_date=REPLAY_DAY, real_rest_port=0, paper_rest_port=0, real_ws_port=0, paper_ws_port=0,
        speed=1.0, admin_token=ADMIN, app_credentials=creds, paper_rate_limit=400.0, real_rate_limit=400.0,
        token_issue_interval_s=1.0, tape_density=LIGHT_TAPE,
    )  # fmt: skip
    with SandboxThread(cfg) as running:
        running.creds = {c.mode: c for c in creds}
        r = httpx.post(
            f"http://127.0.0.1:{running.ports.paper_rest}/sandbox/clock",
            json={"time": "10:00:00", "speed": 0.0001},
            headers={"X-Sandbox-Admin": ADMIN},
            timeout=10,
        )
        assert r.status_code == 200, r.text  # fmt: skip
        yield running


@pytest.fixture
def factory(sandbox, redis_client, monkeypatch):
    """Clients of a link: its decrypted keys, the sandbox listener of its environment, no retries."""
    from apps.brokers.kis.client import AsyncKisClient
    from apps.brokers.kis.config import KisConfig
    from apps.marketdata.broker_services import DatabaseTokenStore

    prefix = f"hoga:test:brk:{uuid.uuid4().hex[:10]}"

    def make(link: BrokerLink) -> AsyncKisClient:
        key, secret = broker_link_credentials(link)
        rest = sandbox.ports.paper_rest if link.env == "paper" else sandbox.ports.real_rest
        ws = sandbox.ports.paper_ws if link.env == "paper" else sandbox.ports.real_ws
        config = KisConfig.for_sandbox(
            env=link.env, rest_port=rest, ws_port=ws, app_key=key, app_secret=secret, rate_limit=300.0,
            backoff_base=0.01, backoff_max=0.05, token_issue_interval=1.0, redis_prefix=prefix,
        )  # fmt: skip
        return AsyncKisClient(replace(config, max_retries=0), token_store=DatabaseTokenStore(),
                              redis_url=settings.REDIS_URL)  # fmt: skip

    monkeypatch.setattr(services, "link_client", make)
    yield make
    keys = list(redis_client.scan_iter(f"{prefix}:*"))
    if keys:
        redis_client.delete(*keys)
