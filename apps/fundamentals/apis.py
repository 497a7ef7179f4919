"""``/api/fundamentals/``: investor flows (with today's intraday estimates, labelled), the top net buyers of a day,
and the financial-statement history. Every answer states its ``source`` and ``as_of`` (the newest fetch it
serves) and, with the sandbox broker, that the figures are synthetic (the sandbox has no recorded flows or
accounts: ``apps/sandbox/fundamentals.py``)."""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ValidationFailed
from apps.core.groups import valid_code
from apps.core.krx.calendar import now_kst
from apps.marketdata.models import Stock

from .models import FlowSource, PeriodType, StatementKind
from .selectors import (
    TOP_SIDES,
    flows_with_cumulative,
    investor_estimates_latest,
    investor_flows_for,
    investor_flows_top,
    newest_flow_day,
    statements_for,
)

MAX_FLOW_DAYS = 800  # about three years of trading days per request
DEFAULT_FLOW_DAYS = 90
TOP_MAX = 50


def _synthetic() -> bool:
    return settings.MARKET_BROKER == "sandbox"


def _code(params, errors: dict) -> str:
    code = params.get("code", "")
    if not valid_code(code):
        errors["code"] = ["a 6-character stock code"]
    elif not Stock.objects.filter(code=code).exists():
        errors["code"] = [f"unknown stock code {code!r}"]
    return code


def _source(params, errors: dict) -> str:
    source = params.get("source", FlowSource.KIS)
    if source not in FlowSource.values:
        errors["source"] = [f"one of {FlowSource.values}"]
    return source


def _date(params, name: str, errors: dict) -> date | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = ["a date as YYYY-MM-DD"]
        return None


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


class FlowsApi(APIView):
    """Daily net buying by investor type with running totals, and the day's intraday estimates."""

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        parameters=[
            OpenApiParameter("code", str, required=True, description="6-character stock code"),
            OpenApiParameter("from", str, required=False, description="YYYY-MM-DD (default: 90 days before 'to')"),
            OpenApiParameter("to", str, required=False, description="YYYY-MM-DD (default: the newest stored day)"),
            OpenApiParameter("source", str, enum=FlowSource.values, required=False),
        ],
        summary="Investor flows (수급) of one stock: daily nets, cumulative nets, intraday estimates",
    )
    def get(self, request):
        params = request.query_params
        errors: dict[str, list[str]] = {}
        code, source = _code(params, errors), _source(params, errors)
        date_to, date_from = _date(params, "to", errors), _date(params, "from", errors)
        if not errors:
            date_to = date_to or newest_flow_day(code=code, source=source) or now_kst().date()
            date_from = date_from or date_to - timedelta(days=DEFAULT_FLOW_DAYS)
            if date_from > date_to:
                errors["from"] = ["must not be after 'to'"]
            elif (date_to - date_from).days > MAX_FLOW_DAYS:
                errors["to"] = [f"at most {MAX_FLOW_DAYS} days per request"]
        if errors:
            raise ValidationFailed("Invalid flow request.", code="invalid_flow_request", fields=errors)
        assert date_from is not None and date_to is not None  # noqa: S101 - set above when there is no error
        rows = flows_with_cumulative(investor_flows_for(code=code, date_from=date_from, date_to=date_to, source=source))
        latest_day = rows[-1]["date"] if rows else None
        est_day, estimates = investor_estimates_latest(code=code, source=source, after=latest_day)
        fetched = [r["fetched_at"] for r in rows] + [e["fetched_at"] for e in estimates]
        return Response(
            {
                "code": code,
                "source": source,
                "as_of": _iso(max(fetched)) if fetched else None,
                "synthetic": _synthetic(),
                "units": {"qty": "shares", "value": "KRW"},
                "days": [
                    {**{k: v for k, v in r.items() if k != "fetched_at"}, "date": r["date"].isoformat()} for r in rows
                ],
                "estimates": {
                    "date": _iso(est_day) if estimates else None,
                    "label": "estimate (가집계): the broker's intraday running totals, not the day's figures",
                    "rows": [
                        {
                            "slot": e["slot"],
                            "time": e["slot_time"].strftime("%H:%M") if e["slot_time"] else None,
                            "foreign_qty": e["foreign_qty"],
                            "institution_qty": e["institution_qty"],
                            "total_qty": e["total_qty"],
                        }
                        for e in estimates
                    ],
                },
            }
        )


class FlowsTopApi(APIView):
    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        parameters=[
            OpenApiParameter("who", str, enum=list(TOP_SIDES), required=True),
            OpenApiParameter("date", str, required=False, description="YYYY-MM-DD (default: the newest stored day)"),
            OpenApiParameter("limit", int, required=False, description=f"1..{TOP_MAX}"),
        ],
        summary="The stocks foreigners or institutions bought most (net, KRW) on a day",
    )
    def get(self, request):
        params = request.query_params
        errors: dict[str, list[str]] = {}
        who = params.get("who", "")
        if who not in TOP_SIDES:
            errors["who"] = [f"one of {list(TOP_SIDES)}"]
        day = _date(params, "date", errors)
        raw_limit = params.get("limit", "10")
        limit = int(raw_limit) if raw_limit.isdecimal() and len(raw_limit) <= 3 else 0
        if not 1 <= limit <= TOP_MAX:
            errors["limit"] = [f"an integer 1..{TOP_MAX}"]
        if errors:
            raise ValidationFailed("Invalid request.", code="invalid_flow_request", fields=errors)
        top = investor_flows_top(day=day, who=who, limit=limit)
        return Response(
            {
                "who": who,
                "date": _iso(top["date"]),
                "source": FlowSource.KIS,
                "synthetic": _synthetic(),
                "rows": top["rows"],
            }
        )


class StatementsApi(APIView):
    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        parameters=[
            OpenApiParameter("code", str, required=True),
            OpenApiParameter("kind", str, enum=StatementKind.values, required=False),
            OpenApiParameter("period", str, enum=PeriodType.values, required=False),
            OpenApiParameter("source", str, enum=FlowSource.values, required=False),
        ],
        summary="Financial-statement history of one stock (every stored period, newest first)",
    )
    def get(self, request):
        params = request.query_params
        errors: dict[str, list[str]] = {}
        code, source = _code(params, errors), _source(params, errors)
        kind = params.get("kind") or None
        if kind is not None and kind not in StatementKind.values:
            errors["kind"] = [f"one of {StatementKind.values}"]
        period_type = params.get("period") or None
        if period_type is not None and period_type not in PeriodType.values:
            errors["period"] = [f"one of {PeriodType.values}"]
        if errors:
            raise ValidationFailed("Invalid statement request.", code="invalid_statement_request", fields=errors)
        rows = statements_for(code=code, kind=kind, period_type=period_type, source=source)
        return Response(
            {
                "code": code,
                "source": source,
                "as_of": _iso(max(r.fetched_at for r in rows)) if rows else None,
                "synthetic": _synthetic(),
                "units": {"amounts": "억원 (100 million KRW, as the broker reports; UNCONFIRMED)", "ratios": "%"},
                "statements": [
                    {
                        "kind": r.kind,
                        "period_type": r.period_type,
                        "period": r.period,
                        "period_end": r.period_end.isoformat(),
                        "first_fetched_at": r.first_fetched_at.isoformat(),
                        "fetched_at": r.fetched_at.isoformat(),
                        "values": r.values,
                    }
                    for r in rows
                ],
            }
        )
