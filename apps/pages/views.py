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
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.exceptions import ApplicationError, ValidationFailed, parse_id
from apps.core.groups import valid_code
from apps.core.krx.phases import KRX
from apps.core.ratelimits import over_limit
from apps.core.security import client_ip
from apps.core.throttling import SearchRateThrottle
from apps.marketdata.models import Stock
from apps.marketdata.on_demand import on_demand_touch, stock_bars_ensure
from apps.marketdata.search import MAX_QUERY
from apps.marketdata.selectors import chart_studies_for_user, stock_list_universe, stock_search
from apps.marketdata.studies import STUDIES
from apps.trading.accounts.selectors import (
    AccountNotFound,
    paper_account_for_user,
    paper_account_list_for_user,
    verified_email_for_user,
)
from apps.trading.accounts.services import email_verification_send, email_verify, paper_account_ensure
from apps.trading.orders.exceptions import OrderNotFound
from apps.trading.orders.executors import (
    executor_for,
    external_executions_for_user,
    external_holdings_for,
    external_orders_for_user,
    order_executor,
)
from apps.trading.orders.models import OPEN_STATUSES
from apps.trading.orders.placement import order_submit
from apps.trading.orders.release import order_cancel
from apps.trading.orders.selectors import execution_list_for_user, order_get_for_user, order_list_for_user
from apps.trading.positions.selectors import account_balance, position_list_for_account
from apps.watchlists.selectors import watchlist_list_for_user

from . import selectors
from .context_processors import market_status_for
from .formatting import shares, won
from .forms import ORDER_TYPE_CHOICES, PRICED_TYPES, ROUTE_CHOICES, TRIGGER_CHOICES, OrderTicketForm, SignUpForm

PAST_ORDERS_SHOWN = 100
EXECUTIONS_SHOWN = 100
EXECUTIONS_ON_STOCK_PAGE = 20  # the stock page's and the portfolio's latest executions (all on the orders page)
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


def _market_today(request: HttpRequest) -> datetime.date:
    """The market's today: the sandbox's replay date or the KST date (the calendar panels start there)."""
    market = market_status_for(request)
    return market.now.date() if market.now else selectors.kst_today()


def _market_context(request: HttpRequest) -> dict:
    market = market_status_for(request)  # the phase bar of the base template reuses it
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
            _("Too many sign-ups from this address: at most %(limit)s per hour. Try again in an hour.")
            % {"limit": settings.AUTH_SIGNUP_RATE_PER_HOUR}
            + " [too_many_signups]"
        )
        return render(request, "pages/signup.html", {"form": SignUpForm(), "throttled": throttled}, status=429)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        account = paper_account_ensure(user=user)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(
            request, _("Welcome! Your paper account opened with %(cash)s.") % {"cash": won(account.initial_cash)}
        )
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
            messages.success(request, _("Confirmation link sent: open the link in the e-mail."))
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
        messages.success(request, _("%(email)s is verified.") % {"email": row.email})
    return redirect("pages:email")


