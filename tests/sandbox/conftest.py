"""Fixtures for the sandbox broker tests: real servers on free ports, no database."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from apps.sandbox.config import LIGHT_TAPE, AppCredential, SandboxConfig
from apps.sandbox.replay import ReplayMarket, build_market
from apps.sandbox.server import SandboxThread

ADMIN = "test-admin-token"
_EXTRA = tuple(
    AppCredential(f"PSTEST{mode.upper():<5}{i:025d}"[:36], f"secret-{mode}-{i}".ljust(180, "x"), mode)
    for mode in ("real", "paper")
    for i in range(100)
)
_counters = {"real": itertools.count(), "paper": itertools.count()}
_markets: dict[tuple[str, str], ReplayMarket] = {}


def recorded_data_dir() -> Path | None:
    """The configured data dir if it holds the recorded KRX files, else None."""
    from django.conf import settings

    raw = getattr(settings, "HOGA_DATA_DIR", "") or ""
    path = Path(raw) if raw else None
    if path is None or not (path / "daily/krx_marcap").is_dir():
        return None
    return path


def requires_data() -> Path:
    path = recorded_data_dir()
    if path is None:
        pytest.skip("HOGA_DATA_DIR with the recorded KRX data is not available")
    return path


def base_config(**overrides: object) -> SandboxConfig:
    cfg = SandboxConfig(
        data_dir=recorded_data_dir(),
        real_rest_port=0,
        paper_rest_port=0,
        real_ws_port=0,
        paper_ws_port=0,
        speed=60.0,
        admin_token=ADMIN,
        app_credentials=_EXTRA,
        pingpong_interval=0.2,
        pingpong_timeout=1.0,
        token_issue_interval_s=60.0,
        ws_flush_interval_s=0.05,
        tape_density=LIGHT_TAPE,
    )
    return replace(cfg, **overrides)  # type: ignore[arg-type]


def shared_market(cfg: SandboxConfig) -> ReplayMarket:
    """Markets are pure functions of the config; build each once per test session."""
    key = (str(cfg.data_dir), str(cfg.replay_date), str(cfg.tape_density))
    if key not in _markets:
        _markets[key] = build_market(cfg)
    return _markets[key]


def fresh_credential(mode: str) -> AppCredential:
    """An extra credential no other test has used (token and rate state are per app key)."""
    pool = [c for c in _EXTRA if c.mode == mode]
    return pool[next(_counters[mode]) % len(pool)]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxThread]:
    cfg = base_config()
    with SandboxThread(cfg, shared_market(cfg)) as running:
        yield running


@pytest.fixture()
def cred_factory() -> Callable[[str], AppCredential]:
    return fresh_credential


@pytest.fixture()
def admin(sandbox: SandboxThread) -> Iterator[httpx.Client]:
    """Admin client on the real REST listener; clears faults after the test."""
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{sandbox.ports.real_rest}", headers={"X-Sandbox-Admin": ADMIN}, timeout=10
    )
    yield client
    client.delete("/sandbox/faults")
    client.close()


def rest_url(sandbox: SandboxThread, mode: str) -> str:
    return f"http://127.0.0.1:{sandbox.ports.real_rest if mode == 'real' else sandbox.ports.paper_rest}"


def get_token(client: httpx.Client, cred: AppCredential) -> str:
    resp = client.post(
        "/oauth2/tokenP",
        json={"grant_type": "client_credentials", "appkey": cred.appkey, "appsecret": cred.appsecret},
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def data_headers(token: str, cred: AppCredential, tr_id: str) -> dict[str, str]:
    return {
        "content-type": "application/json; charset=utf-8",
        "authorization": f"Bearer {token}",
        "appkey": cred.appkey,
        "appsecret": cred.appsecret,
        "tr_id": tr_id,
        "custtype": "P",
    }


TODAY = dt.date(2026, 2, 20)
