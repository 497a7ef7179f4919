"""The /broker/ page of a broker-linked account: the link (masked), an order form, the orders with where each was
executed, positions and cash (the broker's last balance inquiry moved by the fills since) and disagreements. The
same orders are also on the orders page and placed from the stock page's ticket (``apps.brokerage.executor``).
Plain forms that work without JavaScript; an order to a real account shows a confirmation step first (the order is
sent only from that step's button). Views are thin: selectors and services, coded errors shown as messages."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from apps.core.exceptions import ApplicationError
from apps.core.i18n import bilingual

from .models import BrokerEnv
from .selectors import (
    broker_balance,
    broker_disagreements,
    broker_expected_state,
    broker_link_for_user,
    broker_orders_for_user,
    broker_positions,
)
from .services import broker_order_place

ORDERS_SHOWN = 50


def _int_or_none(raw: str | None) -> int | None:
    raw = (raw or "").strip().replace(",", "")
    return int(raw) if raw.isdecimal() and len(raw) <= 12 else None


@login_required
@require_GET
def broker_page(request):
    link = broker_link_for_user(user=request.user)
    context = {
        "link": link,
        "balance": broker_balance(link=link) if link else None,
        "cash": broker_expected_state(link=link)[1] if link else None,
        "orders": broker_orders_for_user(user=request.user, limit=ORDERS_SHOWN) if link else [],
        "positions": broker_positions(link=link) if link else [],
        "disagreements": broker_disagreements(link=link, limit=20) if link else [],
        "client_order_id": uuid.uuid4().hex,
    }
    return render(request, "brokerage/page.html", context)


@login_required
@require_POST
def broker_order_submit(request):
    post = request.POST
    order = {
        "code": post.get("code", "").strip()[:6],
        "side": post.get("side", ""),
        "order_type": post.get("order_type", "LIMIT"),
        "quantity": _int_or_none(post.get("quantity")),
        "price": _int_or_none(post.get("price")) if post.get("order_type", "LIMIT") == "LIMIT" else None,
        "venue": post.get("venue", "KRX"),
        "client_order_id": post.get("client_order_id", "")[:64] or uuid.uuid4().hex,
    }
    link = broker_link_for_user(user=request.user)
    confirmed = post.get("confirm") == "yes"
    if link is not None and link.env == BrokerEnv.REAL and link.real_opt_in and not confirmed:
        return render(request, "brokerage/confirm.html", {"link": link, "order": order})
    try:
        placed = broker_order_place(
            user=request.user, code=order["code"], side=order["side"], order_type=order["order_type"],
            quantity=order["quantity"], limit_price=order["price"], venue=order["venue"],
            client_order_id=order["client_order_id"], confirm=confirmed,
        )  # fmt: skip
    except ApplicationError as exc:
        messages.error(request, f"{exc.message} [{exc.code}]")
    else:
        messages.success(
            request,
            _("Order #%(id)s %(where)s: %(status)s")
            % {"id": placed.pk, "where": bilingual(placed.executed_at), "status": placed.status},
        )
    return redirect("brokerage:page")
