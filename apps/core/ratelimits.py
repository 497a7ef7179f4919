"""Fixed-window counters in Redis, shared by every web process: the API's write throttle
(``apps.core.throttling``) and the limits outside DRF (sign-ups per address, verification e-mails per user).

One counter step is one round trip: a Lua script increments the window's key, sets its expiry on the first
hit and returns the count with the seconds left in the window. Redis trouble lets the request through, with a
warning.
"""

from __future__ import annotations

import logging
import time

from .redis import get_redis

logger = logging.getLogger(__name__)

_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('TTL', KEYS[1])}
"""
_scripts: dict[int, object] = {}  # id(client) -> its registered script (EVALSHA, loaded on first use)


def window_hit(name: str, ident: str, *, window: int) -> tuple[int, int]:
    """Count one event of ``ident`` for ``name`` in the current ``window``-second window: (count so far,
    seconds until the window ends). Raises redis errors."""
    client = get_redis()
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(_HIT)
    key = f"hoga:limit:{name}:{ident}:{int(time.time() // window)}"
    count, ttl = script(keys=[key], args=[window])
    return int(count), max(int(ttl), 0)


def over_limit(name: str, ident: str, *, limit: int, window: int) -> bool:
    """Count one event of ``ident`` for ``name``; True when it is beyond ``limit`` per ``window`` seconds."""
    if limit <= 0:
        return False
    try:
        count, _left = window_hit(name, ident, window=window)
    except Exception:
        logger.warning("rate limit unavailable (Redis); allowing", extra={"limit": name})
        return False
    return count > limit
