"""Runs the feed holder inside the Celery worker that consumes the ``feed`` queue (``bin/hoga-process feed``).

Why a bootstep and not a long task: a task that never ends would be redelivered by the Redis transport
after ``visibility_timeout`` to another worker (a second holder), and it would occupy the worker's only
slot. The bootstep starts with the worker and stops with it; exclusivity across workers and machines comes
from the Redis lease (:mod:`.lease`), not from Celery.

The holder runs in a daemon thread with its own asyncio loop, started after the pool (so pool processes
are forked before the thread exists). Warm shutdown (SIGTERM) stops the loop: the session closes, the
lease is released and status "stopped" is published, bounded by ``STOP_TIMEOUT``. A worker killed with
SIGKILL takes the thread with it; its lease expires after FEED_LEASE_TTL and another worker takes over.

Only a worker started with ``--queues`` including ``feed`` (and FEED_ENABLED true) runs the holder.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from celery import bootsteps

logger = logging.getLogger(__name__)

FEED_QUEUE = "feed"
STOP_TIMEOUT = 15.0


def consumes_feed_queue(worker: Any) -> bool:
    """True when the worker was told to consume the ``feed`` queue (``-Q feed``); False without ``-Q``."""
    consume_from = getattr(worker.app.amqp.queues, "consume_from", None)
    return bool(consume_from) and FEED_QUEUE in consume_from


class FeedBootstep(bootsteps.StartStopStep):
    """Starts/stops the feed holder thread with the worker (see module docstring)."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()

    def start(self, worker: Any) -> None:
        from django.conf import settings

        if not consumes_feed_queue(worker):
            return
        if not settings.FEED_ENABLED:
            logger.warning("feed worker started with FEED_ENABLED=false: no feed is held")
            return
        self._thread = threading.Thread(target=self._main, name="feed-holder", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)
        logger.info("feed bootstep started", extra={"worker": getattr(worker, "hostname", "")})

    def _main(self) -> None:
        from .holder import run_feed  # deferred: Celery loads its bootsteps before Django's app registry is ready

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            loop.run_until_complete(run_feed(self._stop))
        except Exception:
            logger.exception("feed holder thread ended with an error; this worker holds no feed until restarted")
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, worker: Any) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or loop is None or stop is None or not thread.is_alive():
            return
        logger.info("feed bootstep stopping")
        loop.call_soon_threadsafe(stop.set)
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            logger.error("feed holder did not stop in time; its lease expires on its own", extra={
                "timeout_s": STOP_TIMEOUT})  # fmt: skip

    shutdown = stop
