from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from apps.core.krx import phases
from apps.core.models import TimeStampedModel

from .executors import PAPER_ENGINE, paper_engine_where


class Side(models.TextChoices):
    BUY = "BUY", _("Buy")
    SELL = "SELL", _("Sell")


class OrderType(models.TextChoices):
    """Order types; the KIS order division code of each (krx-rules §3.3) in the comment."""

    MARKET = "MARKET", _("Market")  # 01
    LIMIT = "LIMIT", _("Limit")  # 00
    #: 장전 시간외 종가 (05): KRX 08:30–08:40 at the previous close; no price from the user.
    PRE_CLOSE_PRICE = "PRE_CLOSE_PRICE", _("Pre-open at the previous close")
    #: 장후 시간외 종가 (06): KRX 15:40–16:00 (orders from 15:30) at today's close; no price from the user.
    POST_CLOSE_PRICE = "POST_CLOSE_PRICE", _("After-hours at today's close")
    #: 시간외 단일가 (07): KRX 16:00–18:00, a call every 10 minutes; a limit within ±10 % of today's close.
    AFTER_HOURS_SINGLE = "AFTER_HOURS_SINGLE", _("After-hours single price")


#: The order types that carry a limit price (the others take none: market, or a closing-price trade).
PRICED_TYPES = (OrderType.LIMIT, OrderType.AFTER_HOURS_SINGLE)
#: Types filled at a price the exchange sets (the close), like a market order but never beyond it.
CLOSE_PRICE_TYPES = (OrderType.PRE_CLOSE_PRICE, OrderType.POST_CLOSE_PRICE)
#: The KIS order division code of each type (krx-rules §3.3).
KIS_ORDER_CODES = {
    OrderType.LIMIT: "00",
    OrderType.MARKET: "01",
    OrderType.PRE_CLOSE_PRICE: "05",
    OrderType.POST_CLOSE_PRICE: "06",
    OrderType.AFTER_HOURS_SINGLE: "07",
}


def order_kind(order_type: str) -> str:
    """The order kind of ``apps.core.krx.phases.accepted_kinds`` (``"limit"``, ``"after_hours_single"``…)."""
    return str(order_type).lower()


class Route(models.TextChoices):
    """Where an order may execute: one venue, or SOR (the better price of KRX and NXT, print by print)."""

    KRX = phases.KRX, "KRX"
    NXT = phases.NXT, "NXT (Nextrade)"
    SOR = phases.SOR, "SOR (best of KRX and NXT)"


class Venue(models.TextChoices):
    KRX = phases.KRX, "KRX"
    NXT = phases.NXT, "NXT (Nextrade)"


PHASE_CHOICES = [(p, p.replace("_", " ")) for p in (*phases.PHASES, phases.KRX_AFTER_MARKET)]


class OrderStatus(models.TextChoices):
    PENDING = "PENDING", _("Pending")
    PARTIALLY_FILLED = "PARTIALLY_FILLED", _("Partially filled")
    FILLED = "FILLED", _("Filled")
    CANCELLED = "CANCELLED", _("Cancelled")
    REJECTED = "REJECTED", _("Rejected")
    EXPIRED = "EXPIRED", _("Expired")


OPEN_STATUSES = (OrderStatus.PENDING, OrderStatus.PARTIALLY_FILLED)


class TriggerType(models.TextChoices):
    """Conditional orders: each rests until the tape reaches its trigger, then becomes its ``order_type``
    (MARKET; LIMIT for a stop-limit) and follows every rule of that type from the triggering print on."""

    STOP = "STOP", "Stop (market on trigger)"
    STOP_LIMIT = "STOP_LIMIT", "Stop-limit"
    TAKE_PROFIT = "TAKE_PROFIT", "Take-profit (market on trigger)"
    TRAILING_STOP = "TRAILING_STOP", "Trailing stop (market on trigger)"


class TriggerState(models.TextChoices):
    NONE = "", "Not conditional"
    #: A bracket leg whose entry has not filled yet: not watched, holds nothing.
    WAITING = "WAITING", "Waiting for the entry"
    ARMED = "ARMED", "Armed"
    TRIGGERED = "TRIGGERED", "Triggered"


class TriggerDirection(models.TextChoices):
    """Which way the price must move to fire: UP fires at a print >= the trigger, DOWN at a print <= it."""

    NONE = "", "-"
    UP = "UP", "Up (print at or above)"
    DOWN = "DOWN", "Down (print at or below)"


