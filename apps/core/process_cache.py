"""Short-lived per-process caches of values every request would otherwise read from PostgreSQL.

A value is kept for ``ttl`` seconds in the process that computed it; a change made through the ORM in this
process clears it at once (signals registered by the owning app), a change made by another process is seen
within ``ttl``. ``clear_process_caches()`` empties every cache (tests call it around each test).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")

_registry: list[ProcessCache] = []


class ProcessCache(Generic[T]):
    """``get(key, compute)``: the value computed less than ``ttl`` seconds ago, else ``compute()`` (stored).
    Bounded to ``max_entries`` (the oldest entries go first). Thread-safe; a racing compute is harmless."""

    def __init__(self, name: str, ttl: Callable[[], float] | float, max_entries: int = 10_000):
        self.name = name
        self._ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, T]] = {}
        self._lock = threading.Lock()
        _registry.append(self)

    def ttl(self) -> float:
        return float(self._ttl() if callable(self._ttl) else self._ttl)

    def get(self, key: Hashable, compute: Callable[[], T], keep: Callable[[T], bool] | None = None) -> T:
        """``keep``: whether a computed value is stored (e.g. only found values: a miss is asked again)."""
        ttl = self.ttl()
        if ttl <= 0:
            return compute()
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < ttl:
            return entry[1]
        value = compute()
        if keep is not None and not keep(value):
            return value
        with self._lock:
            if len(self._entries) >= self.max_entries:
                for stale in list(self._entries)[: max(1, self.max_entries // 10)]:
                    self._entries.pop(stale, None)
            self._entries[key] = (now, value)
        return value

    def invalidate(self, key: Hashable | None = None) -> None:
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)


def clear_process_caches() -> None:
    for cache in _registry:
        cache.invalidate()