# --- dashboard -------------------------------------------------------------------------------------------


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    context = _market_context(request)
    trading_date = context["market"].trading_date or selectors.kst_today()
    # The chosen watchlist (live, like the universe was); the universe while the user has no list with stocks.
    watchlists = list(watchlist_list_for_user(user=request.user))
    shown = next((w for w in watchlists if w.chosen), watchlists[0] if watchlists else None)
    stocks = [item.stock for item in shown.items.all()] if shown is not None else []
    if not stocks:
        stocks = list(stock_list_universe())
    context.update({"watchlists": watchlists, "watchlist": shown})
    context["rows"] = selectors.quote_rows(stocks=stocks, trading_date=trading_date)
    today = _market_today(request)
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
    values = {
        "side": "BUY", "order_type": "LIMIT", "quantity": "", "price": "", "route": KRX, "trigger_type": "",
        "trigger_price": "", "trail_amount": "", "trail_percent": "", "take_profit_price": "", "stop_loss_price": "",
    }  # fmt: skip
    if form is not None:
        for name in values:
            raw = form.data.get(name)
            if raw not in (None, ""):
                values[name] = raw
    limits = selectors.ticket_limits(stock=stock, trading_date=trading_date)
    if not values["price"] and limits["base"]:
        values["price"] = limits["base"]
    accepted = selectors.accepted_now(market, route=values["route"])
    account = _account(request)
    executor = executor_for(account)
    return {
        "stock": stock,
        "ticket": values,
        "routes": ROUTE_CHOICES,
        "triggers": TRIGGER_CHOICES,
        "kinds": [
            {"value": value, "label": label, "kind": value.lower(), "accepted": value.lower() in accepted}
            for value, label in ORDER_TYPE_CHOICES
        ],
        "price_disabled": values["order_type"] not in PRICED_TYPES,
        "limits": limits,
        "errors": errors or [],
        "result": result,
        "client_order_id": uuid.uuid4().hex,
        "account": account,
        "executor": executor.account_info(account) if executor else None,
    }


def _place_order(request, stock) -> tuple[object | None, list[dict], OrderTicketForm]:
    """Parse the ticket and submit it (``order_submit``); (order, coded errors, form)."""
    form = OrderTicketForm(request.POST)
    if not form.is_valid():
        return None, form.coded_errors(), form
    data = form.cleaned_data
    account = _account(request)
    trigger_type = data.get("trigger_type") or None
    order_type = data["order_type"]
    if trigger_type is not None:  # a conditional order becomes MARKET when fired, a stop-limit the price above
        order_type = "LIMIT" if trigger_type == "STOP_LIMIT" else "MARKET"
    limit_price = data["price"] if order_type in PRICED_TYPES else None
    try:
        order = order_submit(
            account=account, user=request.user, code=stock.code, side=data["side"], order_type=order_type,
            route=data["route"], quantity=data["quantity"], limit_price=limit_price,
            client_order_id=data["client_order_id"] or None, trigger_type=trigger_type,
            trigger_price=data.get("trigger_price"), trail_amount=data.get("trail_amount"),
            trail_percent=data.get("trail_percent"), take_profit_price=data.get("take_profit_price"),
            stop_loss_price=data.get("stop_loss_price"), confirm=request.POST.get("confirm") in ("yes", "on", "true"),
        )  # fmt: skip
    except ApplicationError as exc:
        return None, [{"code": exc.code, "message": exc.message}], form
    return order, [], form


#: The chart studies offered on the stock page, with their labels (the catalogue of apps.marketdata.studies).
STUDY_LABELS = [
    (name, label)
    for name, label in (
        ("ma5", "MA 5"), ("ma20", "MA 20"), ("ma60", "MA 60"), ("ma120", "MA 120"),
        ("bb", gettext_lazy("Bollinger 20, 2")), ("vma20", gettext_lazy("Volume MA 20")), ("rsi", "RSI 14"),
        ("macd", "MACD 12/26/9"),
    )
    if name in STUDIES
]  # fmt: skip


@login_required
@require_GET
def watchlists_page(request: HttpRequest) -> HttpResponse:
    """Manage your watchlists (create, rename, choose, reorder, remove stocks); the changes go through the API."""
    context = {"watchlists": list(watchlist_list_for_user(user=request.user))}
    return render(request, "watchlists/manage.html", context)


