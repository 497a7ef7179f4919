"""Order events to notifications: end-to-end from a fill to e-mail (Django's outbox), a local Slack and a
local Telegram stand-in server, each sent once; rate limit, retries with back-off, refusals, cancels,
rejections, partial fills, the daily summary, and the browser toast through the real consumer."""

from __future__ import annotations

import pytest
from django.core import mail

from apps.notifications.models import Delivery, DeliveryStatus, Notification
from apps.notifications.services import (
    RATE_KEY,
    daily_summaries_record,
    deliveries_deferred_flush,
    delivery_send,
    notification_record,
)
from apps.trading.orders.fills import order_fill_apply
from apps.trading.orders.realtime import orders_push

from .conftest import BOT_TOKEN

pytestmark = pytest.mark.django_db


def _statuses(notification: Notification) -> dict[str, tuple[str, int]]:
    return {d.channel.kind: (d.status, d.attempts) for d in notification.deliveries.select_related("channel")}


def test_a_fill_is_delivered_once_to_email_slack_and_telegram(place, tick, channels, standin, committed):
    with committed():
        order = place("BUY", 10, 70_000)
    with committed():
        order_fill_apply(tick=tick(70_000, 100))

    [notification] = Notification.objects.all()
    assert (notification.event, notification.key) == ("fill", f"order.{order.pk}.filled")
    assert notification.title == "[체결] Stock 005930 (005930) 매수 10주"
    assert notification.body == f"주문 #{order.pk} · 평균 70,000원"
    assert _statuses(notification) == {"email": ("sent", 1), "slack": ("sent", 1), "telegram": ("sent", 1)}
    assert [m.subject for m in mail.outbox] == ["[Hoga] [체결] Stock 005930 (005930) 매수 10주"]
    assert mail.outbox[0].to == ["me@example.com"] and mail.outbox[0].from_email == "alerts@hoga.test"
    assert [m["text"] for m in standin.slack] == [
        f"*[체결] Stock 005930 (005930) 매수 10주*\n주문 #{order.pk} · 평균 70,000원"
    ]
    assert [(t, b["chat_id"]) for t, b in standin.telegram] == [(BOT_TOKEN, "4242")]

    # the same committed state announced again (a re-push, a retried task): nothing new is sent
    with committed():
        orders_push([order.pk]).result(5)
    assert Notification.objects.count() == 1
    assert (len(mail.outbox), len(standin.slack), len(standin.telegram)) == (1, 1, 1)


def test_partial_fills_then_the_fill_are_three_notifications(place, tick, channels, standin, committed):
    with committed():
        order = place("BUY", 10, 70_000)
    for volume in (3, 4, 100):
        with committed():
            order_fill_apply(tick=tick(70_000, volume))
    keys = list(Notification.objects.order_by("id").values_list("key", "event"))
    assert keys == [
        (f"order.{order.pk}.partial.3", "partial_fill"),
        (f"order.{order.pk}.partial.7", "partial_fill"),
        (f"order.{order.pk}.filled", "fill"),
    ]
    assert len(standin.slack) == 3


def test_cancel_and_rejection_are_told_only_to_channels_that_take_them(user, place, channels, standin, committed):
    from apps.notifications.services import channel_update
    from apps.trading.orders.release import order_cancel

    channel_update(user=user, channel_id=channels["slack"].pk, events=["cancel"])
    channel_update(user=user, channel_id=channels["telegram"].pk, events=["fill"])
    channel_update(user=user, channel_id=channels["email"].pk, enabled=False)
    with committed():
        order = place("BUY", 10, 70_000)
    with committed():
        order_cancel(order_id=order.pk, user=user)

    [notification] = Notification.objects.all()
    assert (notification.event, notification.key) == ("cancel", f"order.{order.pk}.cancelled")
    assert _statuses(notification) == {"slack": ("sent", 1)}
    assert standin.telegram == [] and mail.outbox == []


def test_a_rejected_order_is_told(user, account, channels, standin, committed):
    from apps.notifications.services import order_events_record

    snapshot = {
        "id": 77, "account_id": account.pk, "code": "005930", "name": "삼성전자", "side": "SELL", "quantity": 5,
        "filled_quantity": 0, "status": "REJECTED", "reject_reason": "not enough shares", "avg_fill_price": None,
    }  # fmt: skip
    with committed():
        assert order_events_record(snapshots=[snapshot, snapshot]) == 1
    [notification] = Notification.objects.all()
    assert notification.title == "[거부] 삼성전자 (005930) 매도 5주"
    assert notification.body == "주문 #77 · not enough shares"
    assert len(standin.slack) == 1


