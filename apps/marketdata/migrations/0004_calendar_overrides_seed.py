"""Known corrections to exchange_calendars 4.13.2's XKRX (operators add more in the admin)."""

from datetime import date, time

from django.db import migrations

SEED = [
    # CSAT (수능) day: every KRX time shifts one hour later (10:00-16:30); XKRX 4.13.2 has the wrong hours.
    (date(2025, 11, 13), False, time(10, 0), time(16, 30), "CSAT day: session 10:00-16:30"),
]


def seed(apps, schema_editor):
    CalendarOverride = apps.get_model("marketdata", "CalendarOverride")
    for day, closed, open_time, close_time, note in SEED:
        CalendarOverride.objects.get_or_create(
            date=day, defaults={"closed": closed, "open_time": open_time, "close_time": close_time, "note": note}
        )


def unseed(apps, schema_editor):
    apps.get_model("marketdata", "CalendarOverride").objects.filter(date__in=[row[0] for row in SEED]).delete()


class Migration(migrations.Migration):
    dependencies = [("marketdata", "0003_brokertoken")]
    operations = [migrations.RunPython(seed, unseed)]
