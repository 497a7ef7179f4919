"""Paper-trading order API: place, list, read and cancel orders; list executions."""

from datetime import date

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.apis import account_from_request
from apps.core.exceptions import ValidationFailed

from .models import OrderStatus, OrderType, Side
from .selectors import execution_list_for_user, order_get_for_user, order_list_for_user
from .services import order_cancel, order_place


class OrderOutput(serializers.Serializer):
    id = serializers.IntegerField()
    account = serializers.IntegerField(source="account_id")
    code = serializers.CharField(source="stock.code")
    name = serializers.CharField(source="stock.name")
    side = serializers.CharField()
    order_type = serializers.CharField()
    quantity = serializers.IntegerField()
    limit_price = serializers.IntegerField(allow_null=True)
    status = serializers.CharField()
    filled_quantity = serializers.IntegerField()
    avg_fill_price = serializers.DecimalField(max_digits=18, decimal_places=4, allow_null=True)
    commission_total = serializers.IntegerField()
    tax_total = serializers.IntegerField()
    reserved_cash = serializers.IntegerField()
    reject_reason = serializers.CharField()
    client_order_id = serializers.CharField(allow_null=True)
    trading_date = serializers.DateField()
    queued = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class OrderInput(serializers.Serializer):
    account = serializers.IntegerField(required=False, help_text="default: your first account")
    code = serializers.CharField(max_length=12)
    side = serializers.CharField(help_text="BUY or SELL")
    order_type = serializers.CharField(help_text="MARKET or LIMIT")
    quantity = serializers.JSONField(help_text="a positive integer number of shares")
    limit_price = serializers.JSONField(required=False, allow_null=True, help_text="KRW, on the tick grid (LIMIT)")
    client_order_id = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=False)


class ExecutionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    order = serializers.IntegerField(source="order_id")
    account = serializers.IntegerField(source="account_id")
    code = serializers.CharField(source="stock.code")
    side = serializers.CharField()
    price = serializers.IntegerField()
    quantity = serializers.IntegerField()
    amount = serializers.IntegerField()
    commission = serializers.IntegerField()
    tax = serializers.IntegerField()
    realized_pnl = serializers.IntegerField()
    executed_at = serializers.DateTimeField()
    source = serializers.CharField(
        help_text='"tick": a live trade print; "poll": a REST price snapshot of a stock without a live slot '
        "(its price, at most the volume traded since the previous snapshot, no order book walked)"
    )


def _date_param(request) -> date | None:
    raw = request.query_params.get("date")
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed("Invalid date.", code="invalid_date", fields={"date": ["YYYY-MM-DD"]}) from None


class OrderListApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=[*OrderStatus.values, "OPEN"], required=False),
            OpenApiParameter("code", str, required=False, description="stock code"),
            OpenApiParameter("date", str, required=False, description="trading date YYYY-MM-DD"),
            OpenApiParameter("account", int, required=False),
        ],
        responses=OrderOutput(many=True),
        summary="Your orders, newest first",
    )
    def get(self, request):
        status_filter = request.query_params.get("status") or None
        if status_filter and status_filter.upper() not in [*OrderStatus.values, "OPEN"]:
            raise ValidationFailed(
                "Invalid status.", code="invalid_status", fields={"status": [f"one of {[*OrderStatus.values, 'OPEN']}"]}
            )
        account = request.query_params.get("account")
        orders = order_list_for_user(
            user=request.user,
            status=status_filter,
            code=request.query_params.get("code") or None,
            date=_date_param(request),
            account_id=account_from_request(request).pk if account else None,
        )
        page = self.paginator.paginate_queryset(orders, request, view=self) if self.paginator else None
        if page is not None:
            return self.paginator.get_paginated_response(OrderOutput(page, many=True).data)
        return Response(OrderOutput(orders, many=True).data)

    @property
    def paginator(self):
        from rest_framework.settings import api_settings

        if not hasattr(self, "_paginator"):
            cls = api_settings.DEFAULT_PAGINATION_CLASS
            self._paginator = cls() if cls else None
        return self._paginator

    @extend_schema(
        request=OrderInput,
        responses={201: OrderOutput, 200: OrderOutput},
        summary="Place an order (resubmitting the same client_order_id returns the same order)",
    )
    def post(self, request):
        data = OrderInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        account = account_from_request(request)
        side = str(values["side"]).upper()
        order_type = str(values["order_type"]).upper()
        if side not in Side.values or order_type not in OrderType.values:
            fields = {}
            if side not in Side.values:
                fields["side"] = [f"one of {Side.values}"]
            if order_type not in OrderType.values:
                fields["order_type"] = [f"one of {OrderType.values}"]
            raise ValidationFailed("Invalid order.", code="invalid_order", fields=fields)
        started = timezone.now()
        order = order_place(
            account=account,
            user=request.user,
            code=str(values["code"]).strip().upper(),
            side=side,
            order_type=order_type,
            quantity=values["quantity"],
            limit_price=values.get("limit_price"),
            client_order_id=values.get("client_order_id"),
        )
        created = order.created_at >= started  # else: a resubmitted client_order_id returned the earlier order
        return Response(OrderOutput(order).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class OrderDetailApi(APIView):
    @extend_schema(responses=OrderOutput, summary="One of your orders")
    def get(self, request, order_id: int):
        return Response(OrderOutput(order_get_for_user(user=request.user, order_id=order_id)).data)

    @extend_schema(request=None, responses=OrderOutput, summary="Cancel an open order (the unfilled remainder)")
    def delete(self, request, order_id: int):
        return Response(OrderOutput(order_cancel(order_id=order_id, user=request.user)).data)


class ExecutionListApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("account", int, required=False), OpenApiParameter("code", str, required=False)],
        responses=ExecutionOutput(many=True),
        summary="Your executions (체결), newest first",
    )
    def get(self, request):
        account = request.query_params.get("account")
        executions = execution_list_for_user(
            user=request.user,
            account_id=account_from_request(request).pk if account else None,
            code=request.query_params.get("code") or None,
        )
        return Response(ExecutionOutput(executions[:500], many=True).data)
