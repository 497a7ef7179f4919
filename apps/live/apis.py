"""``GET /api/marketdata/quotes?codes=005930,000660``: the latest known quote per stock, with provenance."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ValidationFailed
from apps.core.groups import valid_code
from apps.marketdata.market_clock import MarketClockUnavailable, sandbox_now
from apps.marketdata.models import Stock

from .quotes import quotes_latest

MAX_QUOTE_CODES = 100  # one watch list page; the Redis read is a single HMGET


class QuoteOutput(serializers.Serializer):
    code = serializers.CharField()
    price = serializers.IntegerField()
    source = serializers.CharField(
        help_text='"ws" (live feed), "poll" (polled over REST: no live slot was free), "minute_bar:<source>", '
        '"daily_bar:<source>" or "reference:<source>".'
    )
    as_of = serializers.CharField(help_text="ISO 8601 (+09:00) for ticks and minute bars, YYYY-MM-DD for daily bars.")


def parse_codes(raw: str) -> list[str]:
    """Validated, de-duplicated codes of ``?codes=`` in request order; every problem is a field error."""
    codes = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not codes:
        raise ValidationFailed("No stock codes given.", code="invalid_codes", fields={"codes": ["required"]})
    if len(codes) > MAX_QUOTE_CODES:
        raise ValidationFailed(
            "Too many stock codes.", code="invalid_codes", fields={"codes": [f"at most {MAX_QUOTE_CODES} codes"]}
        )
    malformed = [c for c in codes if not valid_code(c)]
    if malformed:
        raise ValidationFailed(
            "Malformed stock codes.",
            code="invalid_codes",
            fields={"codes": [f"not a 6-character stock code: {c!r}" for c in malformed[:20]]},
        )
    known = set(Stock.objects.filter(code__in=codes).values_list("code", flat=True))
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise ValidationFailed(
            "Unknown stock codes.",
            code="unknown_codes",
            fields={"codes": [f"unknown stock code {c!r}" for c in unknown[:20]]},
        )
    return codes


class QuotesApi(APIView):
    """Answers from the live snapshot store, then stored bars; states ``source`` and ``as_of`` per quote."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[OpenApiParameter("codes", str, required=True, description="comma-separated 6-character codes")],
        responses=inline_serializer(
            "QuotesOutput",
            {
                "quotes": QuoteOutput(many=True),
                "missing": serializers.ListField(child=serializers.CharField()),
                "feed_status": serializers.CharField(),
                "synthetic": serializers.BooleanField(
                    allow_null=True, required=False, help_text="Sandbox only: the replayed data is synthetic."
                ),
                "warning": serializers.CharField(required=False),
            },
        ),
        summary="Latest quotes of some stocks (live snapshot, else the newest minute bar, else the last close)",
    )
    def get(self, request):
        codes = parse_codes(request.query_params.get("codes", ""))
        data = quotes_latest(codes=codes)
        if settings.MARKET_BROKER == "sandbox":
            try:
                data["synthetic"] = sandbox_now(timeout=1.0).synthetic
            except MarketClockUnavailable:
                data["synthetic"] = None
                data["warning"] = "sandbox clock unreachable: whether these prices are synthetic is unknown"
        return Response(data)
