"""Names shared by the feed holder, the consumers and the APIs (Redis keys and Channels groups).

Group names are ASCII only (Channels requires it): ``quotes.<code>`` with a validated 6-character code.
"""

from __future__ import annotations

import re

CODE_RE = re.compile(r"^[0-9A-Z]{6}$")

QUOTES_HASH = "hoga:rt:quotes"  # code -> latest quote snapshot (JSON)
BOOKS_HASH = "hoga:rt:books"  # code -> latest order-book snapshot (JSON)
FEED_STATUS_KEY = "hoga:feed:status"  # connected | reconnecting | stale | closed | stopped (read by /healthz)
FEED_STATUS_DETAIL_KEY = "hoga:feed:status:detail"  # JSON with holder, reconnects, registrations, ...
STATUS_GROUP = "market.status"

# Demand for subscriptions. Browsers: a sorted set of "<code>|<connection id>" members scored with the
# time of their last heartbeat, so a crashed web server's viewers expire on their own (VIEWER_TTL).
VIEWERS_ZSET = "hoga:rt:demand:viewers"
VIEWER_HEARTBEAT = 10.0  # seconds between a connection's refreshes
VIEWER_TTL = 30.0  # seconds after which a viewer that stopped refreshing no longer counts
ORDERS_SET = "hoga:rt:demand:orders"  # codes with open paper orders (kept by the orders services)
# "<user id>|<code>" -> epoch seconds of the user's oldest open order on that code (for the per-user share).
ORDER_USERS_HASH = "hoga:rt:demand:order-users"

# The order-fill path: every trade tick of a code in ORDERS_SET, in order, durable (a Redis stream).
FILL_TICKS_STREAM = "hoga:rt:fill-ticks"
FILL_TICKS_MAXLEN = 200_000  # approximate cap; a consumer that is hours behind loses the oldest entries


def valid_code(code: str) -> bool:
    """Exactly six characters of 0-9 and A-Z: no whitespace, no trailing newline (``fullmatch``, not ``$``)."""
    return isinstance(code, str) and CODE_RE.fullmatch(code) is not None


def quote_group(code: str) -> str:
    if not valid_code(code):
        raise ValueError(f"not a stock code: {code!r}")
    return f"quotes.{code}"
