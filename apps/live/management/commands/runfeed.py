"""``python manage.py runfeed``: the feed holder in the foreground (debugging, tests).

Same code as the Celery ``feed`` worker's bootstep: it competes for the same Redis lease, so running it
next to a feed worker is safe (one of them stands by). SIGINT/SIGTERM stop it cleanly.
"""

from __future__ import annotations

import asyncio
import signal

from django.core.management.base import BaseCommand, CommandError

from apps.core.gc_tuning import tune_after_startup
from apps.core.groups import valid_code
from apps.live.feed.holder import run_feed


class Command(BaseCommand):
    help = "Hold the real-time broker feed in the foreground (competes for the same lease as the feed worker)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--watchlist",
            default="",
            help="Comma-separated codes replacing the universe as the watchlist (orders and viewers come first).",
        )

    def handle(self, *args, **options):

        watchlist = None
        if options["watchlist"]:
            watchlist = [c.strip() for c in options["watchlist"].split(",") if c.strip()]
            bad = [c for c in watchlist if not valid_code(c)]
            if bad:
                raise CommandError(f"not stock codes: {', '.join(bad)}")

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await run_feed(stop, watchlist=watchlist)

        tune_after_startup()  # as the feed worker does once ready (apps/core/gc_tuning.py)
        asyncio.run(main())
