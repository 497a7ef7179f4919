from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ValidationFailed

from .models import Market
from .selectors import stock_list_universe


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
