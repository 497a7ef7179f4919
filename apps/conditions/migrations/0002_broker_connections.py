"""Conditions belong to a broker connection: the schema (the data follows in 0003)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


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
    ]
