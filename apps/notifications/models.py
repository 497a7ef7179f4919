"""Notification channels of a user, the notifications recorded for them and one delivery per channel.

- A :class:`Channel` is one destination the user configured: the browser (toasts), an e-mail address, a
  Slack incoming webhook or a Telegram bot chat. Its destination (address, webhook URL, bot token and chat
  id) is stored encrypted (``secret``, Fernet, :mod:`.crypto`); ``label`` is a masked, displayable form.
  A channel delivers only once verified (the user typed back a code it sent; browser channels need none).
- A :class:`Notification` is one event told to one user, unique on ``(user, key)``: the same event
  (an order's fill, a day's summary) recorded twice is one notification, so it is sent once.
- A :class:`Delivery` is one notification through one channel, unique on ``(notification, channel)``; its
  ``status`` is claimed under a row lock before sending, so two tasks never send it twice.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.core.models import TimeStampedModel


class ChannelKind(models.TextChoices):
    BROWSER = "browser", _("Browser toast")
    EMAIL = "email", _("E-mail")
    SLACK = "slack", _("Slack")
    TELEGRAM = "telegram", _("Telegram")


class EventKind(models.TextChoices):
    FILL = "fill", _("Fill")
    PARTIAL_FILL = "partial_fill", _("Partial fill")
    TRIGGER = "trigger", _("Trigger")
    REJECTION = "rejection", _("Rejection")
    CANCEL = "cancel", _("Cancel")
    DAILY_SUMMARY = "daily_summary", _("Daily summary")


ALL_EVENTS = [kind.value for kind in EventKind]


def default_events() -> list[str]:
    return list(ALL_EVENTS)


class Channel(TimeStampedModel):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_channels")
    kind = models.CharField(max_length=8, choices=ChannelKind.choices)
    label = models.CharField(max_length=120, help_text="Masked destination, safe to display.")
    secret = models.TextField(blank=True, help_text="Fernet token of the destination (JSON); never shown.")
    events = models.JSONField(default=default_events, help_text="Event kinds this channel receives.")
    enabled = models.BooleanField(default=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    verification_hash = models.CharField(max_length=128, blank=True)
    verification_sent_at = models.DateTimeField(null=True, blank=True)
    verification_attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["owner", "kind"], name="notif_channel_owner_kind")]

    def __str__(self) -> str:
        return f"{self.kind} {self.label} ({self.owner_id})"

    @property
    def verified(self) -> bool:
        return self.verified_at is not None


class Notification(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    key = models.CharField(max_length=120, help_text="The event's identity, e.g. order.42.filled.")
    event = models.CharField(max_length=16, choices=EventKind.choices)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="notification_once_per_event")]

    def __str__(self) -> str:
        return f"{self.key} -> {self.user_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    RETRYING = "retrying", _("Retrying")
    DEFERRED = "deferred", _("Deferred (rate limit)")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")


class Delivery(models.Model):
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=8, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=200, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["notification", "channel"], name="delivery_once_per_channel")]
        indexes = [models.Index(fields=["status"], name="delivery_status")]

    def __str__(self) -> str:
        return f"{self.notification_id} via {self.channel_id}: {self.status}"