def test_a_trigger_hook_is_told(account, channels, standin, committed):
    from apps.notifications.services import order_events_record

    snapshot = {
        "id": 78, "account_id": account.pk, "code": "005930", "name": "삼성전자", "side": "SELL", "quantity": 5,
        "filled_quantity": 0, "status": "PENDING", "limit_price": None, "event": "trigger",
    }  # fmt: skip
    with committed():
        order_events_record(snapshots=[snapshot])
    assert Notification.objects.get().key == "order.78.triggered"


def test_nothing_is_recorded_without_a_verified_channel(user, account, standin, committed):
    from apps.notifications.services import channel_create

    channel_create(user=user, kind="slack", destination={"webhook_url": standin.webhook})  # not verified
    with committed():
        assert notification_record(user_id=user.pk, key="k1", event="fill", title="t") is None
    assert not Notification.objects.exists() and standin.slack == []


def test_rate_limit_defers_the_excess_and_the_flush_sends_it_later(
    user, channels, standin, settings, committed, clean_redis
):
    settings.NOTIFICATIONS_RATE_LIMIT = 2
    channels["email"].delete()
    channels["telegram"].delete()
    with committed():
        for n in range(4):
            notification_record(user_id=user.pk, key=f"k{n}", event="fill", title=f"t{n}")
    assert list(Delivery.objects.order_by("id").values_list("status", flat=True)) == [
        "sent",
        "sent",
        "deferred",
        "deferred",
    ]
    assert [m["text"] for m in standin.slack] == ["*t0*\n", "*t1*\n"]

    # still inside the window: the flush defers them again, nothing is sent twice or lost
    assert deliveries_deferred_flush() == 2
    assert len(standin.slack) == 2
    # the window has passed (its Redis key expired)
    clean_redis.delete(RATE_KEY.format(channel=channels["slack"].pk))
    assert deliveries_deferred_flush() == 2
    assert [m["text"] for m in standin.slack] == ["*t0*\n", "*t1*\n", "*t2*\n", "*t3*\n"]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}


@pytest.fixture
def retries_run_eagerly():
    """Eager Celery runs a task's retries in place only when it does not propagate errors (as a worker would,
    minus the back-off wait); the test settings propagate them."""
    from config.celery import app

    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = True


def test_server_errors_are_retried_with_backoff_and_client_errors_are_not(
    user, channels, standin, committed, retries_run_eagerly
):
    from apps.notifications.tasks import notifications_deliver

    channels["email"].delete()
    channels["telegram"].delete()
    standin.statuses = [503, 429, 200, 404]
    with committed():
        first = notification_record(user_id=user.pk, key="a", event="fill", title="a")
        second = notification_record(user_id=user.pk, key="b", event="fill", title="b")
    # eager Celery runs each retry at once; a worker waits retry_backoff (2, 4, ... s, jittered) first
    assert _statuses(first) == {"slack": ("sent", 3)}
    assert _statuses(second) == {"slack": ("failed", 1)}
    assert second.deliveries.get().last_error == "Slack webhook refused the message: HTTP 404"
    assert [m["text"] for m in standin.slack] == ["*a*\n"] * 3 + ["*b*\n"]
    assert (notifications_deliver.max_retries, notifications_deliver.retry_backoff) == (5, 2)
    assert "secretpart" not in second.deliveries.get().last_error


def test_a_delivery_that_keeps_failing_is_marked_failed_after_the_last_retry(
    user, channels, standin, committed, retries_run_eagerly
):
    channels["email"].delete()
    channels["slack"].delete()
    standin.statuses = [502] * 6
    with committed():
        notification = notification_record(user_id=user.pk, key="a", event="fill", title="a")
    assert _statuses(notification) == {"telegram": ("failed", 6)}  # the first try and five retries
    assert len(standin.telegram) == 6


def test_a_sent_delivery_is_never_sent_again(user, channels, standin, committed):
    channels["email"].delete()
    channels["telegram"].delete()
    with committed():
        notification = notification_record(user_id=user.pk, key="a", event="fill", title="a")
    delivery = notification.deliveries.get()
    assert delivery_send(delivery_id=delivery.pk) == DeliveryStatus.SENT
    assert delivery_send(delivery_id=delivery.pk) == DeliveryStatus.SENT
    assert len(standin.slack) == 1


