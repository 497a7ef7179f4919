"""The receiver of trading's ``order_events_committed`` signal (connected in ``apps.py``).

It runs in the process that committed the order change (a fill worker, a web request), after the commit, so
it only picks the snapshots worth telling and queues one task for them; no sending here. To keep Celery's
dispatch (about 2 ms) off fills nobody listens to, it first drops the snapshots of accounts whose owner has
no enabled, verified channel: that set of users is kept per process and reloaded when the channels change
anywhere (a version token in Redis, replaced on every change). The token is read at most once per
``NOTIFICATIONS_LISTENERS_RECHECK`` seconds per process (one GET per fill batch was a tenth of a busy fill
engine's time), and at once after a change made in the same process: a channel enabled elsewhere is heard of
within that delay. Redis trouble fails open (the task is queued and the service decides).
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.db import transaction

from apps.core.process_cache import ProcessCache
from apps.core.redis import get_redis
from apps.trading.accounts.models import PaperAccount

from .models import Channel

logger = logging.getLogger(__name__)

TOLD_STATUSES = frozenset({"FILLED", "PARTIALLY_FILLED", "REJECTED", "CANCELLED"})
VERSION_KEY = "hoga:notifications:channels-version"
_listening = ProcessCache[frozenset[int]]("notifications.listening_users", ttl=3600.0, max_entries=4)
_owners = ProcessCache[int | None]("notifications.account_owners", ttl=3600.0)  # an account never changes owner
_version = ProcessCache[bytes | None](
    "notifications.channels_version", ttl=lambda: settings.NOTIFICATIONS_LISTENERS_RECHECK, max_entries=1
)


def channels_changed() -> None:
    """Tell every process that the set of listening users may have changed: now and again after the commit
    (a process reloading in between would otherwise keep the uncommitted state)."""

    def bump() -> None:
        _version.invalidate()  # this process reads the new token at its next batch
        try:
            get_redis().set(VERSION_KEY, uuid.uuid4().hex)
        except Exception:
            logger.warning("could not publish a notification channel change (Redis)")

    bump()
    transaction.on_commit(bump)


def _channels_version() -> bytes | None:
    """The channels' version token, read from Redis at most once per ``NOTIFICATIONS_LISTENERS_RECHECK`` s."""

    def read() -> bytes | None:
        redis = get_redis()
        version = redis.get(VERSION_KEY)
        if version is None:
            redis.set(VERSION_KEY, uuid.uuid4().hex, nx=True)
            version = redis.get(VERSION_KEY)
        return version

    return _version.get("token", read, keep=lambda version: version is not None)


def _listening_users() -> frozenset[int] | None:
    """Users with an enabled, verified channel; None when unknown (Redis unavailable)."""
    try:
        version = _channels_version()
    except Exception:
        return None
    return _listening.get(
        version,
        lambda: frozenset(
            Channel.objects.filter(enabled=True, verified_at__isnull=False).values_list("owner_id", flat=True)
        ),
    )


def _owner(account_id: int) -> int | None:
    return _owners.get(
        account_id, lambda: PaperAccount.objects.filter(pk=account_id).values_list("user_id", flat=True).first()
    )


def order_events_received(sender, *, snapshots: list[dict], **_kwargs) -> int:
    from .tasks import notifications_order_events  # deferred: tasks import services, which import this module

    told = [s for s in snapshots if s.get("status") in TOLD_STATUSES or s.get("event") == "trigger"]
    if not told:
        return 0
    users = _listening_users()
    if users is not None:
        if not users:
            return 0
        told = [s for s in told if _owner(s["account_id"]) in users]
        if not told:
            return 0
    try:
        notifications_order_events.delay(told)
    except Exception:  # a broker outage must never reach the fill path; the order itself is committed
        logger.exception("could not queue order notifications", extra={"orders": [s.get("id") for s in told]})
        return 0
    return len(told)
