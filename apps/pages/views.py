"""Server-rendered pages: dashboard, stock page with order ticket, portfolio, orders, data quality, and
sign-up / log-in / log-out. Views call selectors and services only; live updates come from the
WebSockets (``/ws/market/``, ``/ws/orders/``) and htmx fragment refreshes.

Every page works without JavaScript: it renders the latest snapshot from Redis and the database, and
forms POST and redirect with a Django message (post/redirect/get). With JavaScript the same forms are
sent by htmx (``HX-Request`` header) and answered with the fragment to swap in.
"""

from __future__ import annotations

import datetime
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView, LogoutView
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.selectors import (
    AccountNotFound,
    paper_account_for_user,
    paper_account_list_for_user,
    verified_email_for_user,
)
from apps.accounts.services import email_verification_send, email_verify, paper_account_ensure
from apps.core.exceptions import ApplicationError
from apps.core.ratelimits import over_limit
from apps.core.security import client_ip
from apps.marketdata.models import Stock
from apps.marketdata.realtime.keys import valid_code
from apps.marketdata.selectors import stock_list_universe
from apps.orders.exceptions import OrderNotFound
from apps.orders.models import OPEN_STATUSES
from apps.orders.selectors import execution_list_for_user, order_get_for_user, order_list_for_user
from apps.orders.services import order_cancel, order_place
from apps.positions.selectors import account_balance, position_list_for_account

from . import selectors
from .forms import OrderTicketForm, SignUpForm

PAST_ORDERS_SHOWN = 100
EXECUTIONS_SHOWN = 100
UPCOMING_DAYS = 60  # the dashboard lists closures and shifted sessions this many days ahead
DISAGREEMENTS_SINCE = datetime.timedelta(days=30)  # the data-quality page's calendar disagreements start this far back


def _htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _account(request: HttpRequest):
    """The account named by ``?account=`` (the user's own), else the user's first (created on first use)."""
    raw = request.GET.get("account") or request.POST.get("account")
    if raw:
        try:
            return paper_account_for_user(user=request.user, account_id=int(raw))
        except (ValueError, AccountNotFound):
            raise Http404("No such paper account.") from None
    return paper_account_list_for_user(user=request.user).first() or paper_account_ensure(user=request.user)


def _market_today(market=None) -> datetime.date:
    """The market's today: the sandbox's replay date or the KST date (the calendar panels start there)."""
    market = market or selectors.market_status()
    return market.now.date() if market.now else selectors.kst_today()


def _market_context() -> dict:
    market = selectors.market_status()
    return {"market": market, "feed_status": selectors.feed_status(), "feed_labels": selectors.FEED_STATUS_LABELS}


# --- authentication --------------------------------------------------------------------------------------


class HogaLoginView(LoginView):
    """Django's login; the user's paper account (모의투자) is created on the first login."""

    template_name = "pages/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        paper_account_ensure(user=form.get_user())
        return response


