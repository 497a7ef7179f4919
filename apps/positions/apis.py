"""Paper-trading positions API."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.apis import account_from_request

from .selectors import position_list_for_account


class PositionOutput(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    market = serializers.CharField()
    quantity = serializers.IntegerField()
    reserved_quantity = serializers.IntegerField()
    free_quantity = serializers.IntegerField()
    avg_price = serializers.DecimalField(max_digits=18, decimal_places=4)
    cost_basis = serializers.IntegerField()
    last_price = serializers.IntegerField(allow_null=True)
    price_source = serializers.CharField()
    market_value = serializers.IntegerField()
    unrealized_pnl = serializers.IntegerField()
    unrealized_pnl_pct = serializers.DecimalField(max_digits=12, decimal_places=2)
    realized_pnl = serializers.IntegerField()
    fees_paid = serializers.IntegerField()
    taxes_paid = serializers.IntegerField()


class PositionListApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("account", int, required=False)],
        responses=PositionOutput(many=True),
        summary="Open positions with unrealized P&L from the latest quote",
    )
    def get(self, request):
        account = account_from_request(request)
        return Response(PositionOutput(position_list_for_account(account_id=account.pk), many=True).data)
