"""Runs the strategy host (``live.StrategyHost``) inside every Celery worker that consumes the ``default``
queue, beside the fill engine and for the same reasons (``apps/trading/orders/bootstep.py``): a daemon thread of
the worker's main process, started after the pool, stopped on warm shutdown. Only the holder of the host lease
works; the others stand by and take over when it dies."""

from __future__ import annotations

import threading

from apps.trading.orders.bootstep import DefaultQueueThreadStep


class StrategyHostBootstep(DefaultQueueThreadStep):
    thread_name = "strategy-host"
    enabled_setting = "STRATEGY_HOST_ENABLED"
    ended_message = "strategy host thread ended with an error; this worker hosts no strategies"

    def run(self, stop: threading.Event) -> None:
        from .live import StrategyHost  # deferred: Celery loads its bootsteps before Django's app registry is ready

        StrategyHost().run(stop)
