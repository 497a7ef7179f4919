"""The fill engine: applies trade ticks from the fill-tick stream to open paper orders.

One ``FillEngine`` is one consumer of the Redis consumer group ``PAPER_FILL_GROUP`` on
``FILL_TICKS_STREAM``. Any number may run (each Celery worker consuming the ``default`` queue runs one,
see ``bootstep.py``; or ``manage.py runfills``): the group hands each entry to one consumer, and
``order_fills_apply`` is exactly-once per tick anyway, so a redelivered, claimed or duplicated entry is
harmless. Each pass of the loop:

1. claims entries another consumer read but never acked for ``PAPER_FILL_CLAIM_IDLE_MS`` (it died);
2. reads new entries (blocking at most ``PAPER_FILL_BLOCK_MS``);
3. applies the batch with ``order_fills_apply``: in stream order, in one transaction (committed when it
   returns; a burst of ticks of several stocks costs one commit, not one each). The batch is acknowledged
   with the next read, in its round trip (``FillTickReader.read(ack=...)``), or by ``flush_acks`` when the
   loop stops: a tick is never acknowledged before its fills have committed, and an engine that dies between
   the commit and the next read leaves its batch to ``claim_stale``, where it is a no-op;
4. every ``PAPER_FILL_DEMAND_SYNC`` s rebuilds ``ORDERS_SET`` from the open orders in the database, every
   ``PAPER_FILL_EXPIRY_CHECK`` s expires DAY orders whose session has closed (market clock), and every
   ``PAPER_FILL_HEARTBEAT`` s logs a heartbeat with its counters.

Errors: a Redis or database outage (or a deadlock) backs off exponentially (``PAPER_FILL_BACKOFF_BASE``
doubling up to ``PAPER_FILL_BACKOFF_MAX``) without acking; the same engine re-applies that batch first on
its next pass (ticks already applied are no-ops), and another engine claims it if this one dies. A tick whose
application fails for any other reason (a bug, bad data) is logged with its stream id and acked, so one
poison entry cannot stall the stream.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import redis as redis_lib
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from redis import Redis

from apps.core.metrics import observe_fills
from apps.core.redis import get_redis
from apps.live.realtime.fillpath import FillTick, FillTickReader
from apps.marketdata.market_clock import MarketClockUnavailable, market_now
from apps.marketdata.selectors import krx_calendar

from .demand import order_demand_sync
from .fills import order_fills_apply
from .release import orders_expire_due

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError, redis_lib.ConnectionError, redis_lib.TimeoutError)


def release_stale_connections() -> None:
    """After a database error: close connections that are no longer usable (never one inside a transaction),
    so the next pass reconnects. Healthy connections stay open for the life of the engine."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block and conn.connection is not None and not conn.is_usable():
            conn.close()


def consumer_name() -> str:
    """Unique per engine: host, process and thread."""
    return f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}"


@dataclass
class EngineStats:
    ticks: int = 0
    executions: int = 0
    claimed: int = 0
    poison: int = 0
    expired: int = 0
    errors: int = 0
    #: Since the last heartbeat: the longest wait of a tick in the stream before this engine applied it
    #: (its stream id is the Redis ms clock when the feed published it) and the longest application of a batch.
    max_lag_ms: float = 0.0
    max_apply_ms: float = 0.0


