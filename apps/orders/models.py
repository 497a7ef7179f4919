from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q

from apps.core.models import TimeStampedModel


class Side(models.TextChoices):
    BUY = "BUY", "Buy"
    SELL = "SELL", "Sell"


class OrderType(models.TextChoices):
    MARKET = "MARKET", "Market"
    LIMIT = "LIMIT", "Limit"


class OrderStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    PARTIALLY_FILLED = "PARTIALLY_FILLED", "Partially filled"
    FILLED = "FILLED", "Filled"
    CANCELLED = "CANCELLED", "Cancelled"
    REJECTED = "REJECTED", "Rejected"
    EXPIRED = "EXPIRED", "Expired"


OPEN_STATUSES = (OrderStatus.PENDING, OrderStatus.PARTIALLY_FILLED)


class Order(TimeStampedModel):
    """A DAY order of a paper account. Changed only by the orders services, under a row lock.

    Invariants (checked by constraints where the database can):
    - ``0 <= filled_quantity <= quantity``; FILLED iff ``filled_quantity == quantity``.
    - ``filled_amount = Σ price × qty`` of its executions; ``avg_fill_price = filled_amount / filled_quantity``.
    - An open BUY holds ``reserved_cash == reserve_price × remaining + truncate(reserve_price × remaining ×
      rate)`` of its account's ``reserved_cash`` (``reserve_price``: the limit price, or the day's upper limit
      for MARKET buys); every other order holds 0. An open SELL holds ``remaining`` of its position's
      ``reserved_quantity``.
    - A trade tick can fill the order only if it entered the fill stream after the order was accepted
      (``stream_id > fill_after_id``) and on or after its ``trading_date``.
    """

    account = models.ForeignKey("accounts.PaperAccount", on_delete=models.CASCADE, related_name="orders")
    stock = models.ForeignKey("marketdata.Stock", on_delete=models.PROTECT, related_name="paper_orders")
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=6, choices=OrderType.choices)
    quantity = models.BigIntegerField(validators=[MinValueValidator(1)])
    limit_price = models.BigIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING, db_index=True)
    filled_quantity = models.BigIntegerField(default=0)
    filled_amount = models.BigIntegerField(default=0, help_text="Σ price × quantity of the executions, KRW.")
    avg_fill_price = models.DecimalField(max_digits=18, decimal_places=4, null=True, blank=True)
    commission_total = models.BigIntegerField(default=0)
    tax_total = models.BigIntegerField(default=0)
    commission_rate = models.DecimalField(
        max_digits=7, decimal_places=6, help_text="The account's rate when the order was accepted; used by its fills."
    )
    reserve_price = models.BigIntegerField(default=0, help_text="Price the buy reservation is computed at.")
    reserved_cash = models.BigIntegerField(default=0, help_text="Cash this order still holds (open buys).")
    reject_reason = models.CharField(max_length=200, blank=True)
    client_order_id = models.CharField(max_length=64, null=True, blank=True)
    trading_date = models.DateField(help_text="The session the order is for (DAY order: expires after its close).")
    queued = models.BooleanField(default=False, help_text="Accepted while the market was closed.")
    band_checked = models.BooleanField(
        default=True,
        help_text="False for a queued order until its session's first tick re-checks it against that day's band.",
    )
    fill_after_id = models.CharField(max_length=32, default="0-0", help_text="Fill-stream id at acceptance.")
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When it was filled, cancelled or expired.")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "client_order_id"],
                condition=Q(client_order_id__isnull=False),
                name="order_unique_client_order_id",
            ),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0) & Q(filled_quantity__lte=F("quantity")),
                name="order_filled_within_quantity",
            ),
            models.CheckConstraint(condition=Q(reserved_cash__gte=0), name="order_reserved_non_negative"),
            models.CheckConstraint(
                condition=Q(order_type="MARKET", limit_price__isnull=True)
                | Q(order_type="LIMIT", limit_price__isnull=False),
                name="order_limit_price_matches_type",
            ),
        ]
        indexes = [
            models.Index(fields=["stock", "status"], name="order_stock_status"),
            models.Index(fields=["account", "status"], name="order_account_status"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.side} {self.order_type} {self.stock_id} x{self.quantity} {self.status}"

    @property
    def remaining_quantity(self) -> int:
        return self.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class FillSource(models.TextChoices):
    TICK = "tick", "Live trade print"
    POLL = "poll", "REST price snapshot (no live slot)"


class Execution(models.Model):
    """One fill of an order at one price. Money in integer KRW, truncated to the won.

    ``(order, tick_stream_id, leg)`` is unique: a tick fills an order at most once (``leg`` numbers the
    book levels a MARKET order walks within one tick). ``amount = price × quantity``; ``commission =
    truncate(amount × rate)``; ``tax`` (sells only) ``= truncate(amount × TransactionTaxRate)``.

    ``source`` states the fidelity of the fill: ``tick`` from a live trade print (its exact price and volume);
    ``poll`` from a REST price snapshot of a stock that had no live slot: the snapshot's price, at most the
    volume traded since the previous snapshot, no order book walked.
    """

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="executions")
    account = models.ForeignKey("accounts.PaperAccount", on_delete=models.CASCADE, related_name="executions")
    stock = models.ForeignKey("marketdata.Stock", on_delete=models.PROTECT, related_name="paper_executions")
    side = models.CharField(max_length=4, choices=Side.choices)
    price = models.BigIntegerField()
    quantity = models.BigIntegerField()
    amount = models.BigIntegerField()
    commission = models.BigIntegerField(default=0)
    tax = models.BigIntegerField(default=0)
    tax_rate = models.DecimalField(max_digits=7, decimal_places=6, default=Decimal("0"))
    realized_pnl = models.BigIntegerField(default=0, help_text="Sells: proceeds − cost basis removed (gross).")
    tick_stream_id = models.CharField(max_length=32)
    leg = models.PositiveSmallIntegerField(default=0)
    source = models.CharField(
        max_length=8, choices=FillSource.choices, default=FillSource.TICK, help_text="What the fill was priced from."
    )
    executed_at = models.DateTimeField(help_text="Time of the trade tick that filled it.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "tick_stream_id", "leg"], name="execution_once_per_tick"),
            models.CheckConstraint(condition=Q(quantity__gt=0) & Q(price__gt=0), name="execution_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.stock_id} {self.quantity}@{self.price}"


class AppliedFillTick(models.Model):
    """Marks a fill-stream tick as applied (inserted in the transaction that applied it).

    The primary key makes application exactly-once across fill workers: a second worker inserting the
    same ``stream_id`` waits for the first transaction and then finds the row (``ON CONFLICT DO NOTHING``).
    Only ticks that reached at least one eligible order are recorded; old rows are pruned by expiry.
    """

    stream_id = models.CharField(max_length=32, primary_key=True)
    code = models.CharField(max_length=6)
    applied_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.stream_id} {self.code}"


class TaxMarket(models.TextChoices):
    KOSPI = "KOSPI", "KOSPI"
    KOSDAQ = "KOSDAQ", "KOSDAQ"
    KONEX = "KONEX", "KONEX"


class TransactionTaxRate(models.Model):
    """Securities transaction tax on sells (증권거래세 + 농특세), date-effective (krx-rules §3.6).

    ``effective_from`` is the first **settlement** date the rate applies to (the tax follows the
    settlement/양도 date, T+2), so a sell executed on the last two trading days of a year pays the next
    year's rate. The rate in force on a day is the row with the latest ``effective_from`` <= that day.
    """

    market = models.CharField(max_length=6, choices=TaxMarket.choices)
    effective_from = models.DateField()
    rate = models.DecimalField(max_digits=7, decimal_places=6, validators=[MinValueValidator(0)])
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["market", "effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["market", "effective_from"], name="tax_rate_unique_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.market} from {self.effective_from}: {self.rate}"
