"""The fundamentals panels of the pages (``{% load fundamentals_panels %}``): inclusion tags that read through the
selectors, so the pages' views need no change to show them."""

from __future__ import annotations

from django import template
from django.utils.translation import gettext as _

from apps.core.krx.calendar import now_kst
from apps.fundamentals.charts import SERIES, flows_chart
from apps.fundamentals.selectors import (
    flow_validation_latest,
    flows_with_cumulative,
    fundamentals_summary,
    investor_estimates_latest,
    investor_flows_latest,
    investor_flows_top,
)

register = template.Library()

FLOW_PANEL_DAYS = 60  # trading days drawn (about three months)
FLOW_TABLE_ROWS = 10
TOP_ROWS = 10


@register.inclusion_tag("fundamentals/_flows_panel.html")
def flows_panel(stock) -> dict:
    rows = flows_with_cumulative(investor_flows_latest(code=stock.code, days=FLOW_PANEL_DAYS))
    est_day, estimates = investor_estimates_latest(code=stock.code, after=rows[-1]["date"] if rows else None)
    return {
        "stock": stock,
        "chart": flows_chart(rows),
        "series": SERIES,
        "table": rows[::-1][:FLOW_TABLE_ROWS],
        "as_of": max((r["fetched_at"] for r in rows), default=None),
        "estimates": estimates,
        "estimates_day": est_day,
    }


@register.inclusion_tag("fundamentals/_fundamentals_panel.html")
def fundamentals_panel(stock) -> dict:
    return {"stock": stock, "summary": fundamentals_summary(code=stock.code)}


@register.inclusion_tag("fundamentals/_top_flows.html")
def top_flows() -> dict:
    return {
        "tops": [
            (
                "foreign",
                _("Top net buying by foreigners"),
                "",
                investor_flows_top(who="foreign", limit=TOP_ROWS),
            ),
            (
                "institution",
                _("Top net buying by institutions"),
                "",
                investor_flows_top(who="institution", limit=TOP_ROWS),
            ),
        ],
        "today": now_kst().date(),
    }


@register.inclusion_tag("fundamentals/_flow_validation.html")
def flow_validation_panel() -> dict:
    return {"run": flow_validation_latest()}


@register.filter
def eok(value) -> str:
    """KRW -> 억원 with one decimal and sign (``1_234_000_000`` -> ``+12.3``); None -> an em dash."""
    if value is None:
        return "—"
    return f"{value / 100_000_000:+,.1f}"
