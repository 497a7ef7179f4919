from __future__ import annotations

from django.db import models


class SnapshotSource(models.TextChoices):
    CLOSE = "close", "Recorded after the close"
    REBUILD = "rebuild", "Rebuilt from executions"


class EquitySnapshot(models.Model):
    """An account's equity at one session's close: ``equity = cash + positions_value`` (positions marked at
    that day's closing price, integer KRW), with the day's flows and trading totals.

    ``net_flow`` is money put in (+) or taken out (−) that day: the initial cash on the account's first day.
    Returns exclude it (:mod:`apps.portfolio.metrics`). Unique per ``(account, date)``; the after-close job
    writes ``close`` rows, :func:`~apps.portfolio.services.equity_snapshots_rebuild` writes ``rebuild``
    rows for days that have none (and replaces only rebuilt rows).
    """

    account = models.ForeignKey("accounts.PaperAccount", on_delete=models.CASCADE, related_name="equity_snapshots")
    date = models.DateField()
    cash = models.BigIntegerField()
    positions_value = models.BigIntegerField()
    equity = models.BigIntegerField()
    net_flow = models.BigIntegerField(default=0)
    bought = models.BigIntegerField(default=0, help_text="Σ buy amounts of the day, KRW.")
    sold = models.BigIntegerField(default=0, help_text="Σ sell amounts of the day, KRW.")
    fees = models.BigIntegerField(default=0)
    taxes = models.BigIntegerField(default=0)
    realized_pnl = models.BigIntegerField(default=0, help_text="Gross realized P&L of the day's sells.")
    source = models.CharField(max_length=8, choices=SnapshotSource.choices)
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "date"]
        constraints = [models.UniqueConstraint(fields=["account", "date"], name="equity_snapshot_once_per_day")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.date}: {self.equity:,}"