def test_daily_summary_once_per_account_and_day(user, account, place, tick, channels, standin, committed):
    import datetime as dt

    with committed():
        place("BUY", 10, 70_000)
    with committed():
        order_fill_apply(tick=tick(70_000, 100))
    Notification.objects.all().delete()
    day = dt.date(2026, 3, 3)
    with committed():
        assert daily_summaries_record(day=day) == 1
        assert daily_summaries_record(day=day) == 0
    [summary] = Notification.objects.all()
    assert summary.key == f"summary.{account.pk}.2026-03-03"
    assert summary.body == (
        "체결 1건 · 매수 700,000원 · 매도 0원 · 실현손익 +0원 · 수수료 105원 · 세금 0원 · 예수금 9,299,895원"
    )
    assert standin.slack[-1]["text"].startswith("*[일일 요약] test 2026-03-03*\n체결 1건") and len(standin.slack) == 2


def test_the_history_page_lists_notifications_and_deliveries(client, user, channels, standin, committed):
    with committed():
        notification_record(user_id=user.pk, key="a", event="fill", title="[체결] 테스트", body="주문 #1")
    client.force_login(user)
    page = client.get("/notifications/").content.decode()
    assert "[체결] 테스트" in page and page.count('data-delivery-status="sent"') == 3
    assert "secretpart" not in page and BOT_TOKEN not in page
    history = client.get("/api/notifications/history").json()
    assert history["count"] == 1 and {d["kind"] for d in history["results"][0]["deliveries"]} == {
        "email",
        "slack",
        "telegram",
    }


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_browser_toast_through_the_consumer(async_db_cleanup, clean_redis):
    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth import get_user_model

    from apps.conditions.consumers import NotificationsConsumer
    from apps.notifications.services import channel_create

    user = await database_sync_to_async(get_user_model().objects.create_user)(username="toast", password="pw-12345678")
    await database_sync_to_async(channel_create)(user=user, kind="browser", destination={}, events=["fill"])
    toasts = WebsocketCommunicator(NotificationsConsumer.as_asgi(), "/ws/notifications/")
    toasts.scope["user"] = user
    assert (await toasts.connect())[0]

    await database_sync_to_async(notification_record)(
        user_id=user.pk, key="order.1.filled", event="fill", title="[체결] 삼성전자", body="주문 #1", url="/orders/"
    )
    toast = await toasts.receive_json_from(timeout=5)
    assert toast == {
        "type": "notification",
        "notification": {"title": "[체결] 삼성전자", "body": "주문 #1", "level": "info", "url": "/orders/"},
    }
    await database_sync_to_async(notification_record)(user_id=user.pk, key="order.1.filled", event="fill", title="x")
    await database_sync_to_async(notification_record)(
        user_id=user.pk, key="order.2.rejected", event="rejection", title="y"
    )
    assert await toasts.receive_nothing(timeout=0.5)  # the same event once; rejections not chosen
    await toasts.disconnect()
    statuses = await database_sync_to_async(lambda: list(Delivery.objects.values_list("status", flat=True)))()
    assert statuses == ["sent"]


def test_the_hook_queues_nothing_for_accounts_nobody_listens_to(user, account, django_user_model, standin):
    from apps.notifications.hooks import order_events_received
    from apps.notifications.services import channel_create, channel_update
    from apps.trading.accounts.services import paper_account_create

    filled = {
        "id": 1, "account_id": account.pk, "code": "005930", "name": "삼성전자", "side": "BUY", "quantity": 1,
        "filled_quantity": 1, "status": "FILLED", "avg_fill_price": "70000",
    }  # fmt: skip
    pending = {**filled, "id": 2, "status": "PENDING", "filled_quantity": 0}
    assert order_events_received(None, snapshots=[filled]) == 0  # no channel at all
    other = django_user_model.objects.create_user(username="other", password="pw-12345678")
    channel = channel_create(user=other, kind="browser", destination={})
    theirs = paper_account_create(user=other, name="x", initial_cash=1_000_000)
    assert order_events_received(None, snapshots=[filled]) == 0  # someone else listens
    assert order_events_received(None, snapshots=[filled, pending, {**filled, "account_id": theirs.pk}]) == 1
    channel_update(user=other, channel_id=channel.pk, enabled=False)  # seen at once: the version changed
    assert order_events_received(None, snapshots=[{**filled, "account_id": theirs.pk}]) == 0
    channel_create(user=user, kind="browser", destination={})
    assert order_events_received(None, snapshots=[filled, pending]) == 1


