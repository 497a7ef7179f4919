"""Condition tasks (queue ``default``). Thin: each reads the clock or takes its arguments and calls services.

``conditions.reconcile`` runs every ``CONDITIONS_RECONCILE_INTERVAL`` seconds (django-celery-beat interval
schedule, :func:`condition_schedules`). It first sends the pending rate-limit summaries, then, while the
market is in session (the market clock: the sandbox's replay clock or KRX hours), searches each enabled
condition once and reconciles it. A Redis lock keeps runs from overlapping when a search is slow.
"""

from __future__ import annotations

import logging
import smtplib
from typing import Any

from celery import shared_task
from django.conf import settings

from apps.core.redis import get_redis
from apps.marketdata.market_clock import MarketClockUnavailable, market_now
from apps.marketdata.selectors import krx_calendar

from .notifications import SlackTransientError, condition_summaries_flush, email_send, slack_post
from .selectors import condition_searchable_seqs, conditions_exist
from .services import condition_reconcile

logger = logging.getLogger(__name__)

RECONCILE_LOCK_KEY = "hoga:lock:conditions_reconcile"
RECONCILE_LOCK_TTL = 120  # seconds; a crashed run's lock expires by itself


def condition_schedules(market_broker: str) -> list[dict[str, Any]]:
    """The reconciliation job, when MARKET_FEED=kiwoom or Kiwoom conditions exist (registered with
    :func:`apps.core.schedules.register_schedules`)."""
    if getattr(settings, "MARKET_FEED", "kis") != "kiwoom" and not conditions_exist():
        return []
    return [
        {
            "name": "reconcile condition searches",
            "task": "conditions.reconcile",
            # every CONDITIONS_RECONCILE_INTERVAL (30) s; the task itself checks the market clock
            "interval": {"every": settings.CONDITIONS_RECONCILE_INTERVAL, "period": "seconds"},
            "expires": max(1, settings.CONDITIONS_RECONCILE_INTERVAL - 5),
        }
    ]


@shared_task(bind=True, name="conditions.reconcile", expires=25, ignore_result=True)
def conditions_reconcile(self, force: bool = False) -> dict | None:
    """Every 30 s in session: one normal search per enabled condition seq, reconciled with its members."""

    summaries = condition_summaries_flush()
    seqs = condition_searchable_seqs()
    if not seqs:
        return {"summaries": summaries, "searched": 0}
    try:
        market = market_now(krx_calendar())
    except MarketClockUnavailable as exc:
        logger.warning("market clock unavailable; condition searches skipped", extra={"error": str(exc)})
        return None
    if not market.is_open and not force:
        return {"summaries": summaries, "searched": 0, "session": market.session}
    lock = get_redis().lock(RECONCILE_LOCK_KEY, timeout=RECONCILE_LOCK_TTL, blocking=False)
    if not lock.acquire():
        logger.info("condition reconciliation still running; this run is skipped")
        return None
    try:
        entered = exited = failed = 0
        for seq in seqs:
            for run in condition_reconcile(seq=seq, at=market.now):
                entered += run.entered
                exited += run.exited
                failed += run.status == "failed"
        return {"summaries": summaries, "searched": len(seqs), "entered": entered, "exited": exited, "failed": failed}
    finally:
        lock.release()


@shared_task(
    bind=True,
    name="conditions.send_slack",
    autoretry_for=(SlackTransientError,),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
    ignore_result=True,
)
def conditions_send_slack(self, *, text: str) -> int:
    """Post one condition notification to the Slack incoming webhook (retried on network errors, 429, 5xx)."""

    return slack_post(text=text)


@shared_task(
    bind=True,
    name="conditions.send_email",
    autoretry_for=(smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError, TimeoutError),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=3,
    ignore_result=True,
)
def conditions_send_email(self, *, subject: str, body: str, recipients: list[str]) -> int:
    """Send one condition notification by e-mail (Django's e-mail backend); retried when the server is down."""

    return email_send(subject=subject, body=body, recipients=recipients)
