"""Notifications after commit: e-mail (Django's outbox), Slack (a local webhook server), browser toasts and
live page updates (the Channels layer through the real consumers), deduplication and the rate limit."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from aiohttp import web
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core import mail

from apps.conditions.notifications import condition_summaries_flush
from apps.conditions.services import condition_alert_record, condition_reconcile, condition_update

from .conftest import alert, hit, set_quote


class WebhookServer:
    """A local Slack-like incoming webhook: answers the scripted statuses in order, then 200."""

    def __init__(self, statuses: list[int]):
        self.statuses = list(statuses)
        self.received: list[dict] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, request):
        self.received.append(await request.json())
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok" if status == 200 else "error")

    def _run(self):
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/services/T000/B000/hook", self._handle)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/hook"

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def test_email_goes_to_the_owner_by_default_after_commit(conditions, owner, clean_redis, settings, committed):
    settings.CONDITIONS_EMAIL_FROM = "alerts@hoga.test"
    condition_update(condition_id=conditions["0"].pk, notify_email=True)
    set_quote(clean_redis, "005930", 71_500)

    with committed():
        condition_alert_record(alert=alert("0", "005930", "IN"))

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["trader@example.com"] and message.from_email == "alerts@hoga.test"
    assert message.subject == "[Hoga] [등락률 2% 이상] 편입: 005930"
    assert message.body == "10:00:00 KST 71,500원"


def test_slack_message_is_posted_from_a_task(conditions, settings, committed):
    with WebhookServer([]) as server:
        settings.CONDITIONS_SLACK_WEBHOOK_URL = server.url
        condition_update(condition_id=conditions["0"].pk, operator=True, notify_slack=True, notify_browser=False)

        with committed():
            condition_reconcile(seq="0", search=lambda seq: [hit("000660", price=201_500, name="SK하이닉스")])

    assert len(server.received) == 1
    assert server.received[0]["text"].startswith("*[등락률 2% 이상] 편입: SK하이닉스 (000660)*\n")
    assert server.received[0]["text"].endswith("201,500원 · 조회로 확인")


def test_slack_task_retries_server_errors_but_not_client_errors(settings, caplog):
    from apps.conditions.tasks import conditions_send_slack

    with WebhookServer([503, 200, 404]) as server:
        settings.CONDITIONS_SLACK_WEBHOOK_URL = server.url

        # Eager mode runs Celery's retry at once (a worker waits retry_backoff seconds first).
        retried = conditions_send_slack.apply(kwargs={"text": "a"}, throw=False)
        refused = conditions_send_slack.apply(kwargs={"text": "b"}, throw=False)

    assert (retried.state, retried.result) == ("SUCCESS", 200)  # 503, then 200 on the retry
    assert (refused.state, refused.result) == ("SUCCESS", 404)  # a refused webhook is logged, not retried
    assert [body["text"] for body in server.received] == ["a", "a", "b"]
    assert "Slack webhook refused the message" in caplog.text
    assert server.url not in caplog.text  # the webhook URL is a secret
    assert conditions_send_slack.max_retries == 5


def test_same_stock_and_kind_within_the_window_is_notified_once(conditions, settings, committed):
    settings.CONDITIONS_DEDUPE_WINDOW = 300
    condition_update(condition_id=conditions["0"].pk, notify_email=True)

    with committed():
        for second, kind in enumerate(["IN", "OUT", "IN", "OUT", "IN"]):
            condition_alert_record(alert=alert("0", "005930", kind, second=second))

    assert [m.subject.split("] ")[2].split(":")[0] for m in mail.outbox] == ["편입", "이탈"]
    assert conditions["0"].events.count() == 5  # every event is recorded; only notifications are deduplicated


def test_rate_limit_per_condition_summarises_the_excess(conditions, settings, committed):
    settings.CONDITIONS_RATE_LIMIT = 3
    condition_update(condition_id=conditions["0"].pk, notify_email=True)
    condition_update(condition_id=conditions["1"].pk, notify_email=True)
    codes = [f"{n:06d}" for n in range(100, 106)]

    with committed():
        for code in codes:
            condition_alert_record(alert=alert("0", code, "IN"))
        condition_alert_record(alert=alert("1", "005930", "IN"))  # another condition has its own budget

    assert len(mail.outbox) == 4
    assert condition_summaries_flush() == 1
    assert condition_summaries_flush() == 0  # each suppressed item is summarised once
    summary = mail.outbox[-1]
    assert summary.subject == "[Hoga] [등락률 2% 이상] 알림 3건 요약 (분당 3건 초과)"
    assert summary.body == "편입 3: 000103, 000104, 000105"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_browser_toast_and_live_members_through_the_consumers(async_db_cleanup, clean_redis):
    from django.contrib.auth import get_user_model

    from apps.brokers.base import ConditionInfo
    from apps.conditions.consumers import ConditionsConsumer, NotificationsConsumer
    from apps.conditions.models import Condition
    from apps.conditions.services import broker_connection_link, conditions_sync

    user = await database_sync_to_async(get_user_model().objects.create_user)(username="ws", password="pw-12345678")
    await database_sync_to_async(broker_connection_link)(user=user)
    await database_sync_to_async(conditions_sync)(owner=user, infos=[ConditionInfo("3", "시가 돌파")])
    condition = await database_sync_to_async(Condition.objects.get)(owner=user)
    await database_sync_to_async(set_quote)(clean_redis, "005930", 72_000)

    toasts = WebsocketCommunicator(NotificationsConsumer.as_asgi(), "/ws/notifications/")
    toasts.scope["user"] = user
    page = WebsocketCommunicator(ConditionsConsumer.as_asgi(), "/ws/conditions/")
    page.scope["user"] = user
    assert (await toasts.connect())[0] and (await page.connect())[0]
    assert await page.receive_json_from() == {"type": "subscribed", "conditions": [condition.pk]}

    await database_sync_to_async(condition_alert_record)(alert=alert("3", "005930", "IN"))

    toast = await toasts.receive_json_from(timeout=5)
    assert toast["type"] == "notification"
    assert toast["notification"]["title"] == "[시가 돌파] 편입: 005930"
    assert toast["notification"]["body"] == "10:00:00 KST 72,000원"
    assert toast["notification"]["url"] == "/conditions/"
    update = await page.receive_json_from(timeout=5)
    assert update["type"] == "condition.event" and update["condition"] == condition.pk
    assert (update["event"]["kind"], update["event"]["code"], update["event"]["source"]) == ("IN", "005930", "realtime")
    assert update["event"]["at"] == "2026-02-20T10:00:00+09:00"
    assert [(m["code"], m["price_in"]) for m in update["members"]] == [("005930", 72_000)]

    await database_sync_to_async(condition_alert_record)(alert=alert("3", "005930", "OUT", second=3))
    update = await page.receive_json_from(timeout=5)
    assert update["event"]["kind"] == "OUT" and update["members"] == []

    assert (await toasts.receive_json_from(timeout=5))["notification"]["title"] == "[시가 돌파] 이탈: 005930"
    await toasts.send_to(text_data="nonsense")
    assert (await toasts.receive_json_from())["code"] == "bad_message"
    await toasts.disconnect()
    await page.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_anonymous_sockets_are_refused():
    from config.asgi import application

    for path in ("/ws/notifications/", "/ws/conditions/"):
        communicator = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://localhost")])
        connected, code = await communicator.connect()
        assert (connected, code) == (False, 4401)


def test_notification_payload_is_json_safe(conditions):
    events = condition_alert_record(alert=alert("0", "005930", "IN"))
    from apps.conditions.notifications import event_snapshot

    assert json.loads(json.dumps(event_snapshot(events[0])))["price"] is None
