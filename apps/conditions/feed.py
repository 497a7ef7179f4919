"""Hooks the real-time feed calls for Kiwoom condition alerts (조건검색 실시간).

The feed holder calls both functions through ``asyncio.to_thread`` (never on its event loop), from a bounded
queue, so a slow database never stalls the socket reader. Both are synchronous and use the ORM.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .selectors import condition_realtime_seqs
from .services import condition_alert_record as record

if TYPE_CHECKING:
    from apps.brokers.base import ConditionAlert

logger = logging.getLogger(__name__)


def enabled_condition_seqs() -> list[str]:
    """Seqs of the enabled Kiwoom conditions with real-time on (any owner), sorted, without duplicates.

    The feed registers one real-time condition search (CNSRREQ search_type "1") per seq.
    """

    return condition_realtime_seqs()


def condition_alert_record(alert: ConditionAlert) -> None:
    """Record one real-time alert (a REAL type 02 push) exactly once for every condition with its seq.

    An IN for a stock already a member, or an OUT for a non-member, changes nothing. The price at the event
    is read from the latest-quote hash in Redis. Notifications leave after commit. Errors are logged here,
    never raised into the feed: a lost alert is recovered by the 30-second reconciliation search.
    """

    try:
        record(alert=alert)
    except Exception:
        logger.exception(
            "condition alert not recorded; the next reconciliation search will catch it up",
            extra={"seq": getattr(alert, "seq", ""), "code": getattr(alert, "code", "")},
        )
