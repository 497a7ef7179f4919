"""Every Channels group name, built in one place.

Group names are ASCII only (Channels requires it) and are built from validated values only: stock codes
checked with :func:`valid_code`, integer ids, hashed session keys.
"""

from __future__ import annotations

import hashlib
import re
import zlib

CODE_RE = re.compile(r"^[0-9A-Z]{6}$")

#: The feed's status (``feed.status`` messages), joined by every web process's fan-out hub.
MARKET_STATUS = "market.status"
#: Quotes and books travel in bucket groups ``quotes.b<n>`` (a validated code's CRC-32 modulo the bucket count):
#: the feed sends one message per bucket per batch and each web process joins every bucket group once
#: (``apps.live.realtime.hub``). The feed and every web process must agree on the count.
QUOTE_BUCKETS = 16


def valid_code(code: str) -> bool:
    """Exactly six characters of 0-9 and A-Z: no whitespace, no trailing newline (``fullmatch``, not ``$``)."""
    return isinstance(code, str) and CODE_RE.fullmatch(code) is not None


def quote_bucket(code: str) -> int:
    """The bucket of a validated stock code (stable across processes and hosts: CRC-32, not ``hash``)."""
    if not valid_code(code):
        raise ValueError(f"not a stock code: {code!r}")
    return zlib.crc32(code.encode("ascii")) % QUOTE_BUCKETS


def bucket_group(bucket: int) -> str:
    if not 0 <= bucket < QUOTE_BUCKETS:
        raise ValueError(f"not a quote bucket: {bucket!r}")
    return f"quotes.b{bucket}"


def quote_group(code: str) -> str:
    """The bucket group that carries ``code``'s quotes and books."""
    return bucket_group(quote_bucket(code))


def account_orders_group(account_id: int) -> str:
    """Order updates of one paper account."""
    return f"account.{int(account_id)}.orders"


def user_notifications_group(user_id: int) -> str:
    """Condition notifications of one user."""
    return f"user.{int(user_id)}.notifications"


def condition_group(condition_id: int) -> str:
    """Member and event pushes of one condition's page."""
    return f"conditions.{int(condition_id)}"


def session_group(session_key: str) -> str:
    """Every socket of one login session (the key is hashed: group names end up in Redis)."""
    return "session." + hashlib.sha256(session_key.encode()).hexdigest()[:32]
