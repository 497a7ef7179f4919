from django.core.management.base import BaseCommand

from apps.core.schedules import schedules_sync


class Command(BaseCommand):
    help = "Write the beat schedule defined in code by every app (apps/core/schedules.py) to the database."

    def handle(self, *args, **options):
        for name in schedules_sync():
            self.stdout.write(f"schedule: {name}")
