"""Which stocks trade on NXT (Nextrade, krx-rules §3.4): the one place the rest of Hoga asks.

The list is the setting ``NXT_ELIGIBLE_CODES`` (a large-cap subset by default, APPROXIMATE: NXT's real list
changes daily). The feed subscribes NXT trades (H0NXCNT0) only for these stocks; the paper engine refuses NXT
routes for the others. With a Kiwoom feed the broker's stock list carries ``nxtEnable`` (kiwoom-api.md): that is
the broker's word and should refresh this list daily (not wired: the setting is what Hoga uses).
"""

from __future__ import annotations

from django.conf import settings


def nxt_eligible_codes() -> frozenset[str]:
    """The NXT-eligible stock codes."""
    return frozenset(str(c).strip() for c in getattr(settings, "NXT_ELIGIBLE_CODES", []) if str(c).strip())


def nxt_eligible(code: str) -> bool:
    """Whether ``code`` trades on NXT."""
    return code in nxt_eligible_codes()
