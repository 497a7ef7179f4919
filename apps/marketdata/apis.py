from datetime import date, datetime, time

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ValidationFailed

from .calendar import KST
from .models import BarSource, Market, Stock
from .resample import MINUTE_INTERVALS, resample_minutes
from .selectors import daily_bars_for, krx_calendar, minute_bars_for, stock_list_universe


class StockOutput(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    market = serializers.CharField()
    rank = serializers.IntegerField(allow_null=True)
    market_cap = serializers.IntegerField(allow_null=True)


class StockListApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("market", str, enum=Market.values, required=False)],
        responses=StockOutput(many=True),
        summary="The active stock universe, by market-cap rank",
    )
    def get(self, request):
        market = request.query_params.get("market") or None
        if market is not None and market not in Market.values:
            raise ValidationFailed(
                f"Unknown market {market!r}.", code="unknown_market", fields={"market": [f"one of {Market.values}"]}
            )
        return Response(StockOutput(stock_list_universe(market=market), many=True).data)


class BarOutput(serializers.Serializer):
    time = serializers.CharField(help_text="KST: YYYY-MM-DD for daily bars, ISO 8601 with +09:00 for minute bars.")
    open = serializers.IntegerField()
    high = serializers.IntegerField()
    low = serializers.IntegerField()
    close = serializers.IntegerField()
    volume = serializers.IntegerField()


class BarsApi(APIView):
    """Daily bars, or 1-minute bars resampled session-aware to 3/5/10/15/30/60 minutes."""

    MAX_MINUTE_DAYS = 31

    @extend_schema(
        parameters=[
            OpenApiParameter("code", str, required=True, description="6-digit stock code"),
            OpenApiParameter("interval", str, enum=["1d", *MINUTE_INTERVALS], required=False),
            OpenApiParameter("from", str, required=True, description="YYYY-MM-DD (KST)"),
            OpenApiParameter("to", str, required=True, description="YYYY-MM-DD (KST), inclusive"),
            OpenApiParameter("source", str, enum=BarSource.values, required=False),
        ],
        responses=BarOutput(many=True),
        summary="OHLCV bars of one stock",
    )
    def get(self, request):
        params = request.query_params
        errors: dict[str, list[str]] = {}
        code = params.get("code", "")
        interval = params.get("interval", "1d")
        source = params.get("source", "kis")
        if not Stock.objects.filter(code=code).exists():
            errors["code"] = [f"unknown stock code {code!r}"]
        if interval != "1d" and interval not in MINUTE_INTERVALS:
            errors["interval"] = [f"one of {['1d', *MINUTE_INTERVALS]}"]
        if source not in BarSource.values:
            errors["source"] = [f"one of {BarSource.values}"]
        dates = {}
        for name in ("from", "to"):
            try:
                dates[name] = date.fromisoformat(params.get(name, ""))
            except ValueError:
                errors[name] = ["a date as YYYY-MM-DD"]
        if not errors and dates["from"] > dates["to"]:
            errors["from"] = ["must not be after 'to'"]
        if not errors and interval != "1d" and (dates["to"] - dates["from"]).days >= self.MAX_MINUTE_DAYS:
            errors["to"] = [f"minute bars are served for at most {self.MAX_MINUTE_DAYS} days per request"]
        if errors:
            raise ValidationFailed("Invalid bar request.", code="invalid_bar_request", fields=errors)

        if interval == "1d":
            rows = daily_bars_for(code=code, date_from=dates["from"], date_to=dates["to"], source=source)
            data = [{**row, "time": row["date"].isoformat()} for row in rows]
        else:
            start = datetime.combine(dates["from"], time.min, tzinfo=KST)
            end = datetime.combine(dates["to"], time.max, tzinfo=KST)
            rows = minute_bars_for(code=code, start=start, end=end, source=source)
            sessions = krx_calendar().sessions_between(dates["from"], dates["to"])
            resampled = resample_minutes(
                rows,
                MINUTE_INTERVALS[interval],
                {s.day: s.open for s in sessions},
                {s.day: s.close for s in sessions},
            )
            data = [{**row, "time": row["ts"].astimezone(KST).isoformat()} for row in resampled]
        return Response(BarOutput(data, many=True).data)
