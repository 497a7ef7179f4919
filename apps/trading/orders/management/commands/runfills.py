"""``python manage.py runfills``: one fill engine in the foreground (debugging, benchmarks, extra capacity).

Same code as the default worker's bootstep; it joins the same consumer group, so it can run next to the
workers. SIGINT/SIGTERM stop it after the current batch.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.core.gc_tuning import tune_after_startup
from apps.trading.orders.engine import FillEngine


class Command(BaseCommand):
    help = "Apply trade ticks from the fill stream to open paper orders (one consumer of the fills group)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--consumer", default="", help="Consumer name in the group (default: host-pid-thread).")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        engine = FillEngine(consumer=options["consumer"] or None)
        tune_after_startup()  # as the default workers do once ready (apps/core/gc_tuning.py)
        engine.run(stop)
