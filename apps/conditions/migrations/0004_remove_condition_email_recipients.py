"""Typed e-mail recipients are gone: condition alerts go to the owner's verified address only. A migration of
its own: PostgreSQL refuses to alter a table with the previous migration's updates still pending."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("conditions", "0003_attach_conditions"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="condition",
            name="email_recipients",
        ),
    ]
