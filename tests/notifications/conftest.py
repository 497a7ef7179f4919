"""Fixtures of the notification tests: a local Slack/Telegram stand-in HTTP server (a real server on a
loopback port, scripted statuses), the paper-trading fixtures, and helpers to set up verified channels."""

from __future__ import annotations

import asyncio
import threading

import pytest
from aiohttp import web

from tests.trading.orders.conftest import _empty_redis, account, make_stock, market, place, stock, tick  # noqa: F401


class StandIn:
    """Slack incoming webhooks (``POST /services/...``) and the Telegram Bot API (``POST /bot<token>/sendMessage``)
    on 127.0.0.1: records every request and answers the scripted statuses in order, then 200."""

    def __init__(self, statuses: list[int] | None = None):
        self.statuses = list(statuses or [])
        self.slack: list[dict] = []
        self.telegram: list[tuple[str, dict]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _status(self) -> int:
        return self.statuses.pop(0) if self.statuses else 200

    async def _slack(self, request):
        self.slack.append(await request.json())
        status = self._status()
        return web.Response(status=status, text="ok" if status == 200 else "error")

    async def _telegram(self, request):
        self.telegram.append((request.match_info["token"], await request.json()))
        status = self._status()
        body = {"ok": status == 200, "result": {"message_id": len(self.telegram)}}
        return web.json_response(body, status=status)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/services/{rest:.*}", self._slack)
        app.router.add_post("/bot{token}/sendMessage", self._telegram)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook(self) -> str:
        return f"{self.origin}/services/T000/B000/secretpart"

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


BOT_TOKEN = "123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQr"


@pytest.fixture
def standin(settings):
    with StandIn() as server:
        settings.NOTIFICATIONS_LOCAL_ORIGINS = [server.origin]
        settings.NOTIFICATIONS_TELEGRAM_API_URL = server.origin
        yield server


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """``with committed():`` runs the after-commit callbacks registered inside the block when it ends."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def verified(channel):
    from django.utils import timezone

    from apps.notifications.hooks import channels_changed

    channel.verified_at = timezone.now()
    channel.save(update_fields=["verified_at"])
    channels_changed()
    return channel


@pytest.fixture
def channels(user, standin, settings):
    """Verified e-mail, Slack and Telegram channels of ``user`` that take every event."""
    from apps.notifications.services import channel_create

    settings.NOTIFICATIONS_EMAIL_FROM = "alerts@hoga.test"
    return {
        "email": verified(channel_create(user=user, kind="email", destination={"address": "me@example.com"})),
        "slack": verified(channel_create(user=user, kind="slack", destination={"webhook_url": standin.webhook})),
        "telegram": verified(
            channel_create(user=user, kind="telegram", destination={"bot_token": BOT_TOKEN, "chat_id": "4242"})
        ),
    }
