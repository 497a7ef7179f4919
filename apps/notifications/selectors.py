"""Read-only queries of notifications: always scoped to the requesting user."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.core.exceptions import NotFound

from .models import Channel, Delivery, Notification


def channel_list_for_user(*, user) -> QuerySet[Channel]:
    return Channel.objects.filter(owner=user).order_by("id")


def channel_for_user(*, user, channel_id: int) -> Channel:
    channel = Channel.objects.filter(owner=user, pk=channel_id).first()
    if channel is None:
        raise NotFound("no such channel", code="channel_not_found")
    return channel


def notification_list_for_user(*, user) -> QuerySet[Notification]:
    deliveries = Delivery.objects.select_related("channel").order_by("id")
    return (
        Notification.objects.filter(user=user)
        .prefetch_related(Prefetch("deliveries", queryset=deliveries))
        .order_by("-id")
    )
