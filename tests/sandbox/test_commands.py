"""``manage.py runsandbox`` / ``sandbox_fault`` as real subprocesses (clean SIGTERM shutdown)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.harness import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_runsandbox_serves_takes_faults_and_stops_on_sigterm() -> None:
    ports = [free_port() for _ in range(6)]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.test")}
    env.setdefault("DJANGO_SECRET_KEY", "sandbox-test")
    env["SANDBOX_ADMIN_TOKEN"] = "commands-test-admin"  # no default token: the admin endpoints need one
    cmd = [
        sys.executable,
        "manage.py",
        "runsandbox",
        "--speed",
        "30",
        "--real-rest-port",
        str(ports[0]),
        "--paper-rest-port",
        str(ports[1]),
        "--real-ws-port",
        str(ports[2]),
        "--paper-ws-port",
        str(ports[3]),
        "--kiwoom-rest-port",
        str(ports[4]),
        "--kiwoom-ws-port",
        str(ports[5]),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90  # building the recorded market takes ~25 s on a loaded 2-core machine
        while True:
            if proc.poll() is not None:
                pytest.fail(f"runsandbox exited early: {proc.stdout.read() if proc.stdout else ''}")
            try:
                status = httpx.get(f"http://127.0.0.1:{ports[0]}/sandbox/clock", timeout=1).json()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    pytest.fail("runsandbox did not come up")
                time.sleep(0.2)
        assert status["speed"] == 30.0 and status["clock"] == "replay"
        fault = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "sandbox_fault",
                "rate_limit",
                "--count",
                "3",
                "--mode",
                "real",
                "--port",
                str(ports[0]),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert fault.returncode == 0, fault.stderr
        assert '"remaining": 3' in fault.stdout
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out
        assert "sandbox up on" in out and "sandbox stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
