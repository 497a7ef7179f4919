"""Strategies (a configured rule on a paper account), their audit trail of signals, and backtests."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.core.models import TimeStampedModel


class StrategyStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    RUNNING = "running", _("Running")
    STOPPED = "stopped", _("Stopped")


class Timeframe(models.TextChoices):
    MINUTE = "1m", _("1 minute")
    DAY = "1d", _("1 day")


class Strategy(TimeStampedModel):
    """A strategy class (``kind``: a built-in or an operator-deployed one) with its parameters and risk limits,
    trading one paper account. ``state`` is the live engine's state (the strategy's own, its ledger and the
    last tick-stream entry it applied), written with the signals of each batch in one transaction."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="strategies")
    account = models.ForeignKey("accounts.PaperAccount", on_delete=models.CASCADE, related_name="strategies")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True)
    codes = models.JSONField(default=list, blank=True, help_text="Stocks the rule watches (bar rules).")
    condition = models.ForeignKey(
        "conditions.Condition", on_delete=models.SET_NULL, null=True, blank=True, related_name="strategies"
    )
    status = models.CharField(max_length=8, choices=StrategyStatus.choices, default=StrategyStatus.DRAFT)
    stop_reason = models.CharField(max_length=300, blank=True, default="")
    stopped_by = models.CharField(max_length=20, blank=True, default="", help_text="risk, user, admin or error.")
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    capital = models.BigIntegerField(help_text="KRW the strategy may commit (positions + open buys).")
    max_position_value = models.BigIntegerField(default=0, help_text="KRW per stock; 0: no limit.")
    max_order_value = models.BigIntegerField(default=0, help_text="KRW per order; 0: no limit.")
    daily_loss_limit = models.BigIntegerField(default=0, help_text="KRW lost in a day that stops it; 0: none.")
    max_orders_per_minute = models.PositiveIntegerField(default=0, help_text="0: no limit.")
    state = models.JSONField(default=dict, blank=True)
    last_stream_id = models.CharField(max_length=32, default="0-0", help_text="Last tick-stream entry applied.")
    last_event_id = models.BigIntegerField(default=0, help_text="Last condition event applied.")
    last_execution_id = models.BigIntegerField(default=0, help_text="Last execution of its orders applied.")

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "strategies"
        constraints = [
            models.CheckConstraint(condition=Q(capital__gt=0), name="strategy_capital_positive"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name} ({self.kind}, {self.status})"

    @property
    def order_prefix(self) -> str:
        return f"st{self.pk}"


class Outcome(models.TextChoices):
    PLACED = "placed", _("Order placed")
    REFUSED = "refused", _("Refused by the order service")
    SKIPPED = "skipped", _("Nothing to do")
    RISK_STOP = "risk_stop", _("Risk limit: strategy stopped")


class Signal(models.Model):
    """One buy or sell a strategy asked for, with what it saw (``inputs``) and what became of it. ``key`` is
    derived from the trigger (bar time, condition event, print): unique per strategy, so replaying a trigger
    after a restart records nothing twice."""

    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="signals")
    key = models.CharField(max_length=120)
    at = models.DateTimeField(help_text="Market time of the trigger (a bar's start, an alert's time).")
    code = models.CharField(max_length=6)
    side = models.CharField(max_length=4)
    quantity = models.BigIntegerField(default=0)
    inputs = models.JSONField(default=dict, blank=True)
    client_order_id = models.CharField(max_length=64)
    order = models.ForeignKey(
        "orders.Order", on_delete=models.SET_NULL, null=True, blank=True, related_name="strategy_signals"
    )
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reason = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [models.UniqueConstraint(fields=["strategy", "key"], name="signal_unique_key")]

    def __str__(self) -> str:
        return f"{self.side} {self.code} x{self.quantity} {self.outcome}"


class BacktestStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class Backtest(TimeStampedModel):
    """A run of a strategy kind with parameters over stored bars; ``result`` holds the analytics, the equity
    curve and the signals (the first ``MAX_STORED_SIGNALS``)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="backtests")
    strategy = models.ForeignKey(Strategy, on_delete=models.SET_NULL, null=True, blank=True, related_name="backtests")
    name = models.CharField(max_length=100, blank=True, default="")
    kind = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True)
    codes = models.JSONField(default=list)
    timeframe = models.CharField(max_length=2, choices=Timeframe.choices, default=Timeframe.MINUTE)
    start = models.DateField()
    end = models.DateField()
    limits = models.JSONField(default=dict, help_text="The risk limits (capital, max_position_value, ...).")
    commission_rate = models.DecimalField(max_digits=7, decimal_places=6)
    status = models.CharField(max_length=8, choices=BacktestStatus.choices, default=BacktestStatus.QUEUED)
    progress = models.FloatField(default=0.0)
    bars_total = models.BigIntegerField(default=0)
    bars_done = models.BigIntegerField(default=0)
    task_id = models.CharField(max_length=64, blank=True, default="")
    result = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=300, blank=True, default="")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.start}..{self.end} {self.status}"