@login_required
@require_GET
def stock_search_page(request: HttpRequest) -> HttpResponse:
    """The search box without JavaScript: open the best match of ``?q=`` (or say there is none). Counted with
    the search API's ``API_SEARCH_RATE``."""
    query = request.GET.get("q", "").strip()[:MAX_QUERY]
    if query and not SearchRateThrottle().allow_request(request, None):  # the API's count: one per user for both
        messages.error(
            request,
            _("Too many searches: at most %(rate)s. Wait a moment and search again.")
            % {"rate": settings.API_SEARCH_RATE}
            + " [throttled]",
        )
        return redirect(reverse("pages:dashboard"))
    hits = stock_search(query=query, limit=1) if query and query.isprintable() else []
    if hits:
        return redirect(reverse("pages:stock", args=[hits[0].entry.code]))
    messages.error(request, _("No stock matches %(query)s.") % {"query": repr(query)})
    return redirect(reverse("pages:dashboard"))


@login_required
@require_http_methods(["GET", "POST"])
def stock_detail(request: HttpRequest, code: str) -> HttpResponse:
    if not valid_code(code):
        raise Http404("Not a stock code.")
    stock = Stock.objects.filter(code=code).first()
    if stock is None:
        raise Http404("Unknown stock.")
    if request.method == "GET" and stock.active and not stock.in_universe:
        on_demand_touch(stock.code)  # collected with the universe while someone watches it
        stock_bars_ensure(stock.code, user_id=request.user.pk)  # the first open fetches its history, base price
    context = _market_context(request)
    market = context["market"]

    if request.method == "POST":
        order, errors, form = _place_order(request, stock)
        if _htmx(request):
            ticket = _ticket_context(request, stock, market, form=form if errors else None, errors=errors, result=order)
            if order is not None:  # keep side and order type for the next order, start a fresh quantity
                ticket["ticket"].update(side=order.side, order_type=order.order_type, route=order.route)
            return render(request, "pages/_order_ticket.html", ticket)
        if order is not None:
            messages.success(
                request,
                _("Order #%(id)s placed (%(status)s): %(side)s %(quantity)s")
                % {
                    "id": order.pk,
                    "status": order.status,
                    "side": order.get_side_display(),
                    "quantity": shares(order.quantity),
                },
            )
            shown = order.pk if order.executed_by == "paper_engine" else order.ref
            return redirect(f"{reverse('pages:stock', args=[stock.code])}?order={shown}")
        for error in errors:
            messages.error(request, f"{error['code']}: {error['message']}")
        context.update(_ticket_context(request, stock, market, form=form, errors=errors))
    else:
        result = None
        kind, _sep, number = request.GET.get("order", "")[:40].rpartition(":")
        if number.isdigit() and kind in ("", "paper"):
            try:
                result = order_get_for_user(user=request.user, order_id=int(number))
            except OrderNotFound:
                result = None
        elif number.isdigit() and (executor := order_executor(kind)) is not None:
            result = executor.order(user=request.user, order_id=int(number))
        context.update(_ticket_context(request, stock, market, result=result))

    quote_row = selectors.quote_rows(stocks=[stock], trading_date=market.trading_date or selectors.kst_today())[0]
    trading_date = market.trading_date or selectors.kst_today()
    context.update(
        {
            "quote": quote_row,
            "book": selectors.book_levels(selectors.book_latest(code=stock.code), base=_base_price(quote_row)),
            "intervals": [
                ("1m", _("1 min")),
                ("5m", _("5 min")),
                ("15m", _("15 min")),
                ("60m", _("60 min")),
                ("1d", _("Daily")),
            ],
            "chart_date": trading_date,
            "open_orders": _newest(
                [
                    *order_list_for_user(user=request.user, status="OPEN", code=stock.code)[:20],
                    *external_orders_for_user(user=request.user, status="OPEN", code=stock.code, limit=20),
                ],
                limit=20,
            ),
            "watchlists": list(watchlist_list_for_user(user=request.user)),
            "chart_studies": chart_studies_for_user(user=request.user),
            "study_choices": STUDY_LABELS,
            "executions": _newest(
                [
                    *execution_list_for_user(user=request.user, code=stock.code)[:EXECUTIONS_ON_STOCK_PAGE],
                    *external_executions_for_user(user=request.user, code=stock.code, limit=EXECUTIONS_ON_STOCK_PAGE),
                ],
                key="executed_at",
                limit=EXECUTIONS_ON_STOCK_PAGE,
            ),
        }
    )
    return render(request, "pages/stock.html", context)


