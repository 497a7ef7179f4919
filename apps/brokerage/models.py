"""A paper account's link to a broker account and the orders executed there.

Invariants: a link's app key and secret are stored encrypted (``vault``) and never shown back (only a hint);
an order's ``filled_qty``/``filled_value`` equal the sum of its executions, changed only under its row lock
(``select_for_update``) together with the execution rows; an execution is recorded once (unique ``dedupe_key``
per order); where the broker's order inquiry disagrees with what the notices told, the broker wins and the
difference is recorded as a :class:`BrokerDisagreement`.
"""

from django.db import models

from apps.core.models import TimeStampedModel
from apps.trading.accounts.models import PaperAccount


class BrokerEnv(models.TextChoices):
    PAPER = "paper", "KIS 모의투자 (paper server)"
    REAL = "real", "KIS real account"


class BrokerLink(TimeStampedModel):
    account = models.OneToOneField(PaperAccount, on_delete=models.CASCADE, related_name="broker_link")
    env = models.CharField(max_length=5, choices=BrokerEnv.choices, default=BrokerEnv.PAPER)
    cano = models.CharField(max_length=8, help_text="CANO: the 8-digit account number.")
    product_code = models.CharField(max_length=2, default="01", help_text="ACNT_PRDT_CD")
    hts_id = models.CharField(max_length=32, help_text="HTS ID: the tr_key of the execution notices.")
    app_key_encrypted = models.TextField()
    app_secret_encrypted = models.TextField()
    app_key_hint = models.CharField(max_length=12, help_text="The app key's first four characters, for recognition.")
    real_opt_in = models.BooleanField(default=False, help_text="Real accounts only: orders may be sent.")
    real_opt_in_at = models.DateTimeField(null=True, blank=True)
    daily_value_limit = models.BigIntegerField(help_text="KRW of orders per day (real accounts); 0 = none allowed.")
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(cano__regex=r"^[0-9]{8}$"), name="broker_link_cano_format"),
            models.CheckConstraint(
                condition=models.Q(product_code__regex=r"^[0-9]{2}$"), name="broker_link_product_format"
            ),
            models.CheckConstraint(condition=models.Q(daily_value_limit__gte=0), name="broker_link_limit_nonneg"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} -> KIS {self.env} {self.cano[:4]}****"


class BrokerOrder(models.Model):
    class Side(models.TextChoices):
        BUY = "BUY", "Buy"
        SELL = "SELL", "Sell"

    class Type(models.TextChoices):
        LIMIT = "LIMIT", "Limit"
        MARKET = "MARKET", "Market"

    class Status(models.TextChoices):
        PENDING = "PENDING", "Sent, no answer yet"
        ACKNOWLEDGED = "ACKNOWLEDGED", "Acknowledged"
        PARTIALLY_FILLED = "PARTIALLY_FILLED", "Partially filled"
        FILLED = "FILLED", "Filled"
        REFUSED = "REFUSED", "Refused by the broker"
        UNKNOWN = "UNKNOWN", "No answer: to be reconciled"
        CANCELLED = "CANCELLED", "Cancelled (its filled part kept)"

    link = models.ForeignKey(BrokerLink, on_delete=models.PROTECT, related_name="orders")
    client_order_id = models.CharField(max_length=64)
    code = models.CharField(max_length=6)
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=6, choices=Type.choices)
    quantity = models.PositiveIntegerField()
    limit_price = models.BigIntegerField(null=True, blank=True)
    venue = models.CharField(max_length=3, default="KRX", help_text="EXCG_ID_DVSN_CD: KRX, NXT or SOR.")
    env = models.CharField(max_length=5, choices=BrokerEnv.choices)
    value_reserved = models.BigIntegerField(help_text="KRW counted against the daily limit.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    broker_order_no = models.CharField(max_length=20, blank=True)
    broker_branch = models.CharField(max_length=10, blank=True)
    filled_qty = models.PositiveIntegerField(default=0)
    filled_value = models.BigIntegerField(default=0)
    noticed_qty = models.PositiveIntegerField(
        default=0,
        help_text="Shares the execution notices have told of so far (their cumulative quantity at the broker); "
        "a notice counts only the part of its fill beyond filled_qty (what the reconciliation already counted).",
    )
    cancelled_qty = models.PositiveIntegerField(
        default=0, help_text="Shares whose cancel the broker confirmed (its notice or its order inquiry)."
    )
    cancel_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When a cancel of the remainder was sent (one at a time)."
    )
    cancel_order_no = models.CharField(max_length=20, blank=True, help_text="ODNO of the cancel order at the broker.")
    message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["link", "client_order_id"], name="broker_order_idempotent"),
            models.UniqueConstraint(
                fields=["link", "broker_order_no"],
                condition=~models.Q(broker_order_no=""),
                name="broker_order_number_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(filled_qty__lte=models.F("quantity")), name="broker_order_fill_le_qty"
            ),
            models.CheckConstraint(
                condition=models.Q(cancelled_qty__lte=models.F("quantity") - models.F("filled_qty")),
                name="broker_order_cancel_le_open",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.side} {self.quantity} {self.code} at KIS {self.env} ({self.status})"

    @property
    def executed_at(self) -> str:
        """Where the order is executed, as every order shows it."""
        return f"KIS {'모의투자' if self.env == BrokerEnv.PAPER else '실전'} ({self.env}) · {self.venue}"


