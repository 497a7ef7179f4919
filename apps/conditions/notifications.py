"""Notifications of condition events, sent after the event committed.

For each recorded event:
1. The conditions page is updated: ``condition.event`` to the group ``conditions.<condition pk>`` with the
   event and the condition's full member list (a snapshot, so a page that missed a message is right again
   with the next one). Always sent; never deduplicated.
2. The owner is notified through the channels the condition has turned on: browser toasts (group
   ``user.<id>.notifications``, event ``notification.message``), e-mail and Slack (Celery tasks, never in
   the request or feed path). Before that, in Redis:
   - dedupe: the same stock and kind of one condition within ``CONDITIONS_DEDUPE_WINDOW`` seconds is notified
     once (a stock flickering in and out of a condition is not a stream of alerts);
   - rate limit: at most ``CONDITIONS_RATE_LIMIT`` per condition in any 60 s (sliding window on Redis server
     time); the excess is queued and sent as one summary by ``condition_summaries_flush`` (run by the 30 s
     job), so nothing is silently lost.
Redis trouble never blocks an event: the checks fail open (the notification is sent) with a warning.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from django.conf import settings

from apps.core import realtime
from apps.core.groups import condition_group, user_notifications_group
from apps.core.krx.calendar import KST
from apps.core.redis import get_redis

from .models import Condition, ConditionEvent, ConditionMember, EventKind

logger = logging.getLogger(__name__)

PAGE_EVENT = "condition.event"
NOTIFICATION_EVENT = "notification.message"
RATE_WINDOW = 60  # seconds: the rate limit is "per minute"
SUMMARY_MAX_ITEMS = 200  # suppressed items kept per condition until the next summary (the rest only counted)

DEDUPE_KEY = "hoga:conditions:dedupe:{condition}:{code}:{kind}"
RATE_KEY = "hoga:conditions:rate:{condition}"  # sorted set of admitted notifications, scored by time
SUPPRESSED_KEY = "hoga:conditions:suppressed:{condition}"  # list of JSON items awaiting the summary
SUPPRESSED_COUNT_KEY = "hoga:conditions:suppressed-count:{condition}"
SUPPRESSED_INDEX = "hoga:conditions:suppressed"  # set of condition ids with a pending summary

# Sliding-window admission on Redis server time: drop entries older than the window, admit when below the
# limit. Atomic, so web servers and workers on several machines share one limit per condition.
_RATE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1]) * 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 1000 + 1000)
  return 1
end
return 0
"""


# --- snapshots -------------------------------------------------------------------------------------------


def event_snapshot(event: ConditionEvent) -> dict:
    return {
        "id": event.pk,
        "condition": event.condition_id,
        "code": event.code,
        "name": event.name,
        "kind": event.kind,
        "at": event.at.astimezone(_kst()).isoformat(),
        "price": event.price,
        "source": event.source,
    }


def member_snapshot(member: ConditionMember) -> dict:
    return {
        "code": member.code,
        "name": member.name,
        "since": member.since.astimezone(_kst()).isoformat(),
        "price_in": member.price_in,
        "event": member.entered_event_id,
    }


def _kst():

    return KST


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    level: str  # "info" (IN) | "warning" (OUT) | "summary"
    url: str = "/conditions/"

    def as_dict(self, **extra) -> dict:
        return {"title": self.title, "body": self.body, "level": self.level, "url": self.url, **extra}


def event_message(event: ConditionEvent, condition: Condition) -> Message:
    verb = "편입" if event.kind == EventKind.IN else "이탈"
    who = f"{event.name} ({event.code})" if event.name else event.code
    when = event.at.astimezone(_kst()).strftime("%H:%M:%S")
    price = f" {event.price:,}원" if event.price else ""
    how = "" if event.source == "realtime" else " · 조회로 확인"
    return Message(
        title=f"[{condition.name}] {verb}: {who}",
        body=f"{when} KST{price}{how}",
        level="info" if event.kind == EventKind.IN else "warning",
    )


# --- the after-commit entry point -------------------------------------------------------------------------


