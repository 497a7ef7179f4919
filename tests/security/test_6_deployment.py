"""Finding 6: unsafe deployment defaults. Attacks: start a deployed process without a settings module (it fell
back to DEBUG and a fixed secret); reach the sandbox and Flower from outside the compose network; use the
sandbox's public default admin token; claim HTTPS or another client address with X-Forwarded-* headers; plant
a pickle in the calendar cache; keep receiving pushes after logging out. All must fail; HTTPS and a Content
Security Policy are on in production."""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from channels.testing import HttpCommunicator, WebsocketCommunicator

ROOT = Path(__file__).resolve().parent.parent.parent
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "HOGA_PROCESS_ROLE")}


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "manage.py", "check"],
        [sys.executable, "-c", "import config.asgi"],
        [sys.executable, "-c", "import config.celery"],
    ],
)
@pytest.mark.parametrize("marker", ["HOGA_CONTAINER", "HOGA_PROCESS_ROLE"])
def test_a_deployed_process_refuses_to_start_without_a_settings_module(command, marker):
    result = subprocess.run(command, cwd=ROOT, env={**CLEAN_ENV, marker: "1"}, capture_output=True, text=True,
                            timeout=120)  # fmt: skip

    assert result.returncode != 0
    assert "DJANGO_SETTINGS_MODULE is not set" in result.stderr


def test_compose_keeps_the_sandbox_flower_and_data_services_off_the_public_network():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services, text = compose["services"], (ROOT / "docker-compose.yml").read_text()

    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"web"}
    for name in ("postgres", "redis", "sandbox", "flower"):
        assert services[name]["networks"] == ["internal"], name
    assert compose["networks"]["internal"]["internal"] is True
    for secret in ("SANDBOX_ADMIN_TOKEN", "FLOWER_BASIC_AUTH", "POSTGRES_PASSWORD"):
        assert f"${{{secret}:?" in text  # compose refuses to start without a generated secret
    assert "sandbox-admin" not in (ROOT / "config" / "settings" / "base.py").read_text()
    # The web server believes no X-Forwarded-* itself: apps/core/proxy.py does, from HOGA_TRUSTED_PROXIES only.
    script = [
        line for line in (ROOT / "bin" / "hoga-process").read_text().splitlines() if not line.strip().startswith("#")
    ]
    assert any("gunicorn --config config/gunicorn.py" in line for line in script)
    assert not any("--proxy-headers" in line or "--forwarded-allow-ips" in line for line in script)
    from apps.core.web import HogaUvicornWorker

    assert HogaUvicornWorker.CONFIG_KWARGS["proxy_headers"] is False
    assert HogaUvicornWorker.CONFIG_KWARGS["lifespan"] == "off"
    assert 'forwarded_allow_ips = ""' in (ROOT / "config" / "gunicorn.py").read_text()
    assert "HOGA_CONTAINER=1" in (ROOT / "Dockerfile").read_text()


def test_the_sandbox_admin_endpoints_are_off_without_a_token():
    import httpx

    from apps.sandbox.config import SandboxConfig
    from apps.sandbox.server import SandboxThread

    config = SandboxConfig(data_dir=None, real_rest_port=0, paper_rest_port=0, real_ws_port=0, paper_ws_port=0,
                           admin_token="")  # fmt: skip
    with SandboxThread(config) as running:
        url = f"http://127.0.0.1:{running.ports.paper_rest}"
        for token in ("", "sandbox-admin"):
            response = httpx.post(f"{url}/sandbox/clock", json={"time": "10:00:00"},
                                  headers={"X-Sandbox-Admin": token}, timeout=10)  # fmt: skip
            assert response.status_code == 403


def test_production_settings_turn_on_https_hsts_and_csp():
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; from django.test import Client;"
        "plain = Client().get('/accounts/login/'); secure = Client().get('/accounts/login/', secure=True);"
        "print(json.dumps([s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER, s.DEBUG,"
        " plain.status_code, secure.headers.get('Strict-Transport-Security'),"
        " secure.headers.get('Content-Security-Policy')]))"
    )
    env = {**CLEAN_ENV, "DJANGO_SETTINGS_MODULE": "config.settings.production", "DJANGO_SECRET_KEY": "x" * 50,
           "DJANGO_ALLOWED_HOSTS": "testserver", "LOG_LEVEL": "ERROR"}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)  # fmt: skip

    import json

    redirect, hsts_seconds, proxy_header, debug, plain_status, hsts, csp = json.loads(
        result.stdout.strip().splitlines()[-1]
    )
    assert (redirect, hsts_seconds >= 31_536_000, proxy_header, debug, plain_status) == (True, True, None, False, 301)
    assert hsts.startswith("max-age=31536000")
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp


