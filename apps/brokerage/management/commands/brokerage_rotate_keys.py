from django.core.management.base import BaseCommand
from django.db import transaction

from apps.brokerage.services import broker_keys_rotate


class Command(BaseCommand):
    help = "Re-encrypt every broker link's key and secret under the first of BROKERAGE_SECRET_KEYS."

    def handle(self, *args, **opts):
        with transaction.atomic():
            count = broker_keys_rotate()
        self.stdout.write(f"re-encrypted {count} broker link(s)")
