"""Two ``manage.py runfeed`` processes for the same app key: exactly one connects; after SIGKILL of the
holder, the other takes over within 10 s (the lease expires, the stand-by acquires it and reconnects)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apps.live.feed.lease import lease_key
from apps.live.realtime import keys
from tests.brokers.conftest import test_database_url

from .conftest import open_sandbox_connections, sandbox_codes

ROOT = Path(__file__).resolve().parents[3]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


@pytest.mark.integration
@pytest.mark.django_db
def test_one_holder_per_app_key_and_takeover_after_sigkill(
    feedbox, feed_credential, redis_client, shared_keys, tmp_path
) -> None:
    codes = sandbox_codes(feedbox, 2)
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": test_database_url(),
            "PYTHONPATH": str(ROOT),
            "MARKET_BROKER": "sandbox",
            "KIS_ENV": "paper",
            "KIS_APP_KEY": feed_credential.appkey,
            "KIS_APP_SECRET": feed_credential.appsecret,
            "SANDBOX_CONNECT_HOST": "127.0.0.1",
            "SANDBOX_PAPER_REST_PORT": str(feedbox.ports.paper_rest),
            "SANDBOX_PAPER_WS_PORT": str(feedbox.ports.paper_ws),
            "FEED_STATUS_INTERVAL": "0.5",
            "HOGA_PROCESS_ROLE": "feed-test",
            "LOG_LEVEL": "INFO",
        }
    )
    from apps.brokers.kis.config import app_key_hash

    lease = lease_key(f"paper:{app_key_hash(feed_credential.appkey)}")
    procs: dict[int, subprocess.Popen] = {}
    logs = []
    try:
        for i in range(2):
            log = (tmp_path / f"runfeed-{i}.log").open("w")
            logs.append(log)
            proc = subprocess.Popen(
                [sys.executable, "manage.py", "runfeed", "--watchlist", ",".join(codes)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            procs[proc.pid] = proc

        def holder_pid() -> int | None:
            value = redis_client.get(lease)
            return int(value.decode().split(":")[1]) if value else None

        first = wait_until(holder_pid, 20, "a runfeed process holds the lease")
        assert first in procs
        wait_until(lambda: open_sandbox_connections(feedbox) == [4], 10, "the holder subscribed 2 stocks")
        wait_until(lambda: redis_client.get(keys.FEED_STATUS_KEY) == b"connected", 5, "status connected")
        time.sleep(2.0)  # the stand-by keeps retrying, and never connects
        assert open_sandbox_connections(feedbox) == [4] and holder_pid() == first
        assert all(p.poll() is None for p in procs.values())

        procs[first].send_signal(signal.SIGKILL)
        procs[first].wait(5)
        killed_at = time.monotonic()
        second = wait_until(lambda: (pid := holder_pid()) not in (None, first) and pid, 10, "takeover of the lease")
        assert second in procs and second != first
        wait_until(lambda: open_sandbox_connections(feedbox) == [4], 10 - (time.monotonic() - killed_at), "reconnected")
        took = time.monotonic() - killed_at
        assert took < 10, took
        before = redis_client.hget(keys.QUOTES_HASH, codes[0])
        wait_until(lambda: redis_client.hget(keys.QUOTES_HASH, codes[0]) != before, 5, "ticks from the new holder")

        procs[second].send_signal(signal.SIGTERM)  # clean stop: lease released, status "stopped"
        assert procs[second].wait(15) == 0
        assert redis_client.exists(lease) == 0
        assert redis_client.get(keys.FEED_STATUS_KEY) == b"stopped"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        for log in logs:
            log.close()
        redis_client.delete(lease)
    output = "".join((tmp_path / f"runfeed-{i}.log").read_text() for i in range(2))
    assert "feed lease acquired" in output and "standing by" in output
    assert feed_credential.appsecret not in output and feed_credential.appkey not in output
