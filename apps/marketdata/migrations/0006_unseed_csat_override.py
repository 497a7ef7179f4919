"""The 2025-11-13 CSAT-day row seeded by 0004 is now part of the package layer (apps/marketdata/krx_special_days.py),
so it no longer needs an operator override: the seeded row is removed when an operator has not changed it."""

from datetime import date, time

from django.db import migrations

SEEDED = {"date": date(2025, 11, 13), "closed": False, "open_time": time(10, 0), "close_time": time(16, 30),
          "note": "CSAT day: session 10:00-16:30"}  # fmt: skip


def unseed(apps, schema_editor):
    apps.get_model("marketdata", "CalendarOverride").objects.filter(**SEEDED).delete()


def reseed(apps, schema_editor):
    apps.get_model("marketdata", "CalendarOverride").objects.get_or_create(
        date=SEEDED["date"], defaults={k: v for k, v in SEEDED.items() if k != "date"}
    )


class Migration(migrations.Migration):
    dependencies = [("marketdata", "0005_brokercalendarday_referenceprice")]
    operations = [migrations.RunPython(unseed, reseed)]
