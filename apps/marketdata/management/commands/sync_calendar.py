from django.core.management.base import BaseCommand

from apps.marketdata.tasks import calendar_sync_if_due


class Command(BaseCommand):
    help = (
        "Store the broker's answer of which days KRX is open (KIS 국내휴장일조회 CTCA0903R); once a day unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="query again even if today's sync succeeded")

    def handle(self, *args, **opts):
        run = calendar_sync_if_due(force=opts["force"])
        if run is None:
            self.stdout.write("the calendar was synced today already (use --force to query again)")
            return
        self.stdout.write(f"calendar sync #{run.pk} {run.status}: {run.note}")
