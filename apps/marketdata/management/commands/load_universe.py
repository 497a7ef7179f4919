from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.marketdata.services import universe_refresh
from apps.marketdata.universe import UniverseSourceError, builtin_universe, latest_listing_file, read_listing


class Command(BaseCommand):
    help = "Load or refresh the stock universe (the largest N by market cap) from the listing in HOGA_DATA_DIR."

    def add_arguments(self, parser):
        parser.add_argument("--file", help="Listing CSV to read instead of the newest one in the data directory.")
        parser.add_argument(
            "--size", type=int, default=settings.UNIVERSE_SIZE, help="Universe size (default %(default)s)."
        )

    def handle(self, *args, **options):
        if options["size"] < 1:
            raise CommandError("--size must be at least 1")
        path = options["file"] or (latest_listing_file(settings.HOGA_DATA_DIR) if settings.HOGA_DATA_DIR else None)
        if path:
            try:
                listed = read_listing(Path(path), limit=options["size"])
            except UniverseSourceError as exc:
                raise CommandError(str(exc)) from exc
            source = str(path)
        else:
            listed = builtin_universe(limit=options["size"])
            source = "built-in list (no listing file: HOGA_DATA_DIR is not set)"
        result = universe_refresh(listed=listed)
        self.stdout.write(
            f"universe: {len(listed)} stocks from {source} "
            f"(created {result['created']}, updated {result['updated']}, deactivated {result['deactivated']})"
        )
