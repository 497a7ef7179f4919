from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from apps.core.models import TimeStampedModel

DEFAULT_INITIAL_CASH = 10_000_000  # KRW
DEFAULT_COMMISSION_RATE = Decimal("0.00015")  # 0.015 %, charged on buys and sells


class PaperAccount(TimeStampedModel):
    """A 모의투자 account. Money is integer KRW and changes only through services (row locks / F())."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="paper_accounts")
    name = models.CharField(max_length=100, default="모의투자")
    initial_cash = models.BigIntegerField(default=DEFAULT_INITIAL_CASH, validators=[MinValueValidator(0)])
    cash = models.BigIntegerField(default=DEFAULT_INITIAL_CASH)
    reserved_cash = models.BigIntegerField(default=0, help_text="Cash held by open buy orders.")
    commission_rate = models.DecimalField(
        max_digits=7, decimal_places=6, default=DEFAULT_COMMISSION_RATE, validators=[MinValueValidator(0)]
    )
    reset_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="paper_account_unique_name_per_user"),
            models.CheckConstraint(condition=Q(cash__gte=0), name="paper_account_cash_non_negative"),
            models.CheckConstraint(condition=Q(reserved_cash__gte=0), name="paper_account_reserved_non_negative"),
            models.CheckConstraint(
                condition=Q(reserved_cash__lte=models.F("cash")), name="paper_account_reserved_within_cash"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"

    @property
    def free_cash(self) -> int:
        return self.cash - self.reserved_cash


class VerifiedEmail(models.Model):
    """The one e-mail address a user proved they read (a signed link sent to it was opened by them).

    Notifications (condition alerts) go to this address only, never to an address someone merely typed."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="verified_email")
    email = models.EmailField()
    verified_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.email} ({self.user})"


class PaperAccountReset(models.Model):
    """Audit record of one reset: what the account held just before it was returned to ``initial_cash``.

    Written in the same transaction as the reset; never updated. ``positions`` is a list of
    ``{"code", "quantity", "avg_price", "cost_basis", "realized_pnl", "fees_paid", "taxes_paid"}``.
    """

    account = models.ForeignKey(PaperAccount, on_delete=models.CASCADE, related_name="resets")
    reset_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reset_at = models.DateTimeField(auto_now_add=True, db_index=True)
    initial_cash = models.BigIntegerField()
    cash_before = models.BigIntegerField()
    reserved_cash_before = models.BigIntegerField()
    positions_cost_before = models.BigIntegerField(default=0, help_text="Sum of the positions' cost basis, KRW.")
    realized_pnl_before = models.BigIntegerField(default=0)
    fees_paid_before = models.BigIntegerField(default=0)
    taxes_paid_before = models.BigIntegerField(default=0)
    cancelled_orders = models.PositiveIntegerField(default=0)
    positions = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-reset_at", "-id"]

    def __str__(self) -> str:
        return f"reset of account {self.account_id} at {self.reset_at:%Y-%m-%d %H:%M}"
