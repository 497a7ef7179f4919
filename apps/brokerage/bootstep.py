"""Runs the broker notice supervisor (``supervisor.NoticeSupervisor``) inside every Celery worker that consumes
the ``default`` queue, in a daemon thread with its own event loop (started after the pool, stopped on warm
shutdown), the way the fill engine runs (``apps/trading/orders/bootstep.py``). Leases in Redis make each link's
listener run in one worker only, however many workers there are. ``BROKER_NOTICES_ENABLED=false`` turns it off
(then ``manage.py broker_notices`` runs the listeners by hand).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from celery import bootsteps

from apps.trading.orders.bootstep import consumes_default_queue

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 15.0


class BrokerNoticeBootstep(bootsteps.StartStopStep):
    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def start(self, worker: Any) -> None:
        from django.conf import settings

        if not settings.BROKER_NOTICES_ENABLED or not consumes_default_queue(worker):
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="broker-notices", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        from django.db import connections

        from .supervisor import NoticeSupervisor  # deferred: Celery loads bootsteps before Django's registry

        assert self._loop is not None
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            await NoticeSupervisor().run(self._stop)

        try:
            self._loop.run_until_complete(main())
        except Exception:
            logger.exception("broker notice supervisor ended with an error; no notices until the worker restarts")
        finally:
            connections.close_all()

    def stop(self, worker: Any) -> None:
        if self._thread is None or not self._thread.is_alive() or self._loop is None:
            return
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STOP_TIMEOUT)
        if self._thread.is_alive():
            logger.error("broker notice supervisor did not stop in time", extra={"timeout_s": STOP_TIMEOUT})

    shutdown = stop
