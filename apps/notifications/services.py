"""Notification services: channels (create, verify, change, delete), recording events, sending deliveries.

Invariants:
- one notification per ``(user, event key)`` and one delivery per ``(notification, channel)`` (unique
  constraints; recording the same event twice creates nothing new and queues nothing);
- a delivery is claimed (``pending``/``retrying``/``deferred`` -> ``sending``) under its row lock before the
  message leaves, so concurrent or repeated tasks send it at most once; only a crash between the send and
  the ``sent`` mark leaves it ``sending`` (not re-sent: at most once wins over at least once for alerts);
- at most ``NOTIFICATIONS_RATE_LIMIT`` messages per channel per ``NOTIFICATIONS_RATE_WINDOW`` seconds (a
  sliding window on Redis server time, shared by every worker); the excess waits as ``deferred`` and is
  re-queued by the periodic flush, so nothing is dropped; Redis trouble fails open (the message is sent);
- tasks are queued after the commit (``delay_on_commit``), never from inside an open transaction.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.crypto import salted_hmac

from apps.core import realtime
from apps.core.exceptions import ApplicationError, NotFound, ValidationFailed
from apps.core.groups import user_notifications_group
from apps.core.ratelimits import over_limit
from apps.core.redis import get_redis
from apps.trading.accounts.models import PaperAccount, VerifiedEmail
from apps.trading.orders.models import Execution

from . import crypto, senders
from .hooks import channels_changed
from .models import ALL_EVENTS, Channel, ChannelKind, Delivery, DeliveryStatus, EventKind, Notification

logger = logging.getLogger(__name__)

CODE_DIGITS = 6
MAX_CHANNELS = 20  # per user: enough for every kind several times; bounds what one account can create
MAX_VERIFY_ATTEMPTS = 5  # wrong codes before a new code must be sent
NOTIFICATION_EVENT = "notification.message"  # handled by NotificationsConsumer (toasts, /ws/notifications/)
RATE_KEY = "hoga:notifications:rate:{channel}"

# Sliding-window admission on Redis server time (as the condition alerts' limiter): atomic across workers.
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


class ChannelUnreachable(ApplicationError):
    status_code = 400
    default_code = "channel_unreachable"


class VerificationFailed(ValidationFailed):
    default_code = "verification_failed"


class TooManyRequests(ApplicationError):
    status_code = 429
    default_code = "too_many_requests"


# --- channels ----------------------------------------------------------------------------------------------


def _events_clean(events: Iterable[str] | None) -> list[str]:
    if events is None:
        return list(ALL_EVENTS)
    if isinstance(events, str) or not all(isinstance(e, str) for e in events):
        raise ValidationFailed("events must be a list of event kinds", fields={"events": ["not a list of names"]})
    chosen = list(dict.fromkeys(events))
    unknown = [e for e in chosen if e not in ALL_EVENTS]
    if unknown:
        raise ValidationFailed(
            "unknown event kind", code="unknown_event", fields={"events": [f"unknown: {', '.join(unknown[:5])}"]}
        )
    return chosen


def _mask(secret: str, keep: int = 4) -> str:
    return "…" + secret[-keep:] if len(secret) > keep else "…"


def _destination(kind: str, data: dict[str, Any], user) -> tuple[dict[str, str], str]:
    """The validated destination to encrypt and its masked label."""
    try:
        if kind == ChannelKind.BROWSER:
            return {}, "이 브라우저의 알림 (browser toasts)"
        if kind == ChannelKind.EMAIL:
            address = senders.email_check(str(data.get("address", "")))
            return {"address": address}, address
        if kind == ChannelKind.SLACK:
            url = senders.slack_webhook_check(str(data.get("webhook_url", "")))
            return {"webhook_url": url}, f"Slack webhook {_mask(url)}"
        if kind == ChannelKind.TELEGRAM:
            token, chat = senders.telegram_check(str(data.get("bot_token", "")), str(data.get("chat_id", "")))
            return {"bot_token": token, "chat_id": chat}, f"Telegram chat {chat} (bot {_mask(token)})"
    except senders.BadDestination as exc:
        raise ValidationFailed(str(exc), code="bad_destination") from None
    raise ValidationFailed("unknown channel kind", code="unknown_kind", fields={"kind": ["unknown"]})


@transaction.atomic
def channel_create(*, user, kind: str, destination: dict[str, Any], events: Iterable[str] | None = None) -> Channel:
    """A new channel of ``user``. Browser channels are verified at once (they reach only this user's own
    logged-in pages), as is an e-mail channel to the address the user already verified; the others wait for
    :func:`channel_verification_send` and :func:`channel_verify`."""
    if not isinstance(destination, dict):
        raise ValidationFailed("destination must be an object", fields={"destination": ["not an object"]})
    secret, label = _destination(kind, destination, user)
    chosen = _events_clean(events)
    # the owner's row serialises concurrent creations, so the per-user cap holds
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    if Channel.objects.filter(owner=user).count() >= MAX_CHANNELS:
        raise ValidationFailed(f"at most {MAX_CHANNELS} channels", code="too_many_channels")
    verified_at = None
    if kind == ChannelKind.BROWSER:
        verified_at = timezone.now()
    elif kind == ChannelKind.EMAIL:
        known = VerifiedEmail.objects.filter(user=user).values_list("email", flat=True).first()
        if known and known.lower() == secret["address"].lower():
            verified_at = timezone.now()
    channel = Channel(
        owner=user, kind=kind, label=label[:120], secret=crypto.encrypt(secret) if secret else "", events=chosen,
        verified_at=verified_at,
    )  # fmt: skip
    channel.full_clean()
    channel.save()
    channels_changed()
    return channel


@transaction.atomic
def channel_update(
    *, user, channel_id: int, events: Iterable[str] | None = None, enabled: bool | None = None
) -> Channel:
    channel = _owned(user, channel_id, lock=True)
    if events is not None:
        channel.events = _events_clean(events)
    if enabled is not None:
        channel.enabled = bool(enabled)
    channel.full_clean()
    channel.save(update_fields=["events", "enabled", "updated_at"])
    channels_changed()
    return channel


@transaction.atomic
def channel_delete(*, user, channel_id: int) -> None:
    _owned(user, channel_id, lock=True).delete()
    channels_changed()


def _owned(user, channel_id: int, *, lock: bool = False) -> Channel:
    qs = Channel.objects.filter(owner=user, pk=channel_id)
    channel = (qs.select_for_update() if lock else qs).first()
    if channel is None:
        raise NotFound("no such channel", code="channel_not_found")
    return channel


def _code_hash(channel: Channel, code: str) -> str:
    return salted_hmac("hoga.notifications.verify", f"{channel.pk}:{code}").hexdigest()


def channel_verification_send(*, user, channel_id: int) -> Channel:
    """Send a fresh verification code through the channel itself; the user types it back.

    At most one code per ``NOTIFICATIONS_VERIFY_INTERVAL`` seconds per channel (429 otherwise). The code is
    stored only as an HMAC; sending happens outside the row lock (a slow webhook holds no lock)."""
    with transaction.atomic():
        channel = _owned(user, channel_id, lock=True)
        if channel.kind == ChannelKind.BROWSER:
            raise ValidationFailed("browser channels need no verification", code="no_verification")
        now = timezone.now()
        if channel.verification_sent_at and now - channel.verification_sent_at < timedelta(
            seconds=settings.NOTIFICATIONS_VERIFY_INTERVAL
        ):
            raise TooManyRequests("a code was sent moments ago; wait before asking again")
        # per user over all channels: deleting and re-adding a channel gives no fresh allowance of messages
        if over_limit("notify-verify", str(user.pk), limit=settings.NOTIFICATIONS_VERIFY_RATE_PER_HOUR, window=3600):
            raise TooManyRequests("too many verification codes this hour; try again later", code="too_many_codes")
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        channel.verification_hash = _code_hash(channel, code)
        channel.verification_sent_at = now
        channel.verification_attempts = 0
        channel.save(update_fields=["verification_hash", "verification_sent_at", "verification_attempts", "updated_at"])
    title = "Hoga 알림 채널 확인 (verification)"
    body = f"확인 코드 (code): {code}\n{settings.NOTIFICATIONS_VERIFY_TTL // 60}분 안에 Hoga에 입력하세요."
    try:
        _send(channel, title=title, body=body, url="/notifications/")
    except (senders.TransientSendError, senders.PermanentSendError) as exc:
        # nothing reached the user: they may ask again at once (the code sent is void)
        Channel.objects.filter(pk=channel.pk).update(verification_hash="", verification_sent_at=None)
        raise ChannelUnreachable(f"the verification message could not be sent: {exc}") from None
    return channel


def channel_verify(*, user, channel_id: int, code: str) -> Channel:
    """Check the code the user typed back; at most ``MAX_VERIFY_ATTEMPTS`` wrong codes per sent code (the
    count is kept: the check commits before the error is raised)."""
    code = str(code or "").strip()
    with transaction.atomic():
        channel = _owned(user, channel_id, lock=True)
        if channel.verified:
            return channel
        if not channel.verification_hash or not channel.verification_sent_at:
            raise VerificationFailed("no code was sent for this channel yet", code="no_code_sent")
        if timezone.now() - channel.verification_sent_at > timedelta(seconds=settings.NOTIFICATIONS_VERIFY_TTL):
            raise VerificationFailed("the code expired; send a new one", code="code_expired")
        if channel.verification_attempts >= MAX_VERIFY_ATTEMPTS:
            raise VerificationFailed("too many wrong codes; send a new one", code="too_many_attempts")
        right = (
            len(code) == CODE_DIGITS
            and code.isdigit()
            and hmac.compare_digest(channel.verification_hash, _code_hash(channel, code))
        )
        if right:
            channel.verified_at = timezone.now()
            channel.verification_hash = ""
            channel.save(update_fields=["verified_at", "verification_hash", "updated_at"])
            channels_changed()
            return channel
        channel.verification_attempts += 1  # under the row lock
        channel.save(update_fields=["verification_attempts", "updated_at"])
    left = max(0, MAX_VERIFY_ATTEMPTS - channel.verification_attempts)
    raise VerificationFailed(f"wrong code ({left} attempts left)", code="wrong_code", fields={"code": ["wrong code"]})


# --- recording events -------------------------------------------------------------------------------------


def _subscribed(user_id: int, event: str) -> list[Channel]:
    return [
        c
        for c in Channel.objects.filter(owner_id=user_id, enabled=True, verified_at__isnull=False).order_by("id")
        if event in (c.events or [])
    ]


def notification_record(
    *, user_id: int, key: str, event: str, title: str, body: str = "", url: str = ""
) -> Notification | None:
    """Record one event for one user and queue its deliveries after the commit.

    Nothing happens when no enabled, verified channel of the user takes ``event``; recording an event whose
    key is already known returns None and queues nothing (the event is told once)."""
    channels = _subscribed(user_id, event)
    if not channels:
        return None
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                user_id=user_id, key=key[:120], event=event, title=title[:200], body=body, url=url[:200]
            )
            deliveries = Delivery.objects.bulk_create(
                [Delivery(notification=notification, channel=c) for c in channels]
            )
    except IntegrityError:
        return None  # already recorded: the unique (user, key) made this call a no-op
    from .tasks import notifications_deliver  # deferred: the task module imports these services

    for delivery in deliveries:
        notifications_deliver.delay_on_commit(delivery.pk)
    return notification


def _side(side: str) -> str:
    return "매수" if side == "BUY" else "매도"


def _who(s: dict) -> str:
    return f"{s.get('name') or s['code']} ({s['code']})"


def order_event_message(snapshot: dict) -> tuple[str, str, str, str] | None:
    """``(event kind, key, title, body)`` for an order snapshot worth telling, else None."""
    oid, status = snapshot["id"], snapshot["status"]
    side, qty, filled = _side(snapshot["side"]), snapshot["quantity"], snapshot["filled_quantity"]
    avg = snapshot.get("avg_fill_price")
    avg_text = f" · 평균 {int(float(avg)):,}원" if avg else ""
    if snapshot.get("event") == "trigger":
        price = snapshot.get("limit_price")
        return (
            EventKind.TRIGGER, f"order.{oid}.triggered", f"[발동] {_who(snapshot)} {_side(snapshot['side'])} {qty:,}주",
            f"조건 주문 #{oid} 발동" + (f" · 지정가 {price:,}원" if price else " · 시장가"),
        )  # fmt: skip
    if status == "FILLED":
        return (
            EventKind.FILL,
            f"order.{oid}.filled",
            f"[체결] {_who(snapshot)} {side} {qty:,}주",
            f"주문 #{oid}{avg_text}",
        )
    if status == "PARTIALLY_FILLED":
        return (
            EventKind.PARTIAL_FILL, f"order.{oid}.partial.{filled}",
            f"[부분체결] {_who(snapshot)} {side} {filled:,}/{qty:,}주", f"주문 #{oid}{avg_text}",
        )  # fmt: skip
    if status == "REJECTED":
        reason = snapshot.get("reject_reason") or ""
        return (
            EventKind.REJECTION,
            f"order.{oid}.rejected",
            f"[거부] {_who(snapshot)} {side} {qty:,}주",
            f"주문 #{oid} · {reason}",
        )
    if status == "CANCELLED":
        return (
            EventKind.CANCEL, f"order.{oid}.cancelled", f"[취소] {_who(snapshot)} {side} {qty:,}주",
            f"주문 #{oid} · 체결 {filled:,}/{qty:,}주",
        )  # fmt: skip
    return None


def order_events_record(*, snapshots: list[dict]) -> int:
    """Record the notifications of committed order snapshots (from the order push); return how many are new."""
    told = [(s, m) for s in snapshots if isinstance(s, dict) and (m := order_event_message(s)) is not None]
    if not told:
        return 0
    owners = dict(PaperAccount.objects.filter(id__in={s["account_id"] for s, _ in told}).values_list("id", "user_id"))
    created = 0
    for snapshot, (event, key, title, body) in told:
        user_id = owners.get(snapshot["account_id"])
        if user_id is not None and notification_record(
            user_id=user_id, key=key, event=event, title=title, body=body, url="/orders/"
        ):
            created += 1
    return created


def daily_summaries_record(*, day: date) -> int:
    """One summary per account of each user subscribed to ``daily_summary``: the day's executions, amounts,
    realized P&L, fees and taxes (orders of trading date ``day``). Keyed ``summary.<account>.<day>``."""
    user_ids = {
        c.owner_id
        for c in Channel.objects.filter(enabled=True, verified_at__isnull=False)
        if EventKind.DAILY_SUMMARY in c.events
    }
    created = 0
    for account in PaperAccount.objects.filter(user_id__in=user_ids).order_by("id"):
        totals = Execution.objects.filter(account=account, order__trading_date=day).aggregate(
            n=Count("id"),
            bought=Sum("amount", filter=Q(side="BUY")),
            sold=Sum("amount", filter=Q(side="SELL")),
            realized=Sum("realized_pnl"),
            fees=Sum("commission"),
            taxes=Sum("tax"),
        )
        t = {k: v or 0 for k, v in totals.items()}
        body = (
            f"체결 {t['n']}건 · 매수 {t['bought']:,}원 · 매도 {t['sold']:,}원 · 실현손익 {t['realized']:+,}원 · "
            f"수수료 {t['fees']:,}원 · 세금 {t['taxes']:,}원 · 예수금 {account.cash:,}원"
        )
        if notification_record(
            user_id=account.user_id, key=f"summary.{account.pk}.{day.isoformat()}", event=EventKind.DAILY_SUMMARY,
            title=f"[일일 요약] {account.name} {day.isoformat()}", body=body, url="/portfolio/",
        ):  # fmt: skip
            created += 1
    return created


# --- sending ----------------------------------------------------------------------------------------------


def _admit(channel_id: int, delivery_id: int) -> bool:
    try:
        return bool(
            get_redis().eval(
                _RATE_SCRIPT,
                1,
                RATE_KEY.format(channel=channel_id),
                settings.NOTIFICATIONS_RATE_WINDOW,
                settings.NOTIFICATIONS_RATE_LIMIT,
                delivery_id,
            )  # fmt: skip
        )
    except Exception:
        logger.warning("notification rate limit unavailable (Redis); sending", extra={"delivery": delivery_id})
        return True


def _send(channel: Channel, *, title: str, body: str, url: str) -> None:
    """One message through one channel (raises the senders' errors)."""
    data = crypto.decrypt(channel.secret)
    if channel.kind == ChannelKind.BROWSER:
        sent = realtime.group_send_now(
            user_notifications_group(channel.owner_id),
            {"type": NOTIFICATION_EVENT, "notification": {"title": title, "body": body, "level": "info", "url": url}},
            what="notification toast",
        )
        if not sent:
            raise senders.PermanentSendError("no channel layer (toasts are best-effort, not retried)")
    elif not data:
        raise senders.PermanentSendError("the channel's destination cannot be read; set the channel up again")
    elif channel.kind == ChannelKind.EMAIL:
        senders.email_send(address=data["address"], title=title, body=body)
    elif channel.kind == ChannelKind.SLACK:
        senders.slack_send(webhook_url=data["webhook_url"], title=title, body=body)
    elif channel.kind == ChannelKind.TELEGRAM:
        senders.telegram_send(bot_token=data["bot_token"], chat_id=data["chat_id"], title=title, body=body)


CLAIMABLE = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.DEFERRED)


