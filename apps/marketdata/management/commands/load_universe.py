from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.marketdata.models import Stock
from apps.marketdata.services import universe_refresh
from apps.marketdata.universe import (
    ListedStock,
    UniverseSourceError,
    all_listed_file,
    builtin_universe,
    latest_listing_file,
    pick_codes,
    read_listing,
)


class Command(BaseCommand):
    help = (
        "Load or refresh the collection universe: the largest N by market cap from the listing in HOGA_DATA_DIR, "
        "or the codes of HOGA_UNIVERSE_CODES / --codes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--file", help="Listing CSV to read instead of the newest one in the data directory.")
        parser.add_argument(
            "--size", type=int, default=settings.UNIVERSE_SIZE, help="Universe size (default %(default)s)."
        )
        parser.add_argument(
            "--codes",
            default=",".join(settings.UNIVERSE_CODES),
            help="Comma-separated codes making the universe, in rank order (default: HOGA_UNIVERSE_CODES).",
        )

    def handle(self, *args, **options):
        if options["size"] < 1:
            raise CommandError("--size must be at least 1")
        codes = [c for c in (options["codes"] or "").split(",") if c.strip()]
        try:
            if codes:
                listed, source = self._explicit(codes, options["file"])
            else:
                listed, source = self._top(options["file"], options["size"])
        except UniverseSourceError as exc:
            raise CommandError(str(exc)) from exc
        result = universe_refresh(listed=listed)
        self.stdout.write(
            f"universe: {len(listed)} stocks from {source} "
            f"(created {result['created']}, updated {result['updated']}, dropped {result['dropped']})"
        )

    def _top(self, file, size):
        path = file or (latest_listing_file(settings.HOGA_DATA_DIR) if settings.HOGA_DATA_DIR else None)
        if path:
            return read_listing(Path(path), limit=size), str(path)
        return builtin_universe(limit=size), "built-in list (no listing file: HOGA_DATA_DIR is not set)"

    def _explicit(self, codes, file):
        known: dict[str, ListedStock] = {}
        path = file or (all_listed_file(settings.HOGA_DATA_DIR) if settings.HOGA_DATA_DIR else None)
        if path:
            known.update({s.code: s for s in read_listing(Path(path), limit=1_000_000)})
        for stock in Stock.objects.filter(active=True, code__in=[c.strip().upper() for c in codes]):
            known.setdefault(stock.code, ListedStock(stock.code, stock.name, stock.market, 0, stock.market_cap))
        for item in builtin_universe(limit=100):
            known.setdefault(item.code, item)
        return pick_codes(codes, known), f"the configured codes ({path or 'listed stocks'})"
