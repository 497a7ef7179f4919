"""The /conditions/ page: the user's conditions with live members, the event log, notification toggles
(plain forms that work without JavaScript), "sync from Kiwoom" and a one-click paper buy of a stock that
just entered. Views are thin: selectors to read, services to change, coded errors shown as messages."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.core.exceptions import ApplicationError

from .selectors import broker_connection_for_user, condition_event_list_for_user, condition_list_with_members
from .services import USER_TOGGLES, condition_event_order_place, condition_update, conditions_sync

EVENTS_SHOWN = 100


def _error(request, exc: ApplicationError) -> None:
    messages.error(request, f"{exc.message} [{exc.code}]")


@login_required
@require_GET
def conditions_page(request):
    from apps.accounts.selectors import paper_account_list_for_user, verified_email_for_user

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
            f"키움 조건식 {result.total}개를 읽었습니다 (새로 {len(result.created)}, 이름 변경 {len(result.renamed)}, "
            f"목록에서 빠짐 {len(result.missing)}).",
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
        messages.success(request, f"'{condition.name}' 설정을 저장했습니다.")
    return redirect("conditions:page")


@login_required
@require_POST
def condition_order_submit(request):
    try:
        event_id = int(request.POST.get("event", ""))
        quantity = int(request.POST.get("quantity", settings.CONDITIONS_ORDER_QUANTITY))
    except ValueError:
        messages.error(request, "주문 수량은 정수여야 합니다. [invalid_quantity]")
        return redirect("conditions:page")
    try:
        order = condition_event_order_place(user=request.user, event_id=event_id, quantity=quantity)
    except ApplicationError as exc:
        _error(request, exc)
    else:
        messages.success(
            request, f"모의투자 시장가 매수 주문 #{order.pk}: {order.stock.code} {order.quantity}주 ({order.status})."
        )
    return redirect("conditions:page")