class FillEngine:
    def __init__(self, *, redis: Redis | None = None, group: str | None = None, consumer: str | None = None) -> None:
        self.redis = redis or get_redis()
        self.reader = FillTickReader(
            self.redis, group=group or settings.PAPER_FILL_GROUP, consumer=consumer or consumer_name()
        )
        self.stats = EngineStats()
        self._group_ready = False
        self._last_claim = float("-inf")
        self._last_demand = float("-inf")
        self._last_expiry = float("-inf")
        self._last_heartbeat = time.monotonic()
        #: Ticks read but not applied because of a transient error (a deadlock, a lost connection): this
        #: engine retries them after its backoff instead of leaving them to ``claim_stale`` (30 s idle).
        self._retry: list[FillTick] = []
        #: Ticks applied (committed) and not yet acknowledged: acknowledged with the next read.
        self._unacked: list[FillTick] = []

    def apply(self, ticks: Sequence[FillTick]) -> int:
        """Apply ``ticks`` (in stream order, in one transaction: ``order_fills_apply``), then queue them all for
        acknowledgement (``flush_acks``, or the next ``step``'s read); return the number of executions created.

        A transient error propagates before the ack (the batch is retried). Any other error re-applies the
        batch one tick per transaction, so the tick that fails is logged and acked with the rest while the
        others still apply (ticks already applied are no-ops).
        """

        if not ticks:
            return 0
        started = time.time()
        try:
            executions = order_fills_apply(ticks=list(ticks))
            created = len(executions)
        except TRANSIENT:
            self._retry = list(ticks)  # re-applied first by the next step (applied ones are no-ops)
            raise
        except Exception:
            logger.exception("fill batch failed; applying its ticks one by one", extra={"count": len(ticks)})
            created = self._apply_each(ticks)
        else:
            oldest_ms = min(int(tick.stream_id.partition("-")[0]) for tick in ticks)
            self.stats.max_lag_ms = max(self.stats.max_lag_ms, started * 1000 - oldest_ms)
            self.stats.max_apply_ms = max(self.stats.max_apply_ms, (time.time() - started) * 1000)
            observe_fills(ticks, executions, began=started)
        self._unacked.extend(ticks)
        self.stats.ticks += len(ticks)
        self.stats.executions += created
        return created

    def _apply_each(self, ticks: Sequence[FillTick]) -> int:
        created = 0
        for tick in ticks:
            try:
                created += len(order_fills_apply(ticks=[tick]))
            except TRANSIENT:
                self._retry = list(ticks)
                raise
            except Exception:
                self.stats.poison += 1
                logger.exception("fill tick could not be applied; skipped", extra={"stream_id": tick.stream_id})
        return created

    def step(self) -> int:
        """One pass of the loop (see the module docstring); return the number of executions created."""
        now = time.monotonic()
        if not self._group_ready:
            self.reader.ensure_group()
            self._group_ready = True
        created = 0
        if self._retry:
            retry, self._retry = self._retry, []
            logger.info("retrying fill ticks after a transient error", extra={"count": len(retry)})
            created += self.apply(retry)
        if now - self._last_claim >= settings.PAPER_FILL_CLAIM_IDLE_MS / 1000 / 2:
            claimed = self.reader.claim_stale(
                min_idle_ms=settings.PAPER_FILL_CLAIM_IDLE_MS, count=settings.PAPER_FILL_BATCH
            )
            self._last_claim = now
            if claimed:
                self.stats.claimed += len(claimed)
                logger.info("claimed stale fill ticks", extra={"count": len(claimed)})
                created += self.apply(claimed)
        ticks = self.reader.read(
            count=settings.PAPER_FILL_BATCH, block_ms=settings.PAPER_FILL_BLOCK_MS, ack=self._unacked
        )
        self._unacked = []  # acknowledged with the read (an error keeps them for the next attempt: XACK repeats)
        if ticks:
            created += self.apply(ticks)
        self.housekeeping()
        return created

    def flush_acks(self) -> int:
        """Acknowledge the applied ticks not yet acknowledged (the loop does it with its next read)."""
        unacked, self._unacked = self._unacked, []
        try:
            return self.reader.ack(unacked)
        except Exception:
            self._unacked = unacked + self._unacked
            raise

    def housekeeping(self, *, force: bool = False) -> None:

        now = time.monotonic()
        if force or now - self._last_demand >= settings.PAPER_FILL_DEMAND_SYNC:
            order_demand_sync()
            self._last_demand = now
        if force or now - self._last_expiry >= settings.PAPER_FILL_EXPIRY_CHECK:
            self._last_expiry = now
            self.stats.expired += self._expire_due(orders_expire_due)
        if force or now - self._last_heartbeat >= settings.PAPER_FILL_HEARTBEAT:
            self._last_heartbeat = now
            logger.info("fill engine heartbeat", extra={"consumer": self.reader.consumer, **asdict(self.stats)})
            self.stats.max_lag_ms = self.stats.max_apply_ms = 0.0

    @staticmethod
    def _expire_due(orders_expire_due: Callable[..., int]) -> int:
        try:
            market = market_now(krx_calendar())
        except MarketClockUnavailable as exc:
            logger.warning("market clock unavailable; DAY-order expiry postponed", extra={"error": str(exc)})
            return 0
        expired = orders_expire_due(market=market)
        if expired:
            logger.info("expired DAY orders", extra={"count": expired, "trading_date": str(market.trading_date)})
        return expired

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set, backing off on Redis/database outages."""
        logger.info("fill engine started", extra={"consumer": self.reader.consumer, "group": self.reader.group})
        failures = 0
        while not stop.is_set():
            try:
                self.step()
                failures = 0
            except TRANSIENT as exc:
                failures += 1
                self.stats.errors += 1
                self._group_ready = False
                delay = min(settings.PAPER_FILL_BACKOFF_BASE * 2 ** (failures - 1), settings.PAPER_FILL_BACKOFF_MAX)
                logger.warning("fill engine backing off", extra={"error": str(exc), "delay_s": delay})
                release_stale_connections()
                stop.wait(delay)
            except Exception:
                failures += 1
                self.stats.errors += 1
                delay = min(settings.PAPER_FILL_BACKOFF_BASE * 2 ** (failures - 1), settings.PAPER_FILL_BACKOFF_MAX)
                logger.exception("fill engine error", extra={"delay_s": delay})
                stop.wait(delay)
        try:
            self.flush_acks()
        except TRANSIENT as exc:  # left pending: another engine claims them, and they are no-ops there
            logger.warning("could not acknowledge the last fill ticks at stop", extra={"error": str(exc)})
        logger.info("fill engine stopped", extra={"consumer": self.reader.consumer, **asdict(self.stats)})