def delivery_send(*, delivery_id: int, final_attempt: bool = False) -> str:
    """Send one delivery once; return its status afterwards.

    Raises :class:`senders.TransientSendError` (after marking the delivery ``retrying``) for the task to
    retry with back-off, unless ``final_attempt``: then the delivery is marked ``failed``."""
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(of=("self",))
            .select_related("notification", "channel")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None:
            return "missing"
        if delivery.status not in CLAIMABLE:
            return delivery.status  # already sent, being sent, failed or skipped: never twice
        channel = delivery.channel
        if not channel.enabled or not channel.verified:
            delivery.status = DeliveryStatus.SKIPPED
            delivery.save(update_fields=["status", "updated_at"])
            return delivery.status
        if not _admit(channel.pk, delivery.pk):
            delivery.status = DeliveryStatus.DEFERRED
            delivery.save(update_fields=["status", "updated_at"])
            return delivery.status
        delivery.status = DeliveryStatus.SENDING
        delivery.attempts += 1  # under the row lock
        delivery.save(update_fields=["status", "attempts", "updated_at"])
    notification = delivery.notification
    try:
        _send(channel, title=notification.title, body=notification.body, url=notification.url)
    except senders.TransientSendError as exc:
        status = DeliveryStatus.FAILED if final_attempt else DeliveryStatus.RETRYING
        Delivery.objects.filter(pk=delivery.pk).update(
            status=status, last_error=str(exc)[:200], updated_at=timezone.now()
        )
        if final_attempt:
            return status
        raise
    except senders.PermanentSendError as exc:
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.FAILED, last_error=str(exc)[:200], updated_at=timezone.now()
        )
        logger.warning("notification refused by its channel", extra={"delivery": delivery.pk, "kind": channel.kind})
        return DeliveryStatus.FAILED
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENT, sent_at=now, last_error="", updated_at=now
    )
    return DeliveryStatus.SENT


STALE_SENDING = timedelta(minutes=10)  # far beyond one send (timeouts of seconds) and its retries' claims


def deliveries_deferred_flush(*, limit: int = 500) -> int:
    """Re-queue the deliveries the rate limit deferred (run every minute); return how many.

    A delivery left ``sending`` for ``STALE_SENDING`` (its worker died between claim and mark) is marked
    failed, not re-sent: it may have reached its channel, and a message is sent at most once."""
    from .tasks import notifications_deliver  # deferred: the task module imports these services

    now = timezone.now()
    Delivery.objects.filter(status=DeliveryStatus.SENDING, updated_at__lt=now - STALE_SENDING).update(
        status=DeliveryStatus.FAILED, last_error="interrupted while sending; not sent again", updated_at=now
    )

    ids = list(
        Delivery.objects.filter(status=DeliveryStatus.DEFERRED).order_by("id").values_list("id", flat=True)[:limit]
    )
    for delivery_id in ids:
        notifications_deliver.delay(delivery_id)
    return len(ids)
