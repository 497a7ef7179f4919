"""Redis keys shared by the feed holder, the consumers, the fill path and the quote reader (:mod:`apps.live.quotes`).

Channels group names are built in :mod:`apps.core.groups`.
"""

from __future__ import annotations

QUOTES_HASH = "hoga:rt:quotes"  # code -> latest quote snapshot (JSON)
BOOKS_HASH = "hoga:rt:books"  # code -> latest order-book snapshot (JSON)
# code -> the stock's market state (JSON: phase, venue, halted, vi, expected, nxt), also merged into its quote
# snapshot; kept apart so a state known before the stock's first trade of the day (an opening auction's expected
# price) is readable too.
STATES_HASH = "hoga:rt:states"
FEED_STATUS_KEY = "hoga:feed:status"  # connected | reconnecting | stale | closed | stopped (read by /healthz)
FEED_STATUS_DETAIL_KEY = "hoga:feed:status:detail"  # JSON with holder, reconnects, registrations, ...

# Demand for subscriptions. Browsers: a sorted set of "<code>|<connection id>" members scored with the
# time of their last heartbeat, so a crashed web server's viewers expire on their own (VIEWER_TTL).
VIEWERS_ZSET = "hoga:rt:demand:viewers"
VIEWER_HEARTBEAT = 10.0  # seconds between a connection's refreshes
VIEWER_TTL = 30.0  # seconds after which a viewer that stopped refreshing no longer counts
ORDERS_SET = "hoga:rt:demand:orders"  # codes with open paper orders (kept by the orders services)
# "<user id>|<code>" -> epoch seconds of the user's oldest open order on that code (for the per-user share).
ORDER_USERS_HASH = "hoga:rt:demand:order-users"

# Codes running strategies watch (kept by apps.strategies): their prints go to the fill-tick stream too, where the
# strategy host reads them, and the feed subscribes them like codes with open orders.
STRATEGY_CODES_SET = "hoga:rt:demand:strategies"
# "<user id>|<code>" -> epoch seconds the user's running strategy on that code started: its codes count in the
# owner's fair share of live slots like open orders (so many strategies cannot push other users' stocks off the feed).
STRATEGY_USERS_HASH = "hoga:rt:demand:strategy-users"

# The order-fill path: every trade tick of a code in ORDERS_SET, in order, durable (a Redis stream).
FILL_TICKS_STREAM = "hoga:rt:fill-ticks"
FILL_TICKS_MAXLEN = 200_000  # approximate cap; a consumer that is hours behind loses the oldest entries
