"""The /strategies/ pages: the user's strategies with a form per kind (no code: the built-ins and the deployed
kinds, their parameters and risk limits), a strategy's page with its kill switch and audit trail (refreshed
while it runs), and backtests with their progress, results and a side-by-side comparison. Plain forms that work
without JavaScript; views stay thin (selectors to read, services to change, coded errors shown as messages)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.conditions.selectors import condition_list_for_user
from apps.core.exceptions import ApplicationError
from apps.core.krx.calendar import now_kst
from apps.trading.accounts.selectors import paper_account_list_for_user

from .apis import COMPARED, _kinds
from .exceptions import BacktestNotFound, StrategyNotFound
from .models import Backtest, BacktestStatus, Strategy, StrategyStatus
from .selectors import backtest_get_for_user, backtest_list_for_user, signal_list, strategy_list_for_user
from .selectors import strategy_get_for_user as _strategy_get
from .services import LIMIT_FIELDS, backtest_create, strategy_create, strategy_start, strategy_stop

TRAIL_SHOWN = 200


def strategy_get_for_user(*, user, strategy_id) -> Strategy:
    try:
        return _strategy_get(user=user, strategy_id=strategy_id)
    except StrategyNotFound as exc:
        raise Http404(exc.message) from exc


def _backtest(*, user, backtest_id) -> Backtest:
    try:
        return backtest_get_for_user(user=user, backtest_id=backtest_id)
    except BacktestNotFound as exc:
        raise Http404(exc.message) from exc


def _error(request, exc: ApplicationError) -> None:
    messages.error(request, f"{exc.message} [{exc.code}]")


def _form_data(post) -> dict[str, Any]:
    """Strategy/backtest fields from a form: ``p_<name>`` are parameters, limits are whole numbers (left as
    text when they are not, so the service answers with its coded error), codes are split on commas/spaces."""
    data: dict[str, Any] = {}
    for key in ("kind", "name", "timeframe", "start", "end"):
        if post.get(key):
            data[key] = post.get(key)[:100]
    data["params"] = {k[2:]: v for k, v in post.items() if k.startswith("p_") and v != ""}
    for key in (*LIMIT_FIELDS, "condition_id", "account_id", "strategy_id"):
        raw = post.get(key, "").strip().replace(",", "")
        if raw:
            data[key] = int(raw) if raw.isdecimal() and len(raw) <= 15 else raw
    codes = post.get("codes", "")
    if codes:
        data["codes"] = [c for c in re.split(r"[\s,]+", codes[:2000]) if c]
    return data


@login_required
@require_GET
def strategies_page(request):
    context = {
        "strategies": strategy_list_for_user(user=request.user),
        "kinds": _kinds(),
        "conditions": condition_list_for_user(user=request.user).order_by("name"),
        "accounts": paper_account_list_for_user(user=request.user),
    }
    return render(request, "strategies/list.html", context)


@login_required
@require_POST
def strategy_create_submit(request):
    try:
        strategy = strategy_create(user=request.user, data=_form_data(request.POST))
        if request.POST.get("start") == "on":
            strategy = strategy_start(strategy=strategy)
    except ApplicationError as exc:
        _error(request, exc)
        return redirect("strategies:list")
    return redirect("strategies:detail", strategy_id=strategy.pk)


def _trail_context(request, strategy_id: int) -> dict[str, Any]:
    strategy = strategy_get_for_user(user=request.user, strategy_id=strategy_id)
    return {"strategy": strategy, "signals": list(signal_list(strategy=strategy)[:TRAIL_SHOWN]),
            "running": strategy.status == StrategyStatus.RUNNING}  # fmt: skip


@login_required
@require_GET
def strategy_page(request, strategy_id: int):
    context = _trail_context(request, strategy_id)
    today = now_kst().date()
    context.update(
        backtests=backtest_list_for_user(user=request.user).filter(strategy=context["strategy"])[:20],
        default_start=(today - dt.timedelta(days=30)).isoformat(),
        default_end=today.isoformat(),
    )
    return render(request, "strategies/detail.html", context)


@login_required
@require_GET
def strategy_trail_partial(request, strategy_id: int):
    return render(request, "strategies/_trail.html", _trail_context(request, strategy_id))


@login_required
@require_POST
def strategy_start_submit(request, strategy_id: int):
    strategy = strategy_get_for_user(user=request.user, strategy_id=strategy_id)
    strategy_start(strategy=strategy)
    return redirect("strategies:detail", strategy_id=strategy.pk)


@login_required
@require_POST
def strategy_stop_submit(request, strategy_id: int):
    strategy = strategy_get_for_user(user=request.user, strategy_id=strategy_id)
    _stopped, cancelled = strategy_stop(strategy_id=strategy.pk, reason="stopped by the user", by="user")
    messages.success(request, f"Stopped; {len(cancelled)} open order(s) cancelled.")
    return redirect("strategies:detail", strategy_id=strategy.pk)


@login_required
@require_GET
def backtests_page(request):
    backtests = list(backtest_list_for_user(user=request.user)[:100])
    chosen = {int(i) for i in request.GET.getlist("ids") if i.isdecimal() and len(i) < 19}
    compared = [b for b in backtests if b.pk in chosen][:10]
    rows = [(key, [b.result.get(key) for b in compared]) for key in COMPARED]
    return render(request, "strategies/backtests.html", {"backtests": backtests, "compared": compared, "rows": rows})


@login_required
@require_POST
def backtest_create_submit(request):
    try:
        backtest = backtest_create(user=request.user, data=_form_data(request.POST))
    except ApplicationError as exc:
        _error(request, exc)
        return redirect("strategies:backtests")
    return redirect("strategies:backtest", backtest_id=backtest.pk)


@login_required
@require_GET
def backtest_page(request, backtest_id: int):
    backtest = _backtest(user=request.user, backtest_id=backtest_id)
    running = backtest.status in (BacktestStatus.QUEUED, BacktestStatus.RUNNING)
    figures = [(key, backtest.result.get(key)) for key in COMPARED] if backtest.result else []
    template = "strategies/_backtest_body.html" if request.headers.get("HX-Request") else "strategies/backtest.html"
    return render(request, template, {"backtest": backtest, "running": running, "figures": figures})
