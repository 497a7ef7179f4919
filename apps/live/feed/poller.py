"""Prices of wanted stocks that got no live slot, polled over REST at the rate budget collection leaves.

The live feed carries ``per_connection × connections`` stocks (20 per KIS key). Stocks wanted beyond that
(open orders or viewers, :func:`.demand.overflow`) are not dropped: the holder of slot 0 polls their current
price (KIS FHKST01010100, the collection client) and publishes each answer like a trade:

- the latest-quote hash and the ``quotes.<code>`` group get a full snapshot with ``source: "poll"``;
- for a stock with open orders, the fill-tick stream gets an entry marked ``source=poll`` whose volume is the
  day's cumulative volume traded since the previous poll (nothing before the first poll), so a crossing
  order fills at the polled price for at most what traded meanwhile. Its executions record ``source="poll"``:
  the fidelity a snapshot allows (no price path between polls, no order book walked).

Budget: at most ``rate`` calls per second, each stock at most every ``min_interval`` seconds, and a call is
made only when the broker's shared rate limiter is idle at that moment (``RedisRateLimiter.idle``), so the
collection jobs, which share the limiter, never queue behind the poller. A failing call is logged and retried
at the stock's next turn (errors back off the whole poller, at most ``backoff_max`` seconds).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from apps.brokers.base import BrokerError, Quote, Tick
from apps.core.krx.calendar import KST

logger = logging.getLogger(__name__)

#: ``await fetch(code)`` -> Quote; ``await idle()`` -> whether the broker limiter has a free slot now.
Fetch = Callable[[str], Awaitable[Quote]]
Idle = Callable[[], Awaitable[bool]]


def quote_tick(quote: Quote, *, volume: int, at: dt.datetime) -> Tick:
    """A polled quote as a trade-like event: its price, ``volume`` traded since the previous poll."""
    return Tick(
        code=quote.code,
        at=at,
        price=quote.price,
        change=quote.change,
        sign=quote.sign,
        change_rate=quote.change_rate,
        volume=volume,
        cum_volume=quote.volume,
        cum_value=quote.trade_value,
        open=quote.open,
        high=quote.high,
        low=quote.low,
        ask1=quote.price,
        bid1=quote.price,
        side=None,
        session="0",
        received_at=quote.fetched_at,
    )


class RestPoller:
    """Round-robin polling of the codes handed to :meth:`set_codes` (the holder's overflow list)."""

    def __init__(
        self,
        *,
        fetch: Fetch,
        idle: Idle,
        publish: Callable[[Tick], Awaitable[Any]],
        rate: float,
        min_interval: float,
        clock_offset: Callable[[], dt.timedelta] = lambda: dt.timedelta(0),
        backoff_max: float = 30.0,
    ) -> None:
        if rate <= 0:
            raise ValueError("poll rate must be positive")
        self.fetch, self.idle, self.publish = fetch, idle, publish
        self.rate, self.min_interval = rate, min_interval
        self.clock_offset = clock_offset
        self.backoff_max = backoff_max
        self.codes: list[str] = []
        self._cum: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self.polls = 0
        self.skipped_busy = 0
        self.errors = 0

    def set_codes(self, codes: list[str]) -> None:
        self.codes = list(dict.fromkeys(codes))
        for gone in set(self._cum) - set(self.codes):
            self._cum.pop(gone, None)
            self._last.pop(gone, None)

    def _next_code(self, mono: float) -> str | None:
        due = [c for c in self.codes if mono - self._last.get(c, -1e9) >= self.min_interval]
        return min(due, key=lambda c: self._last.get(c, -1e9)) if due else None

    async def poll_once(self) -> str | None:
        """Poll the stock waited on longest, if any is due and the limiter is idle; return its code."""
        mono = time.monotonic()
        code = self._next_code(mono)
        if code is None:
            return None
        if not await self.idle():
            self.skipped_busy += 1
            return None
        self._last[code] = mono
        quote = await self.fetch(code)
        previous = self._cum.get(code)
        self._cum[code] = quote.volume
        volume = max(0, quote.volume - previous) if previous is not None else 0
        at = dt.datetime.now(KST) + self.clock_offset()
        await self.publish(quote_tick(quote, volume=volume, at=at))
        self.polls += 1
        return code

    async def run(self, running: Callable[[], bool]) -> None:
        failures = 0
        while running():
            delay = 1.0 / self.rate
            if self.codes:
                try:
                    await asyncio.wait_for(self.poll_once(), 30.0)
                    failures = 0
                except (BrokerError, OSError, TimeoutError) as exc:
                    failures += 1
                    self.errors += 1
                    delay = min(self.backoff_max, delay * 2**failures)
                    if failures == 1 or self.errors % 100 == 0:
                        logger.warning("feed REST poll failed; retrying", extra={"error": repr(exc)[:200],
                                       "errors": self.errors, "retry_in_s": round(delay, 1)})  # fmt: skip
            await asyncio.sleep(delay)
