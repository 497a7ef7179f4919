from django.core.management.base import BaseCommand, CommandError

from apps.core.cli import parse_date
from apps.marketdata.services import validation_run_execute


class Command(BaseCommand):
    help = (
        "Compare two sources' daily bars (OHLC within a tolerance, volume reported separately) and write a CSV report."
    )

    def add_arguments(self, parser):
        parser.add_argument("--a", required=True, help="First source, e.g. kis")
        parser.add_argument("--b", required=True, help="Second source, e.g. fdr or yahoo")
        parser.add_argument("--from", dest="date_from", required=True, help="YYYY-MM-DD")
        parser.add_argument("--to", dest="date_to", required=True, help="YYYY-MM-DD")
        parser.add_argument("--codes", default="", help="Comma-separated stock codes (default: all both carry)")
        parser.add_argument("--tolerance", type=float, default=0.5, help="Percent (default %(default)s)")

    def handle(self, *args, **opts):
        codes = [c.strip() for c in opts["codes"].split(",") if c.strip()]
        try:
            run = validation_run_execute(
                source_a=opts["a"],
                source_b=opts["b"],
                date_from=parse_date(opts["date_from"]),
                date_to=parse_date(opts["date_to"]),
                codes=codes,
                tolerance_pct=opts["tolerance"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"validation #{run.pk} {run.source_a} vs {run.source_b} {run.date_from}..{run.date_to}\n"
            f"  stock-days compared: {run.total_compared} (OHLC values {run.values_compared})\n"
            f"  OHLC agreement: {run.agreement_pct}% within ±{run.tolerance_pct}%; "
            f"mean |diff| {run.mean_diff_pct}%, max {run.max_diff_pct}% "
            f"({run.max_diff_stock} {run.max_diff_date} {run.max_diff_field})\n"
            f"  volume agreement: {run.volume_agreement_pct}% (max |diff| {run.volume_max_diff_pct}%)\n"
            f"  days only in {run.source_a}: {run.only_in_a}, only in {run.source_b}: {run.only_in_b}; "
            f"not compared (adjusted vs raw stretches): {run.skipped_adjustment_mismatch}\n"
            f"  price disagreements: {run.disagreements}; report: {run.report_path}"
        )