# --- portfolio ---------------------------------------------------------------------------------------------


def _portfolio_context(request) -> dict:
    account = _account(request)
    positions = position_list_for_account(account_id=account.pk)
    return {
        "account": account,
        "accounts": list(paper_account_list_for_user(user=request.user)),
        "balance": account_balance(account_id=account.pk),
        "positions": positions,
        "broker": external_holdings_for(account),  # a broker-linked account: its broker's last balance
        "flags": selectors.flags_for(p["code"] for p in positions),
        "executions": list(
            execution_list_for_user(user=request.user, account_id=account.pk)[:EXECUTIONS_ON_STOCK_PAGE]
        ),
    }


@login_required
@require_GET
def portfolio(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/portfolio.html", {**_market_context(request), **_portfolio_context(request)})


@never_cache
@login_required
@require_GET
def portfolio_live(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/_portfolio_live.html", _portfolio_context(request))


# --- orders --------------------------------------------------------------------------------------------------


def _newest(rows: list, *, key: str = "created_at", limit: int | None = None) -> list:
    ordered = sorted(rows, key=lambda r: (getattr(r, key), r.id), reverse=True)
    return ordered[:limit] if limit is not None else ordered


def _orders_context(request) -> dict:
    """The paper engine's orders and executions with those of the broker a linked account sends its orders to
    (each row says where it was executed)."""
    orders = order_list_for_user(user=request.user)
    external = external_orders_for_user(user=request.user, limit=PAST_ORDERS_SHOWN + 200)
    open_orders = _newest([*orders.filter(status__in=OPEN_STATUSES), *(o for o in external if o.open)])
    past_orders = _newest(
        [*orders.exclude(status__in=OPEN_STATUSES)[:PAST_ORDERS_SHOWN], *(o for o in external if not o.open)],
        limit=PAST_ORDERS_SHOWN,
    )
    executions = _newest(
        [
            *execution_list_for_user(user=request.user)[:EXECUTIONS_SHOWN],
            *external_executions_for_user(user=request.user, limit=EXECUTIONS_SHOWN),
        ],
        key="executed_at",
        limit=EXECUTIONS_SHOWN,
    )
    return {
        "open_orders": open_orders,
        "past_orders": past_orders,
        "executions": executions,
        "flags": selectors.flags_for(o.stock.code for o in open_orders + past_orders),  # one Redis round trip
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
        notice = {
            "level": "success",
            "text": _("Order #%(id)s cancelled (%(status)s)") % {"id": order.pk, "status": order.status},
        }
    return _cancel_answer(request, notice)


@login_required
@require_POST
def external_order_cancel_view(request: HttpRequest, executor: str, order_id: str) -> HttpResponse:
    """The Cancel button of an order executed at a broker (``broker:<id>``): the same cancel as the API's."""
    found = order_executor(executor[:20])
    try:
        if found is None:
            raise OrderNotFound(f"Order {executor[:20]}:{order_id[:20]} not found.")
        if parse_id(order_id) is None:
            raise ValidationFailed("Not an order id.", code="invalid_order_id")
        order = found.cancel(user=request.user, order_id=order_id)
    except ApplicationError as exc:
        notice = {"level": "error", "text": f"{exc.code}: {exc.message}"}
    else:
        notice = {
            "level": "success",
            "text": _("Order %(ref)s: cancel requested (%(status)s)") % {"ref": order.ref, "status": order.status},
        }
    return _cancel_answer(request, notice)


def _cancel_answer(request: HttpRequest, notice: dict) -> HttpResponse:
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
            "minutes": selectors.minute_completeness(),
            "calendar_disagreements": selectors.calendar_disagreements(
                since=_market_today(request) - DISAGREEMENTS_SINCE
            ),
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
