from django.core.management.base import BaseCommand, CommandError

from apps.fundamentals.tasks import collect_flow_estimates, collect_flows, collect_statements
from apps.marketdata.models import CollectionRun, Stock


class Command(BaseCommand):
    help = (
        "Collect investor flows (after the close: the day's, gaps backfilled), intraday estimates and financial "
        "statements now, whatever the schedule says; each run is recorded as a collection run."
    )

    def add_arguments(self, parser):
        parser.add_argument("what", nargs="+", choices=["flows", "estimates", "statements"])
        parser.add_argument("--codes", default="", help="Comma-separated stock codes (default: the universe)")

    def handle(self, *args, **opts):
        codes = [c.strip() for c in opts["codes"].split(",") if c.strip()] or None
        if codes:
            unknown = sorted(set(codes) - set(Stock.objects.filter(code__in=codes).values_list("code", flat=True)))
            if unknown:
                raise CommandError(f"unknown stock codes: {', '.join(unknown)}")
        tasks = {"flows": collect_flows, "estimates": collect_flow_estimates, "statements": collect_statements}
        for name in opts["what"]:
            result = tasks[name].apply(kwargs={"codes": codes, "force": True}).get()
            if result is None:
                self.stdout.write(f"{name}: nothing to do (the market clock is unavailable or the day is closed)")
                continue
            run = CollectionRun.objects.get(pk=result["run"])
            self.stdout.write(
                f"{name}: run #{run.pk} {run.status}: requested {run.requested}, stored {run.stored}, "
                f"failed {run.failed}, backfilled {run.backfilled}{'; ' + run.note if run.note else ''}"
            )
