"""Kiwoom saved conditions (조건검색), their searches, their entry/exit events and their live members.

Conditions belong to a user's broker connection (``BrokerConnection``: which Kiwoom app key is whose,
linked by the operator). A user sees the conditions of their own connection, plus those the operator shared
with one of their groups in the admin; nobody else's. Alerts are e-mailed to the owner's verified address
only, and Slack posting is an operator switch (admin), never a user's.

Membership changes only through ``services`` under the condition's row lock, so every entry (IN) and exit
(OUT) is recorded exactly once whether the real-time stream or the reconciliation search saw it first.
History (runs, events) is never deleted by a sync: a condition that disappeared from the broker's list is
only marked ``missing_since``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.models import TimeStampedModel
from apps.trading.accounts.selectors import verified_email_for_user


class Broker(models.TextChoices):
    KIWOOM = "kiwoom", "Kiwoom (키움증권)"


class EventKind(models.TextChoices):
    IN = "IN", "편입 (entered)"
    OUT = "OUT", "이탈 (left)"


class EventSource(models.TextChoices):
    REALTIME = "realtime", "Real-time alert"
    POLL = "poll", "Found by the reconciliation search"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    OK = "ok", "Done"
    FAILED = "failed", "Failed"


class BrokerConnection(TimeStampedModel):
    """A user's broker account as Hoga reaches it: the app key (by its id, never the key) whose saved conditions
    are that user's. One owner per key; linked by the operator in the admin (``broker_connection_link``)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="broker_connections")
    broker = models.CharField(max_length=16, choices=Broker.choices, default=Broker.KIWOOM)
    key_id = models.CharField(
        max_length=16, help_text="Id of the app key (KIWOOM_APP_KEY, or the sandbox's demo pair): its hash prefix."
    )
    label = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        ordering = ["broker", "owner_id"]
        constraints = [
            models.UniqueConstraint(fields=["broker", "key_id"], name="broker_connection_one_owner_per_key"),
            models.UniqueConstraint(fields=["owner", "broker"], name="broker_connection_one_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.get_broker_display()} {self.key_id} ({self.owner})"


class Condition(TimeStampedModel):
    """One saved condition of the owner's broker account (created in 영웅문; Hoga only reads it)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conditions")
    connection = models.ForeignKey(
        BrokerConnection,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="conditions",
        help_text="The broker connection the condition was read from; empty: detached (shown to nobody).",
    )
    shared_with = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="shared_conditions",
        help_text="Groups whose members may see this condition (read-only). Set by the operator.",
    )
    broker = models.CharField(max_length=16, choices=Broker.choices, default=Broker.KIWOOM)
    seq = models.CharField(max_length=8, help_text="The broker's condition number (조건식 일련번호), unpadded.")
    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True, help_text="Searched every 30 s in session and shown live.")
    realtime = models.BooleanField(default=True, help_text="Registered for real-time alerts on the feed.")
    notify_browser = models.BooleanField(default=True, help_text="Toasts in the owner's open pages.")
    notify_email = models.BooleanField(default=False, help_text="E-mails the owner's verified address.")
    notify_slack = models.BooleanField(
        default=False, help_text="Posts to CONDITIONS_SLACK_WEBHOOK_URL. An operator setting (admin only)."
    )
    missing_since = models.DateTimeField(
        null=True, blank=True, help_text="No longer in the broker's list since then (history is kept)."
    )
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["owner_id", "broker", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "broker", "seq"], name="condition_unique_per_owner_broker"),
            models.CheckConstraint(condition=~Q(seq=""), name="condition_seq_not_empty"),
        ]
        indexes = [models.Index(fields=["broker", "seq"], name="condition_broker_seq")]

    def __str__(self) -> str:
        return f"[{self.seq}] {self.name}"

    def recipients(self) -> list[str]:
        """The e-mail address to notify: the owner's verified address, else none."""

        email = verified_email_for_user(user=self.owner)
        return [email] if email else []


class ConditionRun(models.Model):
    """One normal search (CNSRREQ search_type 0) of a condition by the reconciliation job."""

    condition = models.ForeignKey(Condition, on_delete=models.CASCADE, related_name="runs")
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=RunStatus.choices, default=RunStatus.RUNNING)
    hits = models.PositiveIntegerField(default=0, help_text="Stocks the search returned.")
    entered = models.PositiveIntegerField(default=0, help_text="IN events recorded from this search.")
    exited = models.PositiveIntegerField(default=0, help_text="OUT events recorded from this search.")
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"search of {self.condition_id} at {self.started_at:%Y-%m-%d %H:%M:%S} ({self.status})"


class ConditionEvent(models.Model):
    """A stock entering (IN) or leaving (OUT) a condition. Never updated or deleted."""

    condition = models.ForeignKey(Condition, on_delete=models.CASCADE, related_name="events")
    code = models.CharField(max_length=6, help_text="6-character KRX short code.")
    stock = models.ForeignKey(
        "marketdata.Stock", on_delete=models.SET_NULL, null=True, blank=True, related_name="condition_events"
    )
    name = models.CharField(max_length=100, blank=True, default="", help_text="Stock name when known.")
    kind = models.CharField(max_length=3, choices=EventKind.choices)
    at = models.DateTimeField(help_text="When it happened (the alert's time, or the search's).")
    price = models.BigIntegerField(null=True, blank=True, help_text="KRW at the event, when a quote was known.")
    source = models.CharField(max_length=8, choices=EventSource.choices)
    run = models.ForeignKey(ConditionRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="events")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(code__regex=r"^[0-9A-Z]{6}$"), name="condition_event_code_format"),
        ]
        indexes = [models.Index(fields=["condition", "code", "id"], name="condition_event_cond_code")]

    def __str__(self) -> str:
        return f"{self.kind} {self.code} in {self.condition_id} ({self.source})"


class ConditionMember(models.Model):
    """A stock currently in a condition: created by its IN event, deleted by its OUT event."""

    condition = models.ForeignKey(Condition, on_delete=models.CASCADE, related_name="members")
    code = models.CharField(max_length=6)
    stock = models.ForeignKey(
        "marketdata.Stock", on_delete=models.SET_NULL, null=True, blank=True, related_name="condition_members"
    )
    name = models.CharField(max_length=100, blank=True, default="")
    since = models.DateTimeField(help_text="Time of the IN event.")
    price_in = models.BigIntegerField(null=True, blank=True, help_text="KRW at the IN event.")
    entered_event = models.ForeignKey(
        ConditionEvent, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["condition_id", "-since", "code"]
        constraints = [
            models.UniqueConstraint(fields=["condition", "code"], name="condition_member_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.code} in {self.condition_id}"
