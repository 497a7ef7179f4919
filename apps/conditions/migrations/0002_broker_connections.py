"""Conditions belong to a broker connection.

Existing rows stay valid: the owner of the conditions is made the owner of this deployment's Kiwoom key
(``BrokerConnection``) and their conditions are attached to it. When several users had synced the same
deployment list (anyone could), the key goes to the earliest staff user among them, else to the user who
synced first; the other users' copies are kept with their history but detached (connection empty: shown
to nobody, searched for nobody; the operator sees them in the admin and may share them with a group).
Slack posting became the operator's switch: it is turned off everywhere for the operator to turn on again
in the admin. Typed e-mail recipients are dropped: alerts go to the owner's verified address only.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


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
        ('auth', '0012_alter_user_first_name_max_length'),
        ('conditions', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='condition',
            name='shared_with',
            field=models.ManyToManyField(blank=True, help_text='Groups whose members may see this condition (read-only). Set by the operator.', related_name='shared_conditions', to='auth.group'),
        ),
        migrations.AlterField(
            model_name='condition',
            name='notify_email',
            field=models.BooleanField(default=False, help_text="E-mails the owner's verified address."),
        ),
        migrations.AlterField(
            model_name='condition',
            name='notify_slack',
            field=models.BooleanField(default=False, help_text='Posts to CONDITIONS_SLACK_WEBHOOK_URL. An operator setting (admin only).'),
        ),
        migrations.CreateModel(
            name='BrokerConnection',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('broker', models.CharField(choices=[('kiwoom', 'Kiwoom (키움증권)')], default='kiwoom', max_length=16)),
                ('key_id', models.CharField(help_text="Id of the app key (KIWOOM_APP_KEY, or the sandbox's demo pair): its hash prefix.", max_length=16)),
                ('label', models.CharField(blank=True, default='', max_length=100)),
                ('owner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='broker_connections', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['broker', 'owner_id'],
            },
        ),
        migrations.AddField(
            model_name='condition',
            name='connection',
            field=models.ForeignKey(blank=True, help_text='The broker connection the condition was read from; empty: detached (shown to nobody).', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='conditions', to='conditions.brokerconnection'),
        ),
        migrations.AddConstraint(
            model_name='brokerconnection',
            constraint=models.UniqueConstraint(fields=('broker', 'key_id'), name='broker_connection_one_owner_per_key'),
        ),
        migrations.AddConstraint(
            model_name='brokerconnection',
            constraint=models.UniqueConstraint(fields=('owner', 'broker'), name='broker_connection_one_per_user'),
        ),
        migrations.RunPython(attach, detach),
        migrations.RemoveField(
            model_name='condition',
            name='email_recipients',
        ),
    ]
