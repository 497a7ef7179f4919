"""Seed the securities transaction tax table from krx-rules §3.6 (settlement-date effective)."""

from datetime import date
from decimal import Decimal

from django.db import migrations

# (market, first settlement date, rate, basis)
RATES = [
    ("KOSPI", date(2023, 1, 1), Decimal("0.0020"), "0.05% tax + 0.15% 농특세"),
    ("KOSPI", date(2024, 1, 1), Decimal("0.0018"), "0.03% tax + 0.15% 농특세"),
    ("KOSPI", date(2025, 1, 1), Decimal("0.0015"), "0.00% tax + 0.15% 농특세"),
    ("KOSPI", date(2026, 1, 1), Decimal("0.0020"), "0.05% tax + 0.15% 농특세 (restored)"),
    ("KOSDAQ", date(2023, 1, 1), Decimal("0.0020"), "krx-rules §3.6"),
    ("KOSDAQ", date(2024, 1, 1), Decimal("0.0018"), "krx-rules §3.6"),
    ("KOSDAQ", date(2025, 1, 1), Decimal("0.0015"), "krx-rules §3.6"),
    ("KOSDAQ", date(2026, 1, 1), Decimal("0.0020"), "krx-rules §3.6 (restored)"),
    ("KONEX", date(2023, 1, 1), Decimal("0.0010"), "krx-rules §3.6"),
]


def seed(apps, schema_editor):
    rate_model = apps.get_model("orders", "TransactionTaxRate")
    for market, effective_from, rate, note in RATES:
        rate_model.objects.update_or_create(
            market=market, effective_from=effective_from, defaults={"rate": rate, "note": note}
        )


def unseed(apps, schema_editor):
    rate_model = apps.get_model("orders", "TransactionTaxRate")
    for market, effective_from, _rate, _note in RATES:
        rate_model.objects.filter(market=market, effective_from=effective_from).delete()


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