class BracketLeg(models.TextChoices):
    NONE = "", "-"
    ENTRY = "ENTRY", "Entry"
    TAKE_PROFIT = "TAKE_PROFIT", "Take-profit leg"
    STOP_LOSS = "STOP_LOSS", "Stop-loss leg"


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
      (``stream_id > fill_after_id``) and on or after its ``trading_date``, on a venue its ``route`` allows,
      in a phase its ``order_type`` trades in (``fills.fills_from``).
    - ``limit_price`` is set exactly for the priced types (LIMIT, AFTER_HOURS_SINGLE).
    - Conditional orders (``trigger_type`` set) fill only once TRIGGERED; while ARMED the fill engine only
      evaluates their trigger (``triggers``). A trailing stop moves ``trigger_price`` only in the order's
      favour (up for a sell, down for a buy) as ``trail_anchor`` (the best print since it was armed) moves.
    - The two legs of a bracket (``oco_peer`` of each other) hold ONE reservation of ``remaining`` shares
      while both are open; the first to fill cancels the other, which then releases nothing. A WAITING leg
      holds nothing until its entry fills.
    """

    # Indexed by ``order_account_status`` and ``order_stock_status`` (their leading column), and open orders by
    # ``order_open``: every index is written by each placement and each fill, so none is kept twice.
    account = models.ForeignKey(
        "accounts.PaperAccount", on_delete=models.CASCADE, related_name="orders", db_index=False
    )
    stock = models.ForeignKey("marketdata.Stock", on_delete=models.PROTECT, related_name="paper_orders", db_index=False)
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=18, choices=OrderType.choices)
    quantity = models.BigIntegerField(validators=[MinValueValidator(1)])
    limit_price = models.BigIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING)
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
    route = models.CharField(
        max_length=3, choices=Route.choices, default=Route.KRX, help_text="KRX, NXT, or SOR (best of both)."
    )
    phase = models.CharField(
        max_length=20,
        choices=PHASE_CHOICES,
        default=phases.CONTINUOUS,
        help_text="The phase of its venue when the order was accepted (closed: queued for a later session).",
    )
    accepted_at = models.DateTimeField(
        null=True, blank=True, help_text="Market-clock time of acceptance (the sandbox's replay time on the sandbox)."
    )
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When it was filled, cancelled or expired.")
    trigger_type = models.CharField(max_length=13, choices=TriggerType.choices, blank=True, default="")
    trigger_state = models.CharField(max_length=9, choices=TriggerState.choices, blank=True, default="")
    trigger_direction = models.CharField(max_length=4, choices=TriggerDirection.choices, blank=True, default="")
    trigger_price = models.BigIntegerField(null=True, blank=True, help_text="KRW; the print that fires it.")
    trail_amount = models.BigIntegerField(null=True, blank=True, help_text="Trailing stop: distance in KRW.")
    trail_percent = models.DecimalField(
        max_digits=5, decimal_places=2, null=True, blank=True, help_text="Trailing stop: distance in percent."
    )
    trail_anchor = models.BigIntegerField(
        null=True, blank=True, help_text="Trailing stop: the best print since armed (highest for a sell)."
    )
    trail_moved_id = models.CharField(
        max_length=32, blank=True, default="",
        help_text="Trailing stop: fill-stream id of the print that last moved it (an older print, redelivered late, "
        "neither fires nor moves it).",
    )  # fmt: skip
    triggered_at = models.DateTimeField(null=True, blank=True, help_text="Market time of the print that fired it.")
    bracket_leg = models.CharField(max_length=11, choices=BracketLeg.choices, blank=True, default="")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="legs", help_text="A leg's entry."
    )
    oco_peer = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The other leg: the first to fill cancels it.",
    )  # fmt: skip

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(trigger_type="", trigger_state="", trigger_price__isnull=True)
                | (~Q(trigger_type="") & ~Q(trigger_state="") & ~Q(trigger_direction="")),
                name="order_trigger_complete",
            ),
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
                condition=Q(order_type__in=["MARKET", "PRE_CLOSE_PRICE", "POST_CLOSE_PRICE"], limit_price__isnull=True)
                | Q(order_type__in=["LIMIT", "AFTER_HOURS_SINGLE"], limit_price__isnull=False),
                name="order_limit_price_matches_type",
            ),
        ]
        indexes = [
            models.Index(fields=["stock", "status"], name="order_stock_status"),
            models.Index(fields=["account", "status"], name="order_account_status"),
            models.Index(
                fields=["stock", "trigger_direction", "trigger_price"],
                condition=Q(trigger_state="ARMED"),
                name="order_armed_trigger",
            ),
            # the open orders of every account and stock (demand sync, DAY-order expiry), without the closed ones
            models.Index(fields=["trading_date"], condition=Q(status__in=OPEN_STATUSES), name="order_open"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.side} {self.order_type} {self.stock_id} x{self.quantity} {self.status}"

    #: Where it was executed (the other executors' orders say theirs: ``executors.ExternalOrder``).
    executed_by = PAPER_ENGINE

    @property
    def executed_where(self) -> str:
        return paper_engine_where(self.route)

    @property
    def ref(self) -> str:
        return f"paper:{self.pk}"

    @property
    def remaining_quantity(self) -> int:
        return self.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_armed(self) -> bool:
        return self.trigger_state == TriggerState.ARMED


class FillSource(models.TextChoices):
    TICK = "tick", "Live trade print"
    POLL = "poll", "REST price snapshot (no live slot)"


class Execution(models.Model):
    """One fill of an order at one price. Money in integer KRW, truncated to the won.

    ``(order, tick_stream_id, leg)`` is unique: a tick fills an order at most once (``leg`` numbers the
    book levels a MARKET order walks within one tick). ``amount = price × quantity``; ``commission =
    truncate(amount × rate)``; ``tax`` (sells only) ``= truncate(amount × TransactionTaxRate)``.

    ``venue`` and ``phase`` are those of the print (a call phase: the call's single price).

    ``source`` states the fidelity of the fill: ``tick`` from a live trade print (its exact price and volume);
    ``poll`` from a REST price snapshot of a stock that had no live slot: the snapshot's price, at most the
    volume traded since the previous snapshot, no order book walked.
    """

    # indexed by ``execution_once_per_tick`` (its leading column)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="executions", db_index=False)
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
    venue = models.CharField(max_length=3, choices=Venue.choices, default=Venue.KRX, help_text="Where it printed.")
    phase = models.CharField(
        max_length=20, choices=PHASE_CHOICES, default=phases.CONTINUOUS, help_text="The phase of the print."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "tick_stream_id", "leg"], name="execution_once_per_tick"),
            models.CheckConstraint(condition=Q(quantity__gt=0) & Q(price__gt=0), name="execution_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.stock_id} {self.quantity}@{self.price}"

    executed_by = PAPER_ENGINE

    @property
    def executed_where(self) -> str:
        return paper_engine_where(self.venue)


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
