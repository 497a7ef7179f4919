import asyncio
import sys

from django.core.management.base import BaseCommand, CommandError

from apps.core.cli import parse_date
from apps.marketdata.broker_services import kis_client_async
from apps.marketdata.collection import daily_backfill, universe_codes
from apps.marketdata.models import Stock


class Command(BaseCommand):
    help = "Backfill broker daily bars (raw prices) for a date range, with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="date_from", required=True)
        parser.add_argument("--to", dest="date_to", required=True)
        parser.add_argument("--codes", default="", help="Comma-separated codes (default: the universe)")

    def handle(self, *args, **opts):
        start, end = parse_date(opts["date_from"]), parse_date(opts["date_to"])
        if start > end:
            raise CommandError("--from is after --to")
        codes = [c.strip() for c in opts["codes"].split(",") if c.strip()] or universe_codes()
        unknown = sorted(set(codes) - set(Stock.objects.filter(code__in=codes).values_list("code", flat=True)))
        if unknown:
            raise CommandError(f"unknown stock codes: {', '.join(unknown)} (run load_universe?)")

        def bar(done: int, total: int) -> None:
            width = 30
            filled = width * done // total
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} stocks")
            sys.stderr.flush()

        async def go():
            async with kis_client_async() as client:
                return await daily_backfill(client=client, codes=codes, start=start, end=end, progress=bar)

        run = asyncio.run(go())
        sys.stderr.write("\n")
        self.stdout.write(
            f"daily backfill #{run.pk}: {run.stored} bars stored for {run.requested} stocks, {run.failed} failed"
            + (f" ({', '.join(sorted(run.error_summary))})" if run.error_summary else "")
        )
