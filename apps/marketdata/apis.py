from datetime import date, datetime, time

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ValidationFailed
from apps.core.krx.calendar import KST
from apps.core.throttling import SearchRateThrottle, WriteRateThrottle

from .models import BarSource, Market, Stock
from .on_demand import on_demand_touch, stock_bars_ensure
from .resample import MINUTE_INTERVALS, resample_minutes
from .search import MAX_QUERY, MAX_RESULTS
from .selectors import (
    chart_studies_for_user,
    daily_bars_for,
    krx_calendar,
    minute_bars_for,
    stock_list_universe,
    stock_search,
)
from .services import chart_studies_set
from .studies import STUDIES, compute


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


class SearchHitOutput(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    market = serializers.CharField()
    in_universe = serializers.BooleanField(help_text="In the collection universe (else: bars fetched on demand).")
    halted = serializers.BooleanField(help_text="거래정지")
    administrative = serializers.BooleanField(help_text="관리종목")
    warning = serializers.CharField(help_text='시장경고: "", "caution", "warning" or "risk".')
    match = serializers.ChoiceField(choices=["code", "name", "chosung", "roman"], help_text="What matched.")


class StockSearchApi(APIView):
    """Search every listed stock by code, Hangul name, initial consonants (초성) or romanised name."""

    throttle_classes = [WriteRateThrottle, SearchRateThrottle]

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, required=True, description=f"1-{MAX_QUERY} characters, e.g. ㅅㅅㅈㅈ"),
            OpenApiParameter("limit", int, required=False, description=f"1-{MAX_RESULTS}, default 10"),
        ],
        responses=SearchHitOutput(many=True),
        summary="Find listed stocks (code, name, 초성, romanised name)",
    )
    def get(self, request):
        query = request.query_params.get("q", "")
        raw_limit = request.query_params.get("limit", "10")
        errors: dict[str, list[str]] = {}
        if not query.strip() or len(query) > MAX_QUERY or any(ord(ch) < 32 or ch == "\x7f" for ch in query):
            errors["q"] = [f"1-{MAX_QUERY} printable characters"]
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_RESULTS:
            errors["limit"] = [f"a whole number 1-{MAX_RESULTS}"]
        if errors:
            raise ValidationFailed("Invalid search.", code="invalid_search", fields=errors)
        hits = stock_search(query=query, limit=int(raw_limit))
        fields = ("code", "name", "market", "in_universe", "halted", "administrative", "warning")
        data = [{**{f: getattr(h.entry, f) for f in fields}, "match": h.match} for h in hits]
        return Response(SearchHitOutput(data, many=True).data)


class BarOutput(serializers.Serializer):
    time = serializers.CharField(help_text="KST: YYYY-MM-DD for daily bars, ISO 8601 with +09:00 for minute bars.")
    open = serializers.IntegerField()
    high = serializers.IntegerField()
    low = serializers.IntegerField()
    close = serializers.IntegerField()
    volume = serializers.IntegerField()
    phase = serializers.CharField(
        required=False,
        help_text="Minute bars: continuous, an auction's single print (opening_auction, closing_auction, vi_auction), "
        "or an off-hours session (pre_close_price, post_close_price, after_hours_single). Absent on daily bars.",
    )


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
        return Response(BarOutput(bars_requested(request.query_params, user_id=request.user.pk), many=True).data)


MAX_MINUTE_DAYS = BarsApi.MAX_MINUTE_DAYS


def bars_requested(params, *, user_id: int | None = None) -> list[dict]:
    """The bars a request's ``code``/``interval``/``from``/``to``/``source`` name (validated: a coded 400 on bad
    input): what the bars API serves and the studies are computed from. A listed stock outside the universe is
    fetched on demand the first time (``on_demand``)."""
    errors: dict[str, list[str]] = {}
    code = params.get("code", "")
    interval = params.get("interval", "1d")
    source = params.get("source", "kis")
    stock = Stock.objects.filter(code=code).only("code", "active", "in_universe").first() if code else None
    if stock is None:
        errors["code"] = [f"unknown stock code {code!r}"[:80]]
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
    if not errors and interval != "1d" and (dates["to"] - dates["from"]).days >= MAX_MINUTE_DAYS:
        errors["to"] = [f"minute bars are served for at most {MAX_MINUTE_DAYS} days per request"]
    if errors:
        raise ValidationFailed("Invalid bar request.", code="invalid_bar_request", fields=errors)
    if stock is not None and stock.active and not stock.in_universe and source == BarSource.KIS:
        on_demand_touch(stock.code)  # kept current by the collection jobs while someone watches it
        stock_bars_ensure(stock.code, user_id=user_id)  # the first open fetches its history from the broker

    if interval == "1d":
        rows = daily_bars_for(code=code, date_from=dates["from"], date_to=dates["to"], source=source)
        return [{**row, "time": row["date"].isoformat()} for row in rows]
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
    return [{**row, "time": row["ts"].astimezone(KST).isoformat()} for row in resampled]


def _study_names(raw: str) -> list[str]:
    names = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    unknown = [n for n in names if n not in STUDIES]
    if not names or unknown or len(raw) > 200:
        raise ValidationFailed(
            "Invalid studies.", code="invalid_studies", fields={"studies": [f"a comma-separated subset of {STUDIES}"]}
        )
    return names


def _rounded(series):
    if isinstance(series, dict):
        return {key: _rounded(values) for key, values in series.items()}
    return [None if v is None else round(v, 4) for v in series]


class StudiesApi(APIView):
    """Chart studies computed on the server from exactly the bars ``/api/marketdata/bars`` serves."""

    @extend_schema(
        parameters=[
            OpenApiParameter("studies", str, required=True, description=f"comma-separated: {', '.join(STUDIES)}"),
            OpenApiParameter("code", str, required=True),
            OpenApiParameter("interval", str, enum=["1d", *MINUTE_INTERVALS], required=False),
            OpenApiParameter("from", str, required=True),
            OpenApiParameter("to", str, required=True),
        ],
        responses=inline_serializer(
            "StudiesOutput",
            {
                "time": serializers.ListField(child=serializers.CharField(), help_text="the bars' times"),
                "studies": serializers.DictField(help_text="study -> values (or band/line -> values), one a bar"),
            },
        ),
        summary="Moving averages, Bollinger bands, volume average, RSI and MACD of a stock's bars",
    )
    def get(self, request):
        names = _study_names(request.query_params.get("studies", ""))
        bars = bars_requested(request.query_params, user_id=request.user.pk)
        computed = compute(bars, names)
        return Response({"time": [b["time"] for b in bars], "studies": _rounded(computed)})


class ChartStudiesInput(serializers.Serializer):
    studies = serializers.ListField(child=serializers.CharField(max_length=10), max_length=len(STUDIES))


class ChartStudiesApi(APIView):
    """The studies your charts show (remembered per user)."""

    @extend_schema(responses=ChartStudiesInput, summary="Your chart studies")
    def get(self, request):
        return Response({"studies": chart_studies_for_user(user=request.user)})

    @extend_schema(request=ChartStudiesInput, responses=ChartStudiesInput, summary="Remember your chart studies")
    def put(self, request):
        serializer = ChartStudiesInput(data=request.data)
        if not serializer.is_valid():
            raise ValidationFailed("Invalid studies.", code="invalid_studies", fields=serializer.errors)
        return Response({"studies": chart_studies_set(user=request.user, studies=serializer.validated_data["studies"])})