class HogaLogoutView(LogoutView):
    """POST only (Django's LogoutView refuses GET); back to the login page."""


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("pages:dashboard")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and over_limit(
        "signup", client_ip(request) or "unknown", limit=settings.AUTH_SIGNUP_RATE_PER_HOUR, window=3600
    ):
        throttled = (
            "이 주소에서 가입이 너무 많습니다: 한 시간 뒤에 다시 시도하세요 "
            f"(at most {settings.AUTH_SIGNUP_RATE_PER_HOUR} sign-ups per hour from one address). [too_many_signups]"
        )
        return render(request, "pages/signup.html", {"form": SignUpForm(), "throttled": throttled}, status=429)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        account = paper_account_ensure(user=user)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"환영합니다! 모의투자 계좌가 {account.initial_cash:,}원으로 개설되었습니다.")
        return redirect("pages:dashboard")
    return render(request, "pages/signup.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def email_settings(request: HttpRequest) -> HttpResponse:
    """The user's verified alert address: send a confirmation link to a new one."""
    if request.method == "POST":
        try:
            email_verification_send(
                user=request.user,
                email=request.POST.get("email", ""),
                verify_url=lambda token: request.build_absolute_uri(reverse("pages:email-verify", args=[token])),
            )
        except ApplicationError as exc:
            messages.error(request, f"{exc.message} [{exc.code}]")
        else:
            messages.success(request, "확인 메일을 보냈습니다. 메일의 링크를 여세요 (confirmation link sent).")
        return redirect("pages:email")
    return render(request, "pages/email.html", {"verified_email": verified_email_for_user(user=request.user)})


@login_required
@require_GET
def email_verify_view(request: HttpRequest, token: str) -> HttpResponse:
    try:
        row = email_verify(user=request.user, token=token)
    except ApplicationError as exc:
        messages.error(request, f"{exc.message} [{exc.code}]")
    else:
        messages.success(request, f"{row.email} 주소가 확인되었습니다 (verified).")
    return redirect("pages:email")


# --- dashboard -------------------------------------------------------------------------------------------


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    context = _market_context()
    trading_date = context["market"].trading_date or selectors.kst_today()
    stocks = list(stock_list_universe())
    context["rows"] = selectors.quote_rows(stocks=stocks, trading_date=trading_date)
    today = _market_today(context["market"])
    context["calendar_notes"] = selectors.calendar_upcoming(start=today, days=UPCOMING_DAYS)
    context["upcoming_days"] = UPCOMING_DAYS
    return render(request, "pages/dashboard.html", context)


@never_cache
@login_required
@require_GET
def market_status_json(request: HttpRequest) -> JsonResponse:
    """The market clock, session and feed status for the pages' status bar (polled by the JS)."""
    data = selectors.market_status().as_json()
    data["feed_status"] = selectors.feed_status()
    return JsonResponse(data, json_dumps_params={"ensure_ascii": False})


# --- stock page and order ticket ---------------------------------------------------------------------------


def _ticket_context(request, stock, market, *, form=None, errors=None, result=None) -> dict:
    trading_date = market.trading_date or selectors.kst_today()
    values = {"side": "BUY", "order_type": "LIMIT", "quantity": "", "price": ""}
    if form is not None:
        for name in values:
            raw = form.data.get(name)
            if raw not in (None, ""):
                values[name] = raw
    limits = selectors.ticket_limits(stock=stock, trading_date=trading_date)
    if not values["price"] and limits["base"]:
        values["price"] = limits["base"]
    return {
        "stock": stock,
        "ticket": values,
        "limits": limits,
        "errors": errors or [],
        "result": result,
        "client_order_id": uuid.uuid4().hex,
        "account": _account(request),
    }


def _place_order(request, stock) -> tuple[object | None, list[dict], OrderTicketForm]:
    """Parse the ticket and call ``order_place``; (order, coded errors, form)."""
    form = OrderTicketForm(request.POST)
    if not form.is_valid():
        return None, form.coded_errors(), form
    data = form.cleaned_data
    account = _account(request)
    limit_price = data["price"] if data["order_type"] == "LIMIT" else None
    try:
        order = order_place(
            account=account,
            user=request.user,
            code=stock.code,
            side=data["side"],
            order_type=data["order_type"],
            quantity=data["quantity"],
            limit_price=limit_price,
            client_order_id=data["client_order_id"] or None,
        )
    except ApplicationError as exc:
        return None, [{"code": exc.code, "message": exc.message}], form
    return order, [], form


@login_required
@require_http_methods(["GET", "POST"])
def stock_detail(request: HttpRequest, code: str) -> HttpResponse:
    if not valid_code(code):
        raise Http404("Not a stock code.")
    stock = Stock.objects.filter(code=code).first()
    if stock is None:
        raise Http404("Unknown stock.")
    context = _market_context()
    market = context["market"]

    if request.method == "POST":
        order, errors, form = _place_order(request, stock)
        if _htmx(request):
            ticket = _ticket_context(request, stock, market, form=form if errors else None, errors=errors, result=order)
            if order is not None:  # keep side and order type for the next order, start a fresh quantity
                ticket["ticket"].update(side=order.side, order_type=order.order_type)
            return render(request, "pages/_order_ticket.html", ticket)
        if order is not None:
            messages.success(request, f"주문 #{order.pk} 접수 ({order.status}): {order.side} {order.quantity:,}주")
            return redirect(f"{reverse('pages:stock', args=[stock.code])}?order={order.pk}")
        for error in errors:
            messages.error(request, f"{error['code']}: {error['message']}")
        context.update(_ticket_context(request, stock, market, form=form, errors=errors))
    else:
        result = None
        if request.GET.get("order", "").isdigit():
            try:
                result = order_get_for_user(user=request.user, order_id=int(request.GET["order"]))
            except OrderNotFound:
                result = None
        context.update(_ticket_context(request, stock, market, result=result))

    quote_row = selectors.quote_rows(stocks=[stock], trading_date=market.trading_date or selectors.kst_today())[0]
    trading_date = market.trading_date or selectors.kst_today()
    context.update(
        {
            "quote": quote_row,
            "book": selectors.book_levels(selectors.book_latest(code=stock.code), base=_base_price(quote_row)),
            "intervals": [("1m", "1분"), ("5m", "5분"), ("15m", "15분"), ("60m", "60분"), ("1d", "일봉")],
            "chart_date": trading_date,
            "open_orders": order_list_for_user(user=request.user, status="OPEN", code=stock.code)[:20],
        }
    )
    return render(request, "pages/stock.html", context)


# --- portfolio ---------------------------------------------------------------------------------------------


def _portfolio_context(request) -> dict:
    account = _account(request)
    return {
        "account": account,
        "accounts": list(paper_account_list_for_user(user=request.user)),
        "balance": account_balance(account_id=account.pk),
        "positions": position_list_for_account(account_id=account.pk),
    }


@login_required
@require_GET
def portfolio(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/portfolio.html", {**_market_context(), **_portfolio_context(request)})


@never_cache
@login_required
@require_GET
def portfolio_live(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/_portfolio_live.html", _portfolio_context(request))


# --- orders --------------------------------------------------------------------------------------------------


def _orders_context(request) -> dict:
    orders = order_list_for_user(user=request.user)
    return {
        "open_orders": list(orders.filter(status__in=OPEN_STATUSES)),
        "past_orders": list(orders.exclude(status__in=OPEN_STATUSES)[:PAST_ORDERS_SHOWN]),
        "executions": list(execution_list_for_user(user=request.user)[:EXECUTIONS_SHOWN]),
    }


@login_required
@require_GET
def orders(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/orders.html", _orders_context(request))


@never_cache
@login_required
@require_GET
def orders_live(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/_orders_live.html", _orders_context(request))


@login_required
@require_POST
def order_cancel_view(request: HttpRequest, order_id: int) -> HttpResponse:
    notice = None
    try:
        order = order_cancel(order_id=order_id, user=request.user)
    except ApplicationError as exc:
        notice = {"level": "error", "text": f"{exc.code}: {exc.message}"}
    else:
        notice = {"level": "success", "text": f"주문 #{order.pk} 취소됨 ({order.status})"}
    if _htmx(request):
        return render(request, "pages/_orders_live.html", {**_orders_context(request), "notice": notice})
    (messages.success if notice["level"] == "success" else messages.error)(request, notice["text"])
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        target = reverse("pages:orders")
    return redirect(target or reverse("pages:orders"))


# --- data quality ------------------------------------------------------------------------------------------


@login_required
@require_GET
def data_quality(request: HttpRequest) -> HttpResponse:
    run = selectors.validation_run_latest()
    diffs = selectors.validation_daily_diffs(run)
    return render(
        request,
        "pages/data_quality.html",
        {
            "runs": selectors.collection_runs_latest(),
            "validation": run,
            "diffs": diffs,
            "chart": _diff_chart(diffs, tolerance=float(run.tolerance_pct) if run else 0.5),
            "disagreements": selectors.validation_disagreements(run),
            "calendar_disagreements": selectors.calendar_disagreements(since=_market_today() - DISAGREEMENTS_SINCE),
        },
    )


def _diff_chart(diffs: list[dict], *, tolerance: float, width: int = 720, height: int = 200) -> dict:
    """Geometry of the inline SVG bar chart of the per-day largest difference, with the tolerance line."""
    if not diffs:
        return {"bars": [], "width": width, "height": height}
    top = max([d["max"] for d in diffs] + [tolerance]) * 1.1 or 1.0
    left, plot_h = 48, height - 24 - 8  # 24 px below the plot for the date labels, 8 above
    step = (width - left - 8) / len(diffs)

    def y(value: float) -> float:
        return round(8 + plot_h * (1 - value / top), 2)

    bars = [
        {
            "x": round(left + i * step + step * 0.1, 2),
            "y": y(d["max"]),
            "w": round(max(step * 0.8, 1), 2),
            "h": round(8 + plot_h - y(d["max"]), 2),
            "mean_y": y(d["mean"]),
            "over": d["max"] > tolerance,
            **d,
        }
        for i, d in enumerate(diffs)
    ]
    return {
        "bars": bars,
        "width": width,
        "height": height,
        "left": left,
        "base_y": 8 + plot_h,
        "tolerance": tolerance,
        "tolerance_y": y(tolerance),
        "top": round(top, 3),
        "top_y": 8,
        "first": diffs[0]["date"],
        "last": diffs[-1]["date"],
    }


def _base_price(quote_row: dict) -> int | None:
    """The previous close (기준가) behind a quote row: price minus its change."""
    price, change = quote_row.get("price"), quote_row.get("change")
    return int(price) - int(change) if price is not None and change is not None else None
