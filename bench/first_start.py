"""A newcomer's first start, timed: `make run`'s bootstrap (scripts/devstack.py run) on an empty HOGA_VAR_DIR,
until /healthz answers 200 (the start-up fill done), the demo trader's first MARKET order is accepted, and it
is FILLED. Then Ctrl-C, as a terminal sends it.

    .venv/bin/python bench/first_start.py [--bulk-env real|paper] [--runs 1] [--second-start]

Embedded PostgreSQL and Redis under a temporary directory (DATABASE_URL / REDIS_URL are ignored), free ports.
``--bulk-env paper`` makes the start-up fill use the sandbox's paper listener (KIS paper: 2 req/s) instead of
its real one (20 req/s); ``--second-start`` also times a second start on the same data (only gaps filled).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-demo-pass-1234"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "scripts/devstack.py", "run"], cwd=ROOT, env=env, stdout=log.open("ab"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 900) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"make run exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return time.monotonic()
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    sys.exit(f"/healthz not 200 within {timeout}s:\n{log.read_text()[-3000:]}")


def first_order(base: str) -> tuple[float, float]:
    """(seconds until the order is accepted, seconds until it is FILLED), from the call."""
    began = time.monotonic()
    with httpx.Client(base_url=base, timeout=10) as client:
        form = client.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        client.post(
            "/accounts/login/", data={"username": "demo", "password": PASSWORD, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{base}/accounts/login/"},
        )  # fmt: skip
        headers = {"X-CSRFToken": client.cookies["csrftoken"], "Referer": f"{base}/"}
        order = client.post(
            "/api/paper-trading/orders", headers=headers,
            json={"code": "005930", "side": "BUY", "order_type": "MARKET", "quantity": 1},
        )  # fmt: skip
        if order.status_code != 201:
            sys.exit(f"order refused: {order.status_code} {order.text}")
        accepted = time.monotonic() - began
        order_id = order.json()["id"]
        while client.get(f"/api/paper-trading/orders/{order_id}").json()["status"] != "FILLED":
            if time.monotonic() - began > 120:
                sys.exit("the order was not filled within 120 s")
            time.sleep(0.2)
    return accepted, time.monotonic() - began


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)


def one_start(env: dict[str, str], log: Path, label: str) -> None:
    began = time.monotonic()
    proc = start(env, log)
    try:
        healthy = wait_healthy(f"http://127.0.0.1:{env['HOGA_PORT']}/healthz", proc, log) - began
        accepted, filled = first_order(f"http://127.0.0.1:{env['HOGA_PORT']}")
        fills = re.findall(r'start-up fill finished.*? seconds=([\d.]+) note="([^"]*)"', log.read_text())
    finally:
        stop(proc)
    fill_s, note = fills[-1] if fills else ("?", "")
    print(
        f"{label}: /healthz 200 after {healthy:.1f} s (start-up fill {fill_s} s: {note}); "
        f"first MARKET order accepted {accepted:.2f} s later ({healthy + accepted:.1f} s from make run), "
        f"FILLED {filled:.1f} s after it was sent"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bulk-env", choices=("real", "paper"), default="real")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--second-start", action="store_true")
    args = parser.parse_args()
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="hoga-first-start-") as tmp:
            log = Path(tmp) / "run.log"
            env = {
                k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
            }
            env.update(
                HOGA_VAR_DIR=str(Path(tmp) / "var"), HOGA_PORT=str(free_port()), FLOWER_PORT=str(free_port()),
                SANDBOX_REAL_REST_PORT=str(free_port()), SANDBOX_PAPER_REST_PORT=str(free_port()),
                SANDBOX_REAL_WS_PORT=str(free_port()), SANDBOX_PAPER_WS_PORT=str(free_port()),
                SANDBOX_KIWOOM_REST_PORT=str(free_port()), SANDBOX_KIWOOM_WS_PORT=str(free_port()),
                HOGA_DEMO_PASSWORD=PASSWORD, HOGA_ADMIN_PASSWORD=PASSWORD, SANDBOX_BULK_ENV=args.bulk_env,
            )  # fmt: skip
            one_start(env, log, f"run {run}, first start (fill over the sandbox's {args.bulk_env} listener)")
            if args.second_start:
                one_start(env, log, f"run {run}, second start on the same data")


if __name__ == "__main__":
    main()
