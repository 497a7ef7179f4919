"""Where access tokens live: the :class:`TokenStore` protocol and an in-process implementation.

The production store (database, encrypted at rest, cross-process lock) is
``apps.marketdata.broker_services.DatabaseTokenStore``; brokers never touch the ORM themselves.

Protocol contract (every implementation must keep it):

- ``load`` returns the stored token for (key_hash, env) or None; it takes no lock.
- ``obtain`` runs under a lock that is exclusive across every process sharing the store. Under the
  lock it re-reads the stored token and returns it when it is ``usable`` and is not ``rejected``;
  only otherwise it calls ``issue()`` (which performs the tokenP request) and stores the result.
  Hence N concurrent callers cause at most one ``issue()``. ``issue`` receives the time of the
  previous issuance for this key (or None) so it can respect KIS's 1-per-minute rule.
- Waiting for the lock is bounded by ``lock_timeout`` seconds (TimeoutError afterwards).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Protocol

from .base import AccessToken

#: ``issue(last_issued_at)`` → a fresh token. Called only under the store's lock.
Issuer = Callable[[dt.datetime | None], AccessToken]
#: ``usable(token)`` → whether a stored token may still be used (not near its expiry).
Usable = Callable[[AccessToken], bool]


class TokenStore(Protocol):
    def load(self, key_hash: str, env: str) -> AccessToken | None: ...

    def obtain(
        self,
        key_hash: str,
        env: str,
        *,
        issue: Issuer,
        usable: Usable,
        rejected: str | None,
        lock_timeout: float,
    ) -> tuple[AccessToken, bool]:
        """(token, issued_here). See the module docstring for the contract."""
        ...


class MemoryTokenStore:
    """A TokenStore for one process (tests, scripts). The lock is a process-local mutex."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], AccessToken] = {}
        self._last_issued: dict[tuple[str, str], dt.datetime] = {}

    def load(self, key_hash: str, env: str) -> AccessToken | None:
        return self._tokens.get((key_hash, env))

    def obtain(
        self,
        key_hash: str,
        env: str,
        *,
        issue: Issuer,
        usable: Usable,
        rejected: str | None,
        lock_timeout: float,
    ) -> tuple[AccessToken, bool]:
        if not self._lock.acquire(timeout=lock_timeout):
            raise TimeoutError("token lock not acquired")
        try:
            key = (key_hash, env)
            current = self._tokens.get(key)
            if current is not None and current.token != rejected and usable(current):
                return current, False
            fresh = issue(self._last_issued.get(key))
            self._tokens[key] = fresh
            self._last_issued[key] = fresh.issued_at
            return fresh, True
        finally:
            self._lock.release()
