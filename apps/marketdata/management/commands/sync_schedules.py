from django.core.management.base import BaseCommand

from apps.marketdata.schedules import schedules_sync


class Command(BaseCommand):
    help = "Write the beat schedule defined in code (apps/marketdata/schedules.py) to the database."

    def handle(self, *args, **options):
        for name in schedules_sync():
            self.stdout.write(f"schedule: {name}")
