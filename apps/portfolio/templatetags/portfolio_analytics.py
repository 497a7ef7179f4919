"""``{% portfolio_analytics_panel account %}``: the analytics part of the portfolio page (figures, equity and
drawdown curves, benchmark choice, exports), rendered server-side so it works without JavaScript."""

from __future__ import annotations

import re

from django import template

from apps.core.exceptions import ApplicationError

from ..selectors import account_analytics, benchmark_choices

register = template.Library()
CODE = re.compile(r"^[A-Z0-9]{1,12}$")


@register.inclusion_tag("portfolio/_analytics_panel.html", takes_context=True)
def portfolio_analytics_panel(context, account):
    request = context.get("request")
    asked = (request.GET.get("benchmark", "") if request is not None else "").strip().upper()
    benchmark = asked if CODE.match(asked) else None
    error = None
    try:
        analytics = account_analytics(account=account, benchmark=benchmark)
    except ApplicationError as exc:
        analytics, error = None, f"{exc.message} [{exc.code}]"
    return {
        "account": account,
        "analytics": analytics,
        "figures": analytics["figures"] if analytics else {},
        "error": error,
        "choices": benchmark_choices(),
        "benchmark": analytics["benchmark"] if analytics else {"code": benchmark or "", "available": False},
        "years": sorted({p["date"][:4] for p in analytics["series"]}, reverse=True) if analytics else [],
    }


@register.filter
def pct(value, digits: int = 2):
    if value is None or value == "":
        return "-"
    return f"{float(value) * 100:+.{int(digits)}f}%"


@register.filter
def ratio(value):
    return "-" if value is None else f"{float(value):.2f}"