def condition_events_notify(*, event_ids: list[int]) -> dict[str, int]:
    """Push the page updates and send the admitted notifications of committed events; return counts."""
    counts = {"page": 0, "sent": 0, "duplicate": 0, "suppressed": 0}
    events = list(ConditionEvent.objects.select_related("condition__owner").filter(id__in=event_ids).order_by("id"))
    for event in events:
        condition = event.condition
        counts["page"] += page_push(condition_id=condition.pk, event=event)
        if not (condition.notify_browser or condition.notify_email or condition.notify_slack):
            continue
        verdict = _admit(event)
        counts[verdict] += 1
        if verdict == "sent":
            deliver(condition=condition, message=event_message(event, condition), event=event)
    return counts


def page_push(*, condition_id: int, event: ConditionEvent | None = None) -> int:
    if not realtime.layer_configured():
        return 0
    members = [member_snapshot(m) for m in ConditionMember.objects.filter(condition_id=condition_id)]
    payload = {
        "type": PAGE_EVENT,
        "condition": condition_id,
        "event": event_snapshot(event) if event is not None else None,
        "members": members,
    }
    # the channel layer is not a durable queue: on a failure the page re-reads on reload
    return int(realtime.group_send_now(condition_group(condition_id), payload, what="condition page push"))


def deliver(*, condition: Condition, message: Message, event: ConditionEvent | None = None) -> list[str]:
    """Send one message through the condition's channels; return the channels used."""
    from .tasks import conditions_send_email, conditions_send_slack  # deferred: the tasks call the senders here

    used = []
    extra = {"condition": condition.pk, "event": event_snapshot(event) if event is not None else None}
    if condition.notify_browser and _browser_push(condition.owner_id, message.as_dict(**extra)):
        used.append("browser")
    if condition.notify_email:
        recipients = condition.recipients()
        if not recipients:
            logger.warning("condition e-mail on but no address known", extra={"condition": condition.pk})
        elif _enqueue(
            conditions_send_email, subject=f"[Hoga] {message.title}", body=message.body, recipients=recipients
        ):
            used.append("email")
    if condition.notify_slack:
        if not settings.CONDITIONS_SLACK_WEBHOOK_URL:
            logger.warning(
                "condition Slack on but CONDITIONS_SLACK_WEBHOOK_URL is empty", extra={"condition": condition.pk}
            )
        elif _enqueue(conditions_send_slack, text=f"*{message.title}*\n{message.body}"):
            used.append("slack")
    return used


def _enqueue(task, **kwargs) -> bool:
    """Queue one delivery task; a broker failure is logged and never blocks the other channels."""
    try:
        task.delay(**kwargs)
    except Exception:
        logger.exception("could not queue a condition notification", extra={"task": task.name})
        return False
    return True


def _browser_push(user_id: int, notification: dict) -> bool:
    return realtime.group_send_now(
        user_notifications_group(user_id),
        {"type": NOTIFICATION_EVENT, "notification": notification},
        what="browser notification push",
    )


# --- dedupe, rate limit, summaries -----------------------------------------------------------------------


def _admit(event: ConditionEvent) -> str:
    """``sent`` | ``duplicate`` | ``suppressed`` (queued for the summary)."""

    redis = get_redis()
    condition_id = event.condition_id
    try:
        fresh = redis.set(
            DEDUPE_KEY.format(condition=condition_id, code=event.code, kind=event.kind),
            event.pk,
            nx=True,
            ex=max(1, settings.CONDITIONS_DEDUPE_WINDOW),
        )
        if not fresh:
            return "duplicate"
        admitted = redis.eval(
            _RATE_SCRIPT,
            1,
            RATE_KEY.format(condition=condition_id),
            RATE_WINDOW,
            settings.CONDITIONS_RATE_LIMIT,
            event.pk,
        )
        if admitted:
            return "sent"
        item = json.dumps({"code": event.code, "name": event.name, "kind": event.kind, "id": event.pk})
        pipe = redis.pipeline()
        pipe.rpush(SUPPRESSED_KEY.format(condition=condition_id), item)
        pipe.ltrim(SUPPRESSED_KEY.format(condition=condition_id), 0, SUMMARY_MAX_ITEMS - 1)
        pipe.incr(SUPPRESSED_COUNT_KEY.format(condition=condition_id))
        pipe.sadd(SUPPRESSED_INDEX, condition_id)
        pipe.execute()
        return "suppressed"
    except Exception:
        logger.warning("notification dedupe/rate limit unavailable (Redis); sending", extra={"event": event.pk})
        return "sent"


