from decimal import ROUND_HALF_UP, Decimal

from django.db import models
from django.db.models import F, Q

from apps.core.models import TimeStampedModel

AVG_PRICE_QUANT = Decimal("0.0001")


class Position(TimeStampedModel):
    """A paper account's holding of one stock, changed by delta on every fill (``position_fills_apply``).

    Average-price convention (the one HTS/MTS apps show as 매입단가):
    - ``cost_basis`` is the integer KRW paid for the shares still held, **excluding commission**:
      a buy adds ``price × qty``; a sell of ``q`` out of ``Q`` removes ``cost_basis × q // Q``
      (all of it when the position is closed), so no won is ever lost to rounding.
    - ``avg_price = cost_basis / quantity`` (Decimal, 4 places; 0 when flat), derived, never accumulated.
    - ``realized_pnl`` is the gross trading result of sells: ``proceeds − cost basis removed``.
      Commissions (both sides) and the sell-side transaction tax are **not** in the average price nor in
      ``realized_pnl``: they are summed in ``fees_paid`` / ``taxes_paid``, so the net result is
      ``realized_pnl − fees_paid − taxes_paid``.
    - Reconciliation (to the won, per account):
      ``cash + Σ cost_basis + Σ fees_paid + Σ taxes_paid − Σ realized_pnl == initial_cash``.

    ``reserved_quantity`` is held by open sell orders; the free quantity is ``quantity − reserved_quantity``.
    A flat position (quantity 0) keeps its row so its realized P&L and fees stay counted until a reset.
    """

    # indexed by ``position_unique_per_account_stock`` (its leading column)
    account = models.ForeignKey(
        "accounts.PaperAccount", on_delete=models.CASCADE, related_name="positions", db_index=False
    )
    stock = models.ForeignKey("marketdata.Stock", on_delete=models.PROTECT, related_name="positions")
    quantity = models.BigIntegerField(default=0)
    reserved_quantity = models.BigIntegerField(default=0, help_text="Shares held by open sell orders.")
    cost_basis = models.BigIntegerField(default=0, help_text="KRW paid for the shares held, excluding commission.")
    avg_price = models.DecimalField(max_digits=18, decimal_places=4, default=Decimal("0"))
    realized_pnl = models.BigIntegerField(default=0, help_text="Σ (sell proceeds − cost basis removed), gross.")
    fees_paid = models.BigIntegerField(default=0, help_text="Σ commission on buys and sells, KRW.")
    taxes_paid = models.BigIntegerField(default=0, help_text="Σ securities transaction tax on sells, KRW.")

    class Meta:
        ordering = ["account", "stock"]
        constraints = [
            models.UniqueConstraint(fields=["account", "stock"], name="position_unique_per_account_stock"),
            models.CheckConstraint(condition=Q(quantity__gte=0), name="position_quantity_non_negative"),
            models.CheckConstraint(condition=Q(reserved_quantity__gte=0), name="position_reserved_non_negative"),
            models.CheckConstraint(
                condition=Q(reserved_quantity__lte=F("quantity")), name="position_reserved_within_quantity"
            ),
            models.CheckConstraint(condition=Q(cost_basis__gte=0), name="position_cost_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.stock_id} x{self.quantity}"

    @property
    def free_quantity(self) -> int:
        return self.quantity - self.reserved_quantity

    @staticmethod
    def average(cost_basis: int, quantity: int) -> Decimal:
        """``cost_basis / quantity`` rounded to 4 places (0 when flat)."""
        if quantity <= 0:
            return Decimal("0")
        return (Decimal(cost_basis) / Decimal(quantity)).quantize(AVG_PRICE_QUANT, rounding=ROUND_HALF_UP)
