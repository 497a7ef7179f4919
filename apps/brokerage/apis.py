"""``/api/brokerage/``: orders of a broker-linked account (placed at the broker, every one saying where it is
executed), the link (keys never shown back: a four-character hint only), the real-account opt-in."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import NotFound, parse_id

from .exceptions import InvalidBrokerOrder, NotLinked
from .selectors import (
    broker_balance,
    broker_disagreements,
    broker_expected_state,
    broker_link_for_user,
    broker_order_for_user,
    broker_orders_for_user,
    broker_positions,
)
from .services import broker_link_opt_in_real, broker_order_place


class BrokerOrderInput(serializers.Serializer):
    code = serializers.CharField(max_length=6)
    side = serializers.CharField(max_length=4)
    order_type = serializers.CharField(max_length=6)
    quantity = serializers.IntegerField(min_value=1, max_value=10_000_000)
    price = serializers.IntegerField(min_value=1, max_value=10**9 - 1, required=False, allow_null=True)
    venue = serializers.CharField(max_length=3, required=False, default="KRX")
    client_order_id = serializers.CharField(max_length=64)
    confirm = serializers.BooleanField(required=False, default=False)


def order_data(order) -> dict:
    return {
        "id": order.pk,
        "client_order_id": order.client_order_id,
        "code": order.code,
        "side": order.side,
        "order_type": order.order_type,
        "quantity": order.quantity,
        "price": order.limit_price,
        "venue": order.venue,
        "status": order.status,
        "filled_qty": order.filled_qty,
        "filled_value": order.filled_value,
        "broker_order_no": order.broker_order_no,
        "executed_at": order.executed_at,
        "env": order.env,
        "message": order.message,
        "created_at": order.created_at.isoformat(),
    }


class BrokerOrdersApi(APIView):
    @extend_schema(
        request=BrokerOrderInput,
        responses={201: OpenApiTypes.OBJECT},
        summary="Place an order at the broker (a linked account; real: opt-in + confirm)",
    )
    def post(self, request):
        data = BrokerOrderInput(data=request.data)
        if not data.is_valid():
            raise InvalidBrokerOrder("Invalid order.", fields={k: [str(m) for m in v] for k, v in data.errors.items()})
        v = data.validated_data
        order = broker_order_place(
            user=request.user, code=v["code"], side=v["side"], order_type=v["order_type"], quantity=v["quantity"],
            limit_price=v.get("price"), venue=v["venue"], client_order_id=v["client_order_id"], confirm=v["confirm"],
        )  # fmt: skip
        return Response(order_data(order), status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="brokerage_orders_list",
        responses=OpenApiTypes.OBJECT,
        summary="The broker-linked account's orders, newest first",
    )
    def get(self, request):
        return Response({"orders": [order_data(o) for o in broker_orders_for_user(user=request.user)]})


class BrokerOrderDetailApi(APIView):
    @extend_schema(
        operation_id="brokerage_orders_detail",
        responses=OpenApiTypes.OBJECT,
        summary="One broker order with its executions",
    )
    def get(self, request, order_id: str):
        pk = parse_id(order_id)
        order = broker_order_for_user(user=request.user, order_id=pk) if pk else None
        if order is None:
            raise NotFound("No such order.", code="order_not_found")
        executions = [
            {"quantity": e.quantity, "price": e.price, "venue": e.venue, "source": e.source}
            for e in order.executions.order_by("id")
        ]
        return Response({**order_data(order), "executions": executions})


class BrokerLinkApi(APIView):
    @extend_schema(
        responses=inline_serializer("BrokerLinkOutput", {"env": serializers.CharField()}),
        summary="The account's broker link (the key is never shown: a hint only), positions and disagreements",
    )
    def get(self, request):
        link = broker_link_for_user(user=request.user)
        if link is None:
            raise NotLinked("This paper account is not linked to a broker account.")
        return Response(
            {
                "env": link.env,
                "account": f"{link.cano[:4]}****-{link.product_code}",
                "app_key_hint": f"{link.app_key_hint}…",
                "real_opt_in": link.real_opt_in,
                "daily_value_limit": link.daily_value_limit,
                "positions": broker_positions(link=link),
                "cash": broker_expected_state(link=link)[1],
                "balance": (
                    {
                        "cash": balance.cash,
                        "securities_value": balance.securities_value,
                        "total_value": balance.total_value,
                        "holdings": balance.holdings,
                        "fetched_at": balance.fetched_at.isoformat(),
                    }
                    if (balance := broker_balance(link=link))
                    else None
                ),
                "disagreements": [
                    {
                        "kind": d.kind,
                        "order_id": d.order_id,
                        "ours": d.ours,
                        "broker": d.broker,
                        "at": d.created_at.isoformat(),
                    }
                    for d in broker_disagreements(link=link)
                ],  # fmt: skip
            }
        )


class BrokerOptInApi(APIView):
    @extend_schema(
        request=inline_serializer("BrokerOptInInput", {"confirm_cano": serializers.CharField(max_length=20)}),
        responses=OpenApiTypes.OBJECT,
        summary="Enable orders to the linked real account (type its account number to confirm)",
    )
    def post(self, request):
        confirm = request.data.get("confirm_cano") if hasattr(request.data, "get") else None
        link = broker_link_opt_in_real(user=request.user, confirm_cano=str(confirm or "")[:20])
        return Response({"real_opt_in": link.real_opt_in, "at": link.real_opt_in_at.isoformat()})
