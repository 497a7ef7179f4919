"""Notification tasks (queue ``default``). Thin: each takes ids or snapshots and calls one service.

- ``notifications.order_events``: records the notifications of committed order snapshots (from the hook);
- ``notifications.deliver``: sends one delivery; retried with exponential back-off (2, 4, 8 ... s, at most
  300 s, jittered) on network errors, 429 and 5xx, at most ``max_retries`` times, then marked failed;
  idempotent (the delivery row is claimed before sending), so ``acks_late`` is safe;
- ``notifications.deferred_flush``: every minute, re-queues deliveries the rate limit held back;
- ``notifications.daily_summaries``: after the close on trading days, one summary per subscribed account.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery import shared_task

from apps.core.krx.calendar import now_kst
from apps.marketdata.selectors import krx_calendar

from .senders import TransientSendError
from .services import daily_summaries_record, deliveries_deferred_flush, delivery_send, order_events_record

logger = logging.getLogger(__name__)


def notification_schedules(market_broker: str) -> list[dict[str, Any]]:
    """Periodic jobs (registered with :func:`apps.core.schedules.register_schedules`)."""
    return [
        {
            "name": "notifications: re-send deliveries held by the rate limit",
            "task": "notifications.deferred_flush",
            "interval": {"every": 60, "period": "seconds"},  # the rate window is per minute
            "expires": 55,
        },
        {
            "name": "notifications: daily summary",
            "task": "notifications.daily_summaries",
            # 16:40 KST Mon-Fri (https://crontab.guru/#40_16_*_*_1-5): after the close (15:30, 16:30 on CSAT
            # day) and the daily-bar collection; the task skips days that are not trading days
            "crontab": {"minute": "40", "hour": "16", "day_of_week": "1-5"},
            "expires": 3600,
        },
    ]


@shared_task(bind=True, name="notifications.order_events", ignore_result=True, acks_late=True)
def notifications_order_events(self, snapshots: list[dict]) -> int:
    """Record the notifications of committed order snapshots (idempotent on each event's key)."""
    return order_events_record(snapshots=snapshots)


@shared_task(
    bind=True,
    name="notifications.deliver",
    autoretry_for=(TransientSendError,),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
    acks_late=True,
)
def notifications_deliver(self, delivery_id: int) -> str:
    """Send one delivery at most once (see :func:`delivery_send`); the last retry marks it failed."""
    return delivery_send(delivery_id=delivery_id, final_attempt=self.request.retries >= self.max_retries)


@shared_task(bind=True, name="notifications.deferred_flush", expires=55, ignore_result=True)
def notifications_deferred_flush(self) -> int:
    return deliveries_deferred_flush()


@shared_task(bind=True, name="notifications.daily_summaries", ignore_result=True)
def notifications_daily_summaries(self, day: str | None = None) -> int:
    """The day's summaries, on trading days only (the KRX calendar); ``day`` (ISO) for a past day."""
    target = dt.date.fromisoformat(day) if day else now_kst().date()
    if not krx_calendar().is_trading_day(target):
        return 0
    return daily_summaries_record(day=target)
