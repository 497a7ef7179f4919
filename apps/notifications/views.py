"""The /notifications/ page: your channels (add, verify with the code, choose events, switch off, delete) and
the history of what was sent where. Plain forms that work without JavaScript; thin views over the services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from apps.core.exceptions import ApplicationError

from .models import ALL_EVENTS, ChannelKind, EventKind
from .selectors import channel_list_for_user, notification_list_for_user
from .services import channel_create, channel_delete, channel_update, channel_verification_send, channel_verify

HISTORY_SHOWN = 100
DESTINATION_FIELDS = ("address", "webhook_url", "bot_token", "chat_id")


def _error(request, exc: ApplicationError) -> None:
    messages.error(request, f"{exc.message} [{exc.code}]")


@login_required
@require_GET
def notifications_page(request):
    context = {
        "channels": list(channel_list_for_user(user=request.user)),
        "history": list(notification_list_for_user(user=request.user)[:HISTORY_SHOWN]),
        "kinds": ChannelKind.choices,
        "event_kinds": EventKind.choices,
    }
    return render(request, "notifications/page.html", context)


@login_required
@require_POST
def channel_add_submit(request):
    post = request.POST
    destination = {k: post.get(k, "")[:500] for k in DESTINATION_FIELDS if post.get(k)}
    events = [e for e in post.getlist("events") if e in ALL_EVENTS] or None
    try:
        channel = channel_create(user=request.user, kind=post.get("kind", ""), destination=destination, events=events)
        if not channel.verified:
            channel_verification_send(user=request.user, channel_id=channel.pk)
            messages.success(
                request,
                _("%(channel)s: verification code sent. Enter the code you received.") % {"channel": channel.label},
            )
        else:
            messages.success(request, _("%(channel)s: added.") % {"channel": channel.label})
    except ApplicationError as exc:
        _error(request, exc)
    return redirect("notifications:page")


@login_required
@require_POST
def channel_send_code_submit(request, channel_id: int):
    try:
        channel = channel_verification_send(user=request.user, channel_id=channel_id)
        messages.success(request, _("%(channel)s: verification code sent.") % {"channel": channel.label})
    except ApplicationError as exc:
        _error(request, exc)
    return redirect("notifications:page")


@login_required
@require_POST
def channel_verify_submit(request, channel_id: int):
    try:
        channel = channel_verify(user=request.user, channel_id=channel_id, code=request.POST.get("code", "")[:12])
        messages.success(request, _("%(channel)s: verified.") % {"channel": channel.label})
    except ApplicationError as exc:
        _error(request, exc)
    return redirect("notifications:page")


@login_required
@require_POST
def channel_settings_submit(request, channel_id: int):
    events = [e for e in request.POST.getlist("events") if e in ALL_EVENTS]
    try:
        channel_update(
            user=request.user, channel_id=channel_id, events=events, enabled=request.POST.get("enabled") == "on"
        )
        messages.success(request, _("Settings saved."))
    except ApplicationError as exc:
        _error(request, exc)
    return redirect("notifications:page")


@login_required
@require_POST
def channel_delete_submit(request, channel_id: int):
    try:
        channel_delete(user=request.user, channel_id=channel_id)
        messages.success(request, _("Channel deleted."))
    except ApplicationError as exc:
        _error(request, exc)
    return redirect("notifications:page")
