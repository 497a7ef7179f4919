"""The /conditions/ page: the user's conditions with live members, the event log, notification toggles
(plain forms that work without JavaScript), "sync from Kiwoom" and a one-click paper buy of a stock that
just entered. Views are thin: selectors to read, services to change, coded errors shown as messages."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from apps.core.exceptions import ApplicationError
from apps.trading.accounts.selectors import paper_account_list_for_user, verified_email_for_user

from .selectors import broker_connection_for_user, condition_event_list_for_user, condition_list_with_members
from .services import USER_TOGGLES, condition_event_order_place, condition_update, conditions_sync

EVENTS_SHOWN = 100


def _error(request, exc: ApplicationError) -> None:
    messages.error(request, f"{exc.message} [{exc.code}]")


@login_required
@require_GET
def conditions_page(request):

    conditions = list(condition_list_with_members(user=request.user))
    events = list(condition_event_list_for_user(user=request.user)[:EVENTS_SHOWN])
    context = {
        "conditions": conditions,
        "events": events,
        "order_quantity": settings.CONDITIONS_ORDER_QUANTITY,
        "account": paper_account_list_for_user(user=request.user).first(),
        "connection": broker_connection_for_user(user=request.user),
        "verified_email": verified_email_for_user(user=request.user),
    }
    return render(request, "conditions/page.html", context)


@login_required
@require_POST
def conditions_sync_submit(request):
    try:
        result = conditions_sync(owner=request.user)
    except ApplicationError as exc:
        _error(request, exc)
    else:
        messages.success(
            request,
            _("Read %(total)s Kiwoom conditions (%(new)s new, %(renamed)s renamed, %(missing)s left the list).")
            % {
                "total": result.total,
                "new": len(result.created),
                "renamed": len(result.renamed),
                "missing": len(result.missing),
            },
        )
    return redirect("conditions:page")


@login_required
@require_POST
def condition_settings_submit(request, condition_id: int):
    post = request.POST
    # A user's toggles only: Slack is the operator's (admin) and e-mail goes to the verified address.
    changes = {key: post.get(key) == "on" for key in USER_TOGGLES}
    try:
        condition = condition_update(condition_id=condition_id, user=request.user, **changes)
    except ApplicationError as exc:
        _error(request, exc)
    else:
        messages.success(request, _("Settings of '%(name)s' saved.") % {"name": condition.name})
    return redirect("conditions:page")


@login_required
@require_POST
def condition_order_submit(request):
    try:
        event_id = int(request.POST.get("event", ""))
        quantity = int(request.POST.get("quantity", settings.CONDITIONS_ORDER_QUANTITY))
    except ValueError:
        messages.error(request, _("The order quantity must be a whole number.") + " [invalid_quantity]")
        return redirect("conditions:page")
    try:
        order = condition_event_order_place(user=request.user, event_id=event_id, quantity=quantity)
    except ApplicationError as exc:
        _error(request, exc)
    else:
        messages.success(
            request,
            _("Paper market buy order #%(id)s: %(code)s %(quantity)s shares (%(status)s).")
            % {"id": order.pk, "code": order.stock.code, "quantity": order.quantity, "status": order.status},
        )
    return redirect("conditions:page")
