"""Runs a fill engine (``engine.FillEngine``) inside every Celery worker that consumes the ``default`` queue.

Why there and not in the ``feed`` worker: the feed worker is a singleton per app key (a Redis lease) and
must stay responsive on the broker socket; fills are database work that scales out instead. Every
default worker adds one consumer to the ``fills`` group, so two workers give two fill engines sharing
the stream (a crashed one's pending ticks are claimed by the other after PAPER_FILL_CLAIM_IDLE_MS).
Why a bootstep and not a task: a never-ending task would be redelivered after the Redis transport's
visibility timeout and would occupy a pool slot (same reasoning as the feed bootstep).

The engine runs in a daemon thread of the worker's main process, started after the pool (so pool
processes are forked before the thread exists) and stopped on warm shutdown within ``STOP_TIMEOUT``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import bootsteps

logger = logging.getLogger(__name__)

FILLS_QUEUE = "default"
STOP_TIMEOUT = 10.0


def consumes_default_queue(worker: Any) -> bool:
    """True when the worker consumes the ``default`` queue (explicitly, or with no ``-Q`` at all)."""
    consume_from = getattr(worker.app.amqp.queues, "consume_from", None)
    return not consume_from or FILLS_QUEUE in consume_from


class DefaultQueueThreadStep(bootsteps.StartStopStep):
    """A loop (:meth:`run`, ended by the stop event) in a daemon thread of a worker that consumes the ``default``
    queue: started after the pool when the ``enabled_setting`` is true, stopped on warm shutdown within
    ``STOP_TIMEOUT``; the thread's database connections are closed when it ends."""

    requires = ("celery.worker.components:Pool",)
    thread_name = ""
    enabled_setting = ""
    ended_message = ""  # logged when the loop raises

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def run(self, stop: threading.Event) -> None:
        raise NotImplementedError

    def on_exit(self) -> None:
        """In the thread, after the loop ended and before its connections close."""

    def start(self, worker: Any) -> None:
        from django.conf import settings

        if not getattr(settings, self.enabled_setting) or not consumes_default_queue(worker):
            return
        self._thread = threading.Thread(target=self._main, name=self.thread_name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        from django.db import connections

        try:
            self.run(self._stop)
        except Exception:
            logger.exception(self.ended_message)
        finally:
            self.on_exit()
            connections.close_all()

    def stop(self, worker: Any) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join(STOP_TIMEOUT)
        if self._thread.is_alive():
            logger.error("%s did not stop in time", self.thread_name, extra={"timeout_s": STOP_TIMEOUT})

    shutdown = stop


class FillEngineBootstep(DefaultQueueThreadStep):
    thread_name = "fill-engine"
    enabled_setting = "PAPER_FILL_ENGINE_ENABLED"
    ended_message = "fill engine thread ended with an error; this worker applies no fills until restarted"

    def run(self, stop: threading.Event) -> None:
        from .engine import FillEngine  # deferred: Celery loads its bootsteps before Django's app registry is ready

        FillEngine().run(stop)

    def on_exit(self) -> None:
        from apps.core.realtime import group_sends_wait  # deferred: as the engine above

        group_sends_wait(2.0)  # order pushes of the last fills leave before the worker exits