def test_a_channel_change_in_another_process_is_heard_of_within_the_recheck_delay(
    user, account, standin, settings, monkeypatch
):
    """Another process replaces the version token in Redis: this one keeps its copy for
    NOTIFICATIONS_LISTENERS_RECHECK seconds (no GET per fill batch), then reloads who listens."""
    import uuid

    from django.utils import timezone

    from apps.core import process_cache
    from apps.core.redis import get_redis
    from apps.notifications import hooks
    from apps.notifications.models import Channel

    clock = [1000.0]
    monkeypatch.setattr(process_cache.time, "monotonic", lambda: clock[0])
    settings.NOTIFICATIONS_LISTENERS_RECHECK = 1.0
    filled = {
        "id": 1, "account_id": account.pk, "code": "005930", "name": "삼성전자", "side": "BUY", "quantity": 1,
        "filled_quantity": 1, "status": "FILLED", "avg_fill_price": "70000",
    }  # fmt: skip
    assert hooks.order_events_received(None, snapshots=[filled]) == 0  # nobody listens; token read now
    Channel.objects.create(owner=user, kind="browser", label="browser", enabled=True, verified_at=timezone.now())
    get_redis().set(hooks.VERSION_KEY, uuid.uuid4().hex)  # as channels_changed() in another process
    clock[0] += 0.5
    assert hooks.order_events_received(None, snapshots=[filled]) == 0  # within the delay: the copy
    clock[0] += 0.6
    assert hooks.order_events_received(None, snapshots=[filled]) == 1  # after it: reloaded


def test_the_trigger_announcement_of_trading_reaches_the_channels(place, channels, standin, committed):
    from apps.trading.orders.realtime import order_trigger_announce_on_commit

    with committed():
        order = place("BUY", 5, 69_000)
    with committed():
        order_trigger_announce_on_commit(order)
    told = Notification.objects.get(event="trigger")
    assert (told.key, told.title) == (f"order.{order.pk}.triggered", "[발동] Stock 005930 (005930) 매수 5주")
    assert told.body == f"조건 주문 #{order.pk} 발동 · 지정가 69,000원"
    assert standin.slack[-1]["text"].startswith("*[발동]")


def test_the_daily_summary_job_runs_on_sessions_only(user, account, channels):
    from apps.notifications.tasks import notifications_daily_summaries

    assert notifications_daily_summaries.apply(kwargs={"day": "2026-03-07"}).get() == 0  # a Saturday
    assert notifications_daily_summaries.apply(kwargs={"day": "2026-03-03"}).get() == 1


def test_the_periodic_jobs_are_in_the_beat_schedule(settings):
    from django.core.management import call_command
    from django_celery_beat.models import PeriodicTask

    settings.MARKET_BROKER = "kis"
    call_command("sync_schedules")
    flush = PeriodicTask.objects.get(task="notifications.deferred_flush")
    assert (flush.interval.every, flush.interval.period, flush.expire_seconds) == (60, "seconds", 55)
    summary = PeriodicTask.objects.get(task="notifications.daily_summaries")
    assert (summary.crontab.minute, summary.crontab.hour, summary.crontab.day_of_week) == ("40", "16", "1-5")
    assert str(summary.crontab.timezone) == "Asia/Seoul"
    snapshots = PeriodicTask.objects.get(task="portfolio.snapshots_record")
    assert (snapshots.crontab.minute, snapshots.crontab.hour, snapshots.crontab.day_of_week) == ("45", "16", "1-5")


def test_a_delivery_interrupted_while_sending_is_marked_failed_not_resent(user, channels, standin, committed):
    import datetime as dt

    from django.utils import timezone

    channels["email"].delete()
    channels["telegram"].delete()
    with committed():
        notification = notification_record(user_id=user.pk, key="a", event="fill", title="a")
    delivery = notification.deliveries.get()
    Delivery.objects.filter(pk=delivery.pk).update(
        status="sending", updated_at=timezone.now() - dt.timedelta(minutes=5)
    )
    deliveries_deferred_flush()
    assert Delivery.objects.get(pk=delivery.pk).status == "sending"  # maybe still in flight
    Delivery.objects.filter(pk=delivery.pk).update(updated_at=timezone.now() - dt.timedelta(minutes=11))
    deliveries_deferred_flush()
    assert (Delivery.objects.get(pk=delivery.pk).status, len(standin.slack)) == ("failed", 1)
    assert delivery_send(delivery_id=delivery.pk) == "failed"
