import secrets

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.conditions.models import BrokerConnection
from apps.conditions.selectors import current_key_id
from apps.conditions.services import broker_connection_link
from apps.trading.accounts.services import paper_account_ensure, user_ensure


class Command(BaseCommand):
    help = (
        "Create the demo trader (with a paper account) and the staff admin if they do not exist, and link this "
        "deployment's Kiwoom key to the demo trader when it is nobody's yet (its conditions become theirs)."
    )

    def handle(self, *args, **options):
        wanted = [
            (settings.HOGA_DEMO_USERNAME, settings.HOGA_DEMO_PASSWORD, False, "demo trader"),
            (settings.HOGA_ADMIN_USERNAME, settings.HOGA_ADMIN_PASSWORD, True, "staff admin"),
        ]
        for username, password, staff, label in wanted:
            chosen = password or secrets.token_urlsafe(12)
            user, created = user_ensure(
                username=username, password=chosen, email=settings.HOGA_ADMIN_EMAIL if staff else "", staff=staff
            )
            paper_account_ensure(user=user)
            if created:
                # Printed once, on creation only; the database keeps just the hash.
                self.stdout.write(self.style.SUCCESS(f"created {label}: username={username} password={chosen}"))
            else:
                self.stdout.write(f"{label} '{username}' exists (password unchanged)")
            if not staff:
                self._link_kiwoom(user)

    def _link_kiwoom(self, user) -> None:

        key_id = current_key_id()
        if not key_id or BrokerConnection.objects.filter(key_id=key_id).exists():
            return
        if BrokerConnection.objects.filter(owner=user).exists():
            return
        broker_connection_link(user=user, key_id=key_id, label="this deployment's Kiwoom key")
        self.stdout.write(f"linked the Kiwoom key {key_id} to '{user.username}' (its conditions are theirs)")