def condition_summaries_flush() -> int:
    """Send one summary per condition with suppressed notifications; return how many were sent.

    Each condition's queue is taken atomically (MULTI), so two flushes never summarise one item twice.
    """

    redis = get_redis()
    sent = 0
    for raw_id in sorted(redis.smembers(SUPPRESSED_INDEX)):
        condition_id = int(raw_id)
        pipe = redis.pipeline(transaction=True)
        pipe.lrange(SUPPRESSED_KEY.format(condition=condition_id), 0, -1)
        pipe.getdel(SUPPRESSED_COUNT_KEY.format(condition=condition_id))
        pipe.delete(SUPPRESSED_KEY.format(condition=condition_id))
        pipe.srem(SUPPRESSED_INDEX, condition_id)
        raw_items, raw_count, _, _ = pipe.execute()
        items = [json.loads(raw) for raw in raw_items]
        count = int(raw_count or 0)
        if not count:
            continue
        condition = Condition.objects.select_related("owner").filter(pk=condition_id).first()
        if condition is None:
            continue
        message = summary_message(condition, items, count)
        deliver(condition=condition, message=message)
        sent += 1
    return sent


def summary_message(condition: Condition, items: list[dict], count: int) -> Message:
    entered = [i for i in items if i["kind"] == EventKind.IN]
    left = [i for i in items if i["kind"] == EventKind.OUT]

    def names(group: list[dict]) -> str:
        shown = [f"{i['name'] or i['code']}" for i in group[:10]]
        more = len(group) - len(shown)
        return ", ".join(shown) + (f" 외 {more}" if more > 0 else "")

    parts = []
    if entered:
        parts.append(f"편입 {len(entered)}: {names(entered)}")
    if left:
        parts.append(f"이탈 {len(left)}: {names(left)}")
    if count > len(items):
        parts.append(f"(전체 {count}건)")
    return Message(
        title=f"[{condition.name}] 알림 {count}건 요약 (분당 {settings.CONDITIONS_RATE_LIMIT}건 초과)",
        body=" · ".join(parts),
        level="summary",
    )


# --- delivery bodies (run inside Celery tasks) ------------------------------------------------------------


class SlackTransientError(Exception):
    """A webhook failure worth retrying: network error, timeout, 429 or 5xx."""


def slack_post(*, text: str) -> int:
    """POST one message to the incoming webhook; return the HTTP status.

    Network errors, 429 and 5xx raise ``SlackTransientError`` (retried by the task); other 4xx (a revoked
    or wrong webhook) are logged and not retried. The webhook URL is a secret and never logged.
    """
    import httpx

    url = settings.CONDITIONS_SLACK_WEBHOOK_URL
    if not url:
        logger.warning("Slack notification dropped: CONDITIONS_SLACK_WEBHOOK_URL is empty")
        return 0
    try:
        response = httpx.post(url, json={"text": text}, timeout=settings.CONDITIONS_SLACK_TIMEOUT)
    except httpx.HTTPError as exc:
        raise SlackTransientError(f"Slack webhook unreachable: {type(exc).__name__}") from None
    if response.status_code == 429 or response.status_code >= 500:
        raise SlackTransientError(f"Slack webhook answered {response.status_code}")
    if response.status_code >= 400:
        logger.error(
            "Slack webhook refused the message; check CONDITIONS_SLACK_WEBHOOK_URL",
            extra={"status": response.status_code, "answer": response.text[:200]},
        )
    return response.status_code


def email_send(*, subject: str, body: str, recipients: list[str]) -> int:
    from django.core.mail import send_mail

    return send_mail(subject, body, settings.CONDITIONS_EMAIL_FROM, recipients, fail_silently=False)
