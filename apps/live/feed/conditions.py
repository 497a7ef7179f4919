"""The feed's condition-search hooks (조건검색 실시간), registered by the app that keeps the conditions.

Sources with condition search (Kiwoom, KOA) ask ``enabled_seqs()`` which real-time conditions to keep and hand
every :class:`~apps.brokers.base.ConditionAlert` to ``record_alert``; both run in a thread, never on the feed's
event loop. Without registered hooks the feed keeps no real-time conditions (logged once by the holder).
"""

from __future__ import annotations

from collections.abc import Callable

from apps.brokers.base import ConditionAlert

ConditionHooks = tuple[Callable[[], list[str]], Callable[[ConditionAlert], None]]
_HOOKS: list[ConditionHooks] = []


def register_condition_hooks(
    enabled_seqs: Callable[[], list[str]], record_alert: Callable[[ConditionAlert], None]
) -> None:
    """Make ``(enabled_seqs, record_alert)`` the feed's hooks (the last registration wins)."""
    _HOOKS[:] = [(enabled_seqs, record_alert)]


def condition_hooks() -> ConditionHooks | None:
    return _HOOKS[0] if _HOOKS else None
