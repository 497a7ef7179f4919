"""`make run` end to end: the embedded servers, every process, the start-up fill, /healthz, a first order,
Redis failure and restart.

Runs scripts/devstack.py (what `make run` runs after installing) with its data in a temporary
directory (an empty HOGA_VAR_DIR) and free ports, exactly as on a fresh machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.harness import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _start(env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "scripts/devstack.py", "run"],
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, like a terminal session
    )


def _wait_health(url: str, want_status: int, timeout: float, proc: subprocess.Popen, log: Path) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"make run exited early ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            response = httpx.get(url, timeout=5)
            last = response.json()
            if response.status_code == want_status:
                return last
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"/healthz never answered {want_status} within {timeout}s; last: {last}\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen) -> list[psutil.Process]:
    """Ctrl-C as a terminal sends it (to the whole foreground group); return processes left behind."""
    tree = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    time.sleep(0.5)
    return [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def _log_in(base: str, username: str, password: str) -> httpx.Client:
    """A browser's session: the login form with its CSRF token, then the session and CSRF cookies."""
    client = httpx.Client(base_url=base, timeout=10)
    form = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    done = client.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/login/"},
    )
    assert done.status_code == 302, done.text[:500]
    client.headers.update({"X-CSRFToken": client.cookies["csrftoken"], "Referer": f"{base}/"})
    return client


def _embedded_redis_pid(var_dir: Path) -> int:
    return int((var_dir / "redis" / "redis.pid").read_text().strip())


def test_make_run_brings_the_stack_up_reports_redis_failure_and_recovers(tmp_path):
    var_dir = tmp_path / "var"
    log = tmp_path / "run.log"
    web_port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        HOGA_VAR_DIR=str(var_dir),
        HOGA_PORT=str(web_port),
        FLOWER_PORT=str(free_port()),
        SANDBOX_REAL_REST_PORT=str(free_port()),
        SANDBOX_PAPER_REST_PORT=str(free_port()),
        SANDBOX_REAL_WS_PORT=str(free_port()),
        SANDBOX_PAPER_WS_PORT=str(free_port()),
        HOGA_DEMO_PASSWORD="demo-pass-1234",
        HOGA_ADMIN_PASSWORD="admin-pass-1234",
    )
    health = f"http://127.0.0.1:{web_port}/healthz"

    proc = _start(env, log)
    try:
        started = time.monotonic()
        report = _wait_health(health, 200, 150, proc, log)
        healthy_at = time.monotonic()
        took = healthy_at - started
        components = report["components"]
        for part in ("postgres", "redis", "queue:default", "queue:feed", "beat", "market_data"):
            assert components[part]["status"] == "ok", (part, components[part])
        assert took < 150

        # A newcomer logs in and buys at once: the start-up fill stored the previous closes (the base prices).
        base = f"http://127.0.0.1:{web_port}"
        browser = _log_in(base, "demo", "demo-pass-1234")
        try:
            placed = browser.post(
                "/api/paper-trading/orders",
                json={"code": "005930", "side": "BUY", "order_type": "MARKET", "quantity": 1},
            )
            accepted_after = time.monotonic() - healthy_at
            assert placed.status_code == 201, placed.text
            assert accepted_after < 5
            order_id = placed.json()["id"]
            deadline = time.monotonic() + 60
            while (order := browser.get(f"/api/paper-trading/orders/{order_id}").json())["status"] != "FILLED":
                assert time.monotonic() < deadline, f"not filled within 60 s: {order}"
                time.sleep(0.5)
            assert order["filled_quantity"] == 1 and order["avg_fill_price"]
        finally:
            browser.close()
        output = log.read_text()
        assert "created demo trader: username=demo password=demo-pass-1234" in output
        assert "universe: " in output
        assert re.search(r"start-up fill: daily +▕█+▏ 50/50", output)
        # make run's own /healthz watcher says so too (it polls once a second; a loaded machine may lag it)
        deadline = time.monotonic() + 30
        while not re.search(r"healthy after \d+s", output := log.read_text()):
            assert time.monotonic() < deadline, "make run never said it was healthy"
            time.sleep(0.5)
        for name in ("sandbox", "web", "worker", "feed", "beat", "flower"):
            assert f"{name}.1 started" in output
        # The sandbox broker is up and its replayed session is open.
        clock = httpx.get(f"http://127.0.0.1:{env['SANDBOX_PAPER_REST_PORT']}/sandbox/clock", timeout=10).json()
        assert clock["session"] == "continuous"
        assert "schedule: collect minute bars" in output

        # Flower answers behind basic auth.
        flower = f"http://127.0.0.1:{env['FLOWER_PORT']}/"
        secrets_env = dict(line.split("=", 1) for line in (var_dir / "secrets.env").read_text().splitlines())
        user, password = secrets_env["FLOWER_BASIC_AUTH"].split(":", 1)
        assert httpx.get(flower, timeout=10).status_code == 401
        assert httpx.get(flower, auth=(user, password), timeout=10).status_code == 200

        os.kill(_embedded_redis_pid(var_dir), signal.SIGKILL)
        down = _wait_health(health, 503, 30, proc, log)
        assert "redis" in down["failing"]
        assert down["components"]["redis"]["status"] == "down"
    finally:
        leftovers = _stop(proc)
    assert leftovers == [], f"orphans after Ctrl-C: {[p.cmdline() for p in leftovers]}"

    # A second `make run` reuses ./var (no new users, same data) and recovers Redis.
    proc = _start(env, log)
    try:
        report = _wait_health(health, 200, 90, proc, log)
        assert report["components"]["redis"]["status"] == "ok"
        assert "demo trader 'demo' exists (password unchanged)" in log.read_text()
        # A later start fills only gaps: every stock's daily bars already reach the last session.
        deadline = time.monotonic() + 60
        while len(finished := re.findall(r'start-up fill finished.* note="([^"]*)"', log.read_text())) < 2:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        assert finished[1].startswith("daily: 0 of 50 stocks asked, 0 bars")
    finally:
        leftovers = _stop(proc)
    assert leftovers == []
    # The embedded servers were stopped too.
    assert not (var_dir / "pg" / "data" / "postmaster.pid").exists()
