"""A fixed-window counter in Redis for limits outside DRF (sign-ups per address, verification e-mails per
user): shared by every web process. Redis trouble lets the request through, with a warning."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger(__name__)


def over_limit(name: str, ident: str, *, limit: int, window: int) -> bool:
    """Count one event of ``ident`` for ``name``; True when it is beyond ``limit`` per ``window`` seconds."""
    if limit <= 0:
        return False
    from .redis import get_redis

    key = f"hoga:limit:{name}:{ident}:{int(time.time() // window)}"
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, window * 2)
        count, _ = pipe.execute()
    except Exception:
        logger.warning("rate limit unavailable (Redis); allowing", extra={"limit": name})
        return False
    return int(count) > limit
