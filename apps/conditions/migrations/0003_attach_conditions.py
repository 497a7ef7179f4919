"""Conditions belong to a broker connection.

Existing rows stay valid: the owner of the conditions is made the owner of this deployment's Kiwoom key
(``BrokerConnection``) and their conditions are attached to it. When several users had synced the same
deployment list (anyone could), the key goes to the earliest staff user among them, else to the user who
synced first; the other users' copies are kept with their history but detached (connection empty: shown
to nobody, searched for nobody; the operator sees them in the admin and may share them with a group).
Slack posting became the operator's switch: it is turned off everywhere for the operator to turn on again
in the admin. Typed e-mail recipients are dropped: alerts go to the owner's verified address only.
"""

from django.conf import settings
from django.db import migrations


def _current_key_id() -> str:
    try:
        from apps.marketdata.broker_services import kiwoom_config

        return kiwoom_config().key_id
    except Exception:  # Kiwoom not configured: the key id of an unknown key
        return "unconfigured"


def attach(apps, schema_editor):
    Condition = apps.get_model("conditions", "Condition")
    BrokerConnection = apps.get_model("conditions", "BrokerConnection")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    Condition.objects.filter(notify_slack=True).update(notify_slack=False)
    owner_ids = list(Condition.objects.order_by("owner_id").values_list("owner_id", flat=True).distinct())
    if not owner_ids:
        return
    staff = list(User.objects.filter(pk__in=owner_ids, is_staff=True).order_by("pk").values_list("pk", flat=True))
    if staff:
        chosen = staff[0]
    else:
        chosen = Condition.objects.order_by("created_at", "pk").values_list("owner_id", flat=True).first()
    connection = BrokerConnection.objects.create(
        owner_id=chosen, broker="kiwoom", key_id=_current_key_id(), label="linked when conditions got owners"
    )
    Condition.objects.filter(owner_id=chosen).update(connection=connection)


def detach(apps, schema_editor):
    Condition = apps.get_model("conditions", "Condition")
    Condition.objects.update(connection=None)


class Migration(migrations.Migration):
    dependencies = [
        ("conditions", "0002_broker_connections"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(attach, detach)]