def test_the_only_inline_style_allowed_is_the_chart_librarys_own():
    import base64
    import hashlib
    import re

    from django.conf import settings

    bundle = (ROOT / "static" / "vendor" / "lightweight-charts.standalone.production.js").read_text()
    styles = re.findall(r'innerText="(a#tv-attr-logo[^"]*)"', bundle)
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()

    assert len(styles) == 1 and settings.CHART_LOGO_STYLE_HASH == f"'sha256-{digest}'"
    assert settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["style-src"] == ["'self'", settings.CHART_LOGO_STYLE_HASH]


@pytest.mark.django_db
def test_every_page_carries_the_content_security_policy(client):
    response = client.get("/accounts/login/")

    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "object-src 'none'" in policy


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("peer", "secure"), [("203.0.113.9", False), ("10.0.0.2", True)])
async def test_forwarded_headers_count_only_from_a_trusted_proxy(settings, peer, secure, async_db_cleanup):
    from django.core.asgi import get_asgi_application

    from apps.core.proxy import TrustedProxyMiddleware

    settings.SECURE_SSL_REDIRECT = True
    app = TrustedProxyMiddleware(get_asgi_application(), trusted=["10.0.0.0/24"])
    communicator = HttpCommunicator(
        app, "GET", "/accounts/login/", headers=[(b"host", b"localhost"), (b"x-forwarded-proto", b"https"),
                                                 (b"x-forwarded-for", b"198.51.100.7")],
    )  # fmt: skip
    communicator.scope["client"] = (peer, 50000)

    response = await communicator.get_response()

    assert response["status"] == (200 if secure else 301)  # untrusted: still plain HTTP, redirected


def test_the_calendar_cache_never_unpickles_from_a_shared_or_foreign_directory(tmp_path, settings):
    from apps.core.krx import calendar

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.write_text, (marker, "ran"))

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(calendar.UnsafeCacheDir):
        calendar._private_dir(shared)

    private = calendar._private_dir(tmp_path / "private")
    assert oct(private.stat().st_mode & 0o777) == "0o700"
    planted = private / "xkrx-planted.pickle"
    planted.write_bytes(pickle.dumps(Payload()))
    planted.chmod(0o666)  # writable by others: refused before unpickling
    with pytest.raises(calendar.UnsafeCacheDir):
        calendar._load_private(planted)
    assert not marker.exists()
    assert Path(settings.HOGA_CACHE_DIR).is_relative_to(Path(settings.HOGA_VAR_DIR))


async def _session_socket(path: str, cookie: str) -> WebsocketCommunicator:
    from config.asgi import application

    headers = [(b"origin", b"http://localhost"), (b"cookie", f"sessionid={cookie}".encode())]
    socket = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await socket.connect()
    assert connected
    return socket


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_websockets_close_when_their_session_ends_by_logout(clean_redis, async_db_cleanup):
    from channels.db import database_sync_to_async
    from django.contrib.auth import get_user_model
    from django.test import Client

    def login() -> Client:
        user = get_user_model().objects.create_user(username="leaver", password="pw-12345678")
        client = Client()
        client.force_login(user)
        return client

    client = await database_sync_to_async(login)()
    cookie = client.cookies["sessionid"].value
    orders = await _session_socket("/ws/orders/", cookie)
    assert (await orders.receive_json_from())["type"] == "subscribed"
    await asyncio.sleep(0.2)  # the session group's subscription reaches Redis

    await database_sync_to_async(client.post)("/accounts/logout/")

    assert await orders.receive_json_from(timeout=5) == {"type": "session_ended", "reason": "logout"}
    assert (await orders.receive_output(timeout=5))["code"] == 4401


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_websockets_close_when_their_session_expires(clean_redis, settings, async_db_cleanup):
    from channels.db import database_sync_to_async
    from django.contrib.auth import get_user_model
    from django.test import Client

    settings.SESSION_COOKIE_AGE = 2

    def login() -> str:
        user = get_user_model().objects.create_user(username="expiring", password="pw-12345678")
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    socket = await _session_socket("/ws/ping/", await database_sync_to_async(login)())

    assert await socket.receive_json_from(timeout=6) == {"type": "session_ended", "reason": "expired"}
    assert (await socket.receive_output(timeout=5))["code"] == 4401
