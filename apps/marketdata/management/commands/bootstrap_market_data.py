import asyncio
import sys

from django.core.management.base import BaseCommand, CommandError

from apps.marketdata.bootstrap import market_data_bootstrap
from apps.marketdata.broker_services import kis_bulk_config, kis_client_async
from apps.marketdata.collection import universe_codes
from apps.marketdata.tasks import _market_now, calendar_sync_if_due


class Command(BaseCommand):
    help = (
        "The start-up fill in the foreground, with a progress bar: daily history (90 trading days on a first run), "
        "missing base prices and the session's minute bars so far. Workers run it by themselves when they start."
    )

    def handle(self, *args, **opts):
        calendar_sync_if_due()
        calendar, market = _market_now()
        if market is None:
            raise CommandError("the market clock is unavailable (is the sandbox or the broker reachable?)")
        codes = universe_codes()
        if not codes:
            raise CommandError("the universe is empty: run `python manage.py load_universe` first")

        def bar(phase: str, done: int, total: int) -> None:
            width = 30
            filled = width * done // total if total else width
            sys.stderr.write(f"\r{phase:<11} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()

        async def go():
            async with kis_client_async(kis_bulk_config()) as client:
                return await market_data_bootstrap(client=client, market=market, calendar=calendar, codes=codes,
                                                   progress=bar)  # fmt: skip

        run = asyncio.run(go())
        self.stdout.write(f"start-up fill #{run.pk} {run.status}: {run.note}")
        if run.error_summary:
            self.stdout.write(f"failed: {', '.join(sorted(run.error_summary))}")
