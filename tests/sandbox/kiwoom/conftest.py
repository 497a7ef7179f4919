"""Fixtures for the Kiwoom side of the sandbox: a real server on free ports, plain httpx/websockets clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from apps.core.demo_credentials import kiwoom_demo_credentials
from apps.sandbox.config import AppCredential
from apps.sandbox.server import SandboxThread

from ..conftest import ADMIN, base_config, shared_market

KIWOOM_EXTRA = tuple(
    AppCredential(f"kwtest{mode}{i:037d}"[:43], f"kwsecret{mode}{i:035d}"[:43], mode)
    for mode in ("real", "mock")
    for i in range(20)
)
_next = {"real": 0, "mock": 0}


def kiwoom_config(**overrides: object):  # noqa: ANN201 - SandboxConfig
    values: dict[str, object] = {
        "kiwoom_rest_port": 0,
        "kiwoom_ws_port": 0,
        "kiwoom_ping_interval": 0.3,
        "kiwoom_ping_timeout": 1.5,
        # The KIS listeners here serve only the cross-protocol comparisons, not PINGPONG tests: a busy machine must
        # not drop them for an echo that came late.
        "pingpong_timeout": 10.0,
        "kiwoom_app_credentials": KIWOOM_EXTRA,
        "speed": 60.0,
    }
    values.update(overrides)
    return base_config(**values)


def start_box(**overrides: object) -> SandboxThread:
    cfg = kiwoom_config(**overrides)
    return SandboxThread(cfg, shared_market(cfg)).start()


def fresh_pair(mode: str) -> tuple[str, str]:
    """A Kiwoom key pair no other test used (rate buckets are per app key)."""
    pool = [c for c in KIWOOM_EXTRA if c.mode == mode]
    cred = pool[_next[mode] % len(pool)]
    _next[mode] += 1
    return cred.appkey, cred.appsecret


@pytest.fixture(scope="module")
def kbox() -> Iterator[SandboxThread]:
    box = start_box()
    try:
        yield box
    finally:
        box.stop()


def rest(box: SandboxThread) -> str:
    return f"http://127.0.0.1:{box.ports.kiwoom_rest}"


def ws_url(box: SandboxThread) -> str:
    return f"ws://127.0.0.1:{box.ports.kiwoom_ws}/api/dostk/websocket"


def admin(box: SandboxThread) -> httpx.Client:
    return httpx.Client(base_url=rest(box), headers={"X-Sandbox-Admin": ADMIN}, timeout=10)


def set_clock(box: SandboxThread, hhmmss: str) -> None:
    with admin(box) as client:
        assert client.post("/sandbox/clock", json={"time": hhmmss}).status_code == 200


def issue_token(box: SandboxThread, mode: str = "mock", pair: tuple[str, str] | None = None) -> str:
    appkey, secretkey = pair or kiwoom_demo_credentials(mode)
    resp = httpx.post(
        f"{rest(box)}/oauth2/token",
        json={"grant_type": "client_credentials", "appkey": appkey, "secretkey": secretkey},
    )
    body = resp.json()
    assert resp.status_code == 200 and body["return_code"] == 0, body
    return str(body["token"])


async def recv_json(ws: websockets.ClientConnection, timeout: float = 3.0, *, echo_ping: bool = True) -> dict:
    """Next message that is not a PING (PINGs are echoed unchanged)."""
    deadline = time.monotonic() + timeout
    while True:
        raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
        msg = json.loads(raw)
        if msg.get("trnm") == "PING":
            if echo_ping:
                await ws.send(raw)
            continue
        return msg


async def login(box: SandboxThread, token: str | None = None) -> websockets.ClientConnection:
    ws = await websockets.connect(ws_url(box))
    await ws.send(json.dumps({"trnm": "LOGIN", "token": token or issue_token(box)}))
    reply = await recv_json(ws)
    assert reply == {"trnm": "LOGIN", "return_code": 0, "return_msg": ""}
    return ws


def write_rules(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "conditions.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path