class BrokerExecution(models.Model):
    class Source(models.TextChoices):
        NOTICE = "notice", "Execution notice (WebSocket)"
        RECONCILE = "reconcile", "Reconciled from the broker's order inquiry"

    order = models.ForeignKey(BrokerOrder, on_delete=models.PROTECT, related_name="executions")
    quantity = models.IntegerField(help_text="Shares; negative only for a correction the broker's state required.")
    price = models.BigIntegerField()
    venue = models.CharField(max_length=3, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    dedupe_key = models.CharField(max_length=100)
    broker_cumulative_qty = models.PositiveIntegerField(
        null=True, blank=True, help_text="The order's cumulative filled quantity at the broker after this fill."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "dedupe_key"], name="broker_execution_once"),
        ]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.quantity} @ {self.price} ({self.source})"


class BrokerBalance(models.Model):
    """The broker's last answer to the balance inquiry (``inquire-balance``) of a link: it wins over what Hoga
    expected, and the difference is recorded as a :class:`BrokerDisagreement`."""

    link = models.OneToOneField(BrokerLink, on_delete=models.CASCADE, related_name="balance")
    cash = models.BigIntegerField(help_text="dnca_tot_amt: the deposit (예수금총금액), KRW.")
    securities_value = models.BigIntegerField(default=0, help_text="scts_evlu_amt: the holdings' value, KRW.")
    total_value = models.BigIntegerField(default=0, help_text="tot_evlu_amt: deposit + holdings, KRW.")
    holdings = models.JSONField(default=list, help_text="[{code, name, quantity, avg_price, value}] per output1 row.")
    hoga_net_value = models.BigIntegerField(
        default=0, help_text="Sold minus bought KRW of the link's orders as Hoga counted them when this was fetched."
    )
    hoga_net_qty = models.JSONField(
        default=dict, help_text="{code: bought minus sold shares} of the link's orders when this was fetched."
    )
    fetched_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.link_id}: {self.cash:,} KRW + {len(self.holdings)} holdings at {self.fetched_at:%H:%M:%S}"


class BrokerDisagreement(models.Model):
    """Where the broker's state differed from ours (the broker's wins), for the admin and the API."""

    link = models.ForeignKey(BrokerLink, on_delete=models.CASCADE, related_name="disagreements")
    order = models.ForeignKey(BrokerOrder, on_delete=models.CASCADE, null=True, blank=True)
    kind = models.CharField(max_length=30)
    ours = models.JSONField(default=dict)
    broker = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.link_id} {self.kind} {self.created_at:%Y-%m-%d %H:%M}"
