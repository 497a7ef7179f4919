"""Portfolio analytics API (session or token auth), always on one of your own accounts (404 otherwise):
the figures and series as JSON, snapshots rebuilt on demand, executions and the yearly realized-P&L
statement as CSV."""

from __future__ import annotations

import re
from datetime import date

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ValidationFailed
from apps.trading.accounts.selectors import paper_account_for_user

from .exports import executions_csv, realized_pnl_csv
from .selectors import account_analytics, execution_rows, realized_pnl_by_stock
from .services import equity_snapshots_rebuild

CODE = re.compile(r"^[A-Z0-9]{1,12}$")


def _date(params, name: str) -> date | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        if len(raw) != 10:
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(
            f"{name}: a date YYYY-MM-DD", code="invalid_date", fields={name: ["YYYY-MM-DD"]}
        ) from None


def _year(params, *, required: bool) -> int | None:
    raw = params.get("year")
    if not raw:
        if required:
            raise ValidationFailed("year is required", code="invalid_year", fields={"year": ["required"]})
        return None
    if not (isinstance(raw, str) and raw.isdecimal() and len(raw) == 4 and 1990 <= int(raw) <= 2100):
        raise ValidationFailed("year: four digits, 1990-2100", code="invalid_year", fields={"year": ["1990-2100"]})
    return int(raw)


def _lang(params) -> str:
    lang = params.get("lang") or "ko"
    if lang not in ("ko", "en"):
        raise ValidationFailed("lang: ko or en", code="invalid_lang", fields={"lang": ["ko or en"]})
    return lang


def _csv(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


PERIOD = [
    OpenApiParameter("start", OpenApiTypes.DATE, required=False),
    OpenApiParameter("end", OpenApiTypes.DATE, required=False),
]


class AnalyticsApi(APIView):
    @extend_schema(
        parameters=[*PERIOD, OpenApiParameter("benchmark", str, required=False, description="stock code")],
        responses=OpenApiTypes.OBJECT,
        summary="Equity curve, drawdown, benchmark and performance figures of one of your accounts",
    )
    def get(self, request, account_id: int):
        account = paper_account_for_user(user=request.user, account_id=account_id)
        params = request.query_params
        start, end = _date(params, "start"), _date(params, "end")
        if start and end and end < start:
            raise ValidationFailed("end is before start", code="invalid_period")
        benchmark = (params.get("benchmark") or "").strip().upper() or None
        if benchmark is not None and not CODE.match(benchmark):
            raise ValidationFailed(
                "benchmark: a stock code", code="invalid_benchmark", fields={"benchmark": ["a code"]}
            )
        return Response(account_analytics(account=account, start=start, end=end, benchmark=benchmark))


class RebuildInput(serializers.Serializer):
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False)


class SnapshotRebuildApi(APIView):
    @extend_schema(
        request=RebuildInput, responses=OpenApiTypes.OBJECT, summary="Rebuild daily equity snapshots from executions"
    )
    def post(self, request, account_id: int):
        account = paper_account_for_user(user=request.user, account_id=account_id)
        if not isinstance(request.data, dict):
            raise ValidationFailed("a JSON object is expected", code="invalid_body")
        data = RebuildInput(data=request.data)
        data.is_valid(raise_exception=True)
        written = equity_snapshots_rebuild(account_id=account.pk, **data.validated_data)
        return Response({"account": account.pk, "written": written})


class ExecutionsCsvApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("year", int, required=False), OpenApiParameter("lang", str, enum=["ko", "en"])],
        responses={(200, "text/csv"): OpenApiTypes.STR},
        summary="Your executions as CSV",
    )
    def get(self, request, account_id: int):
        account = paper_account_for_user(user=request.user, account_id=account_id)
        year, lang = _year(request.query_params, required=False), _lang(request.query_params)
        text = executions_csv(execution_rows(account=account, year=year), lang)
        return _csv(text, f"executions-{account.pk}{'-' + str(year) if year else ''}.csv")


class RealizedPnlCsvApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("year", int, required=True), OpenApiParameter("lang", str, enum=["ko", "en"])],
        responses={(200, "text/csv"): OpenApiTypes.STR},
        summary="Realized P&L statement of one year, per stock, as CSV",
    )
    def get(self, request, account_id: int):
        account = paper_account_for_user(user=request.user, account_id=account_id)
        year, lang = _year(request.query_params, required=True), _lang(request.query_params)
        assert year is not None
        text = realized_pnl_csv(realized_pnl_by_stock(account=account, year=year), lang, year)
        return _csv(text, f"realized-pnl-{account.pk}-{year}.csv")
