"""Fixtures for the broker client tests: unique Redis prefixes, the sandbox broker on free ports,
and child processes that run the client against it (see ``child.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps.sandbox.config import LIGHT_TAPE, AppCredential, SandboxConfig

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "broker-test-admin"
#: Fresh credentials per test: the sandbox keeps token and rate state per app key.
_CREDENTIALS = tuple(
    AppCredential(f"PSBRK{mode.upper():<5}{i:026d}"[:36], f"broker-secret-{mode}-{i}".ljust(180, "y"), mode)
    for mode in ("real", "paper")
    for i in range(60)
)
_next_credential = {"real": 0, "paper": 0}

#: The sandbox's token issuance interval in these tests (KIS: 60 s). Clients use the same value.
TOKEN_INTERVAL = 2.0
#: Sandbox rate limits for these tests. Paper is raised from KIS's 2/s to 20/s so that a 200-call
#: burst takes ~11 s instead of ~100 s; the client runs 10% below it, as in production.
SANDBOX_RATE = 20.0
CLIENT_RATE = 18.0


def sandbox_config(**overrides: object) -> SandboxConfig:
    from django.conf import settings

    data_dir = Path(settings.HOGA_DATA_DIR) if settings.HOGA_DATA_DIR else None
    if data_dir is not None and not (data_dir / "daily/krx_marcap").is_dir():
        data_dir = None
    cfg = SandboxConfig(
        data_dir=data_dir,
        universe_size=5,
        real_rest_port=0,
        paper_rest_port=0,
        real_ws_port=0,
        paper_ws_port=0,
        kiwoom_rest_port=0,
        kiwoom_ws_port=0,
        speed=60.0,
        admin_token=ADMIN,
        app_credentials=_CREDENTIALS,
        real_rate_limit=SANDBOX_RATE,
        paper_rate_limit=SANDBOX_RATE,
        token_issue_interval_s=TOKEN_INTERVAL,
        tape_density=LIGHT_TAPE,
    )
    return replace(cfg, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def sandbox():
    from apps.sandbox.server import SandboxThread

    with SandboxThread(sandbox_config()) as running:
        yield running


@pytest.fixture
def credential() -> Callable[[str], AppCredential]:
    def take(mode: str = "paper") -> AppCredential:
        pool = [c for c in _CREDENTIALS if c.mode == mode]
        cred = pool[_next_credential[mode] % len(pool)]
        _next_credential[mode] += 1
        return cred

    return take


@pytest.fixture
def redis_prefix(redis_client) -> Iterator[str]:
    """A Redis key prefix no other test uses; its keys are deleted afterwards."""
    prefix = f"hoga:test:broker:{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = list(redis_client.scan_iter(f"{prefix}:*"))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def kis_config_factory(sandbox, redis_prefix):
    """``make(cred, **overrides)`` → a KisConfig for the sandbox with test-friendly timings."""
    from apps.brokers.kis.config import KisConfig

    def make(cred: AppCredential, **overrides: Any) -> KisConfig:
        port = sandbox.ports.paper_rest if cred.mode == "paper" else sandbox.ports.real_rest
        values: dict[str, Any] = {
            "rate_limit": CLIENT_RATE,
            "backoff_base": 0.05,
            "backoff_max": 0.5,
            "timeout": 5.0,
            "token_issue_interval": TOKEN_INTERVAL,
            "token_lock_timeout": 30.0,
            "redis_prefix": redis_prefix,
        }
        values.update(overrides)
        return KisConfig.for_sandbox(
            env=cred.mode, rest_port=port, app_key=cred.appkey, app_secret=cred.appsecret, **values
        )

    return make


@pytest.fixture
def admin(sandbox) -> Iterator[httpx.Client]:
    """Sandbox admin client (fault injection); clears every fault afterwards."""
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{sandbox.ports.paper_rest}",
        headers={"X-Sandbox-Admin": ADMIN},
        timeout=10,
        trust_env=False,
    )
    yield client
    client.delete("/sandbox/faults")
    client.close()


def issued_tokens(sandbox, appkey: str) -> int:
    """How many tokens the sandbox has issued for ``appkey`` (ground truth, read on its loop)."""
    return sandbox.call(lambda: sum(1 for t in sandbox.server.core.authority._tokens.values() if t.appkey == appkey))


def test_database_url() -> str:
    """DATABASE_URL of the test database (pytest-django's ``test_<name>``), for child processes."""
    from urllib.parse import urlsplit, urlunsplit

    from django.db import connection

    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


test_database_url.__test__ = False  # type: ignore[attr-defined]


class Children:
    """Child processes running ``tests/brokers/child.py``: each prints ``ready``, waits
    for ``go`` on stdin (so that all start at once), runs its job and prints one JSON result line."""

    def __init__(self, jobs: list[dict[str, Any]]) -> None:
        env = dict(os.environ)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "config.settings.test",
                "DATABASE_URL": test_database_url(),
                "PYTHONPATH": str(ROOT),
                "LOG_LEVEL": "WARNING",
            }
        )
        self.procs = [
            subprocess.Popen(
                [sys.executable, str(ROOT / "tests/brokers/child.py"), json.dumps(job)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env=env,
            )
            for job in jobs
        ]

    def run(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        for proc in self.procs:
            line = proc.stdout.readline().strip()
            if line != "ready":
                proc.kill()
                raise AssertionError(f"child not ready: {line!r} {proc.stderr.read()[-2000:]}")
        for proc in self.procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in self.procs:
            out, err = proc.communicate(timeout=timeout)
            lines = [line for line in out.splitlines() if line.startswith("{")]
            assert proc.returncode == 0 and lines, f"child failed ({proc.returncode}): {err[-3000:]}"
            results.append(json.loads(lines[-1]))
        return results

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


@pytest.fixture
def children() -> Iterator[Callable[[list[dict[str, Any]]], Children]]:
    started: list[Children] = []

    def start(jobs: list[dict[str, Any]]) -> Children:
        group = Children(jobs)
        started.append(group)
        return group

    yield start
    for group in started:
        group.kill()
