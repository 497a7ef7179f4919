"""Brokerage tasks: the scheduled reconciliation of every active link with the broker's order inquiry and then its
balance (the listener also reconciles both after every reconnect)."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.brokers.base import BrokerError

from .models import BrokerLink
from .services import RECONCILE_SETTLE_SECONDS, broker_balance_reconcile, broker_reconcile

logger = logging.getLogger(__name__)


@shared_task(name="brokerage.reconcile_links", expires=240, ignore_result=True)
def reconcile_links() -> dict:
    """Each active link against the broker's order inquiry; a link whose broker cannot be reached is logged and
    tried again at the next run."""
    results = {}
    for link in BrokerLink.objects.filter(active=True):
        try:
            counts = broker_reconcile(link=link, settle_seconds=RECONCILE_SETTLE_SECONDS)
        except BrokerError as exc:
            logger.warning("reconciliation failed", extra={"account": link.account_id, "error": type(exc).__name__})
            continue
        results[link.pk] = counts
        if counts["settling"]:  # a fill still on its way would show as a difference of the balance
            continue
        try:
            counts.update(broker_balance_reconcile(link=link))
        except BrokerError as exc:
            logger.warning("balance inquiry failed", extra={"account": link.account_id, "error": type(exc).__name__})
    return results
