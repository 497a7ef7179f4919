"""An exclusive, self-expiring lease in Redis: at most one feed holder per app key, everywhere.

Key ``hoga:feed:lease:<env>:<app key hash>``; value: the holder's token ``<host>:<pid>:<random>``.

Invariants:

- acquire is ``SET key token NX PX ttl``: only one candidate can hold the key at a time;
- renew and release are Lua compare-and-extend / compare-and-delete on the token (fencing): a holder whose
  lease expired and was taken by another can neither extend nor delete the new holder's lease;
- a holder that cannot confirm a renewal for ``ttl - renew_interval`` seconds must consider the lease lost
  (see :meth:`RedisLease.expired_locally`) and stop, so two holders never overlap while clocks agree;
- a holder killed with SIGKILL simply stops renewing: the key expires after at most ``ttl`` seconds and a
  candidate retrying every ``retry_interval`` seconds takes over.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Any

logger = logging.getLogger(__name__)

LEASE_PREFIX = "hoga:feed:lease"

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def new_token() -> str:
    """A token unique to this holder instance; readable in logs (host and pid), never secret."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_key(scope: str, *, prefix: str = LEASE_PREFIX) -> str:
    """The lease key of an app key scope (``KisConfig.scope``: ``<env>:<key hash>``)."""
    return f"{prefix}:{scope}"


class RedisLease:
    """One candidate's handle on one lease key (``redis``: a ``redis.asyncio`` client).

    Timings (seconds): ``ttl`` is how long the key lives without renewal; the holder renews every
    ``renew_interval`` (at least 2 renewals per ttl are required) and a candidate retries every
    ``retry_interval``. Takeover after a crash takes at most ``ttl + retry_interval``.
    """

    def __init__(
        self,
        redis: Any,
        key: str,
        *,
        token: str | None = None,
        ttl: float = 6.0,
        renew_interval: float = 2.0,
        retry_interval: float = 1.0,
    ) -> None:
        if ttl <= 0 or renew_interval <= 0 or retry_interval <= 0 or renew_interval * 2 > ttl:
            raise ValueError("lease timings: ttl > 0 and 0 < renew_interval <= ttl / 2 and retry_interval > 0")
        self.redis = redis
        self.key = key
        self.token = token or new_token()
        self.ttl = ttl
        self.renew_interval = renew_interval
        self.retry_interval = retry_interval
        self._held_until = 0.0  # monotonic deadline of the last confirmed acquire/renew, minus a safety margin
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl * 1000))

    def _confirmed(self, started: float) -> None:
        # Measured from before the request was sent: the key may have been set at any point after that.
        self._held_until = started + self.ttl - self.renew_interval

    def expired_locally(self) -> bool:
        """True when no renewal was confirmed recently enough to be sure the key is still ours."""
        return time.monotonic() >= self._held_until

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it (or we already do); True when held by this token."""
        started = time.monotonic()
        if await self.redis.set(self.key, self.token, nx=True, px=self._ttl_ms):
            self._confirmed(started)
            logger.info("feed lease acquired", extra={"lease": self.key, "holder": self.token, "ttl_s": self.ttl})
            return True
        if await self.renew():
            return True
        return False

    async def renew(self) -> bool:
        """Extend the lease if this token still holds it; False (nothing changed) otherwise."""
        started = time.monotonic()
        ok = bool(await self._renew(keys=[self.key], args=[self.token, self._ttl_ms]))
        if ok:
            self._confirmed(started)
        else:
            self._held_until = 0.0
        return ok

    async def release(self) -> bool:
        """Delete the lease if this token holds it (another holder's lease is never touched)."""
        self._held_until = 0.0
        released = bool(await self._release(keys=[self.key], args=[self.token]))
        logger.info("feed lease released", extra={"lease": self.key, "holder": self.token, "released": released})
        return released

    async def holder(self) -> str | None:
        """The token currently holding the lease, or None."""
        value = await self.redis.get(self.key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)
