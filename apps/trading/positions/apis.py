"""Paper-trading positions API: the paper engine's positions of an account and, for an account whose orders a
registered executor takes (a broker-linked account), the holdings of that broker's last reconciled balance, each row
saying where it comes from (``source``) and, for the broker's, when the balance was read (``as_of``)."""

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.trading.accounts.params import account_from_request
from apps.trading.orders.executors import PAPER_ENGINE, ExternalHoldings, external_holdings_for

from .selectors import position_list_for_account


class PositionOutput(serializers.Serializer[Any]):
    code = serializers.CharField()
    name = serializers.CharField()
    market = serializers.CharField()
    quantity = serializers.IntegerField()
    reserved_quantity = serializers.IntegerField(allow_null=True, help_text="null: held at the broker")
    free_quantity = serializers.IntegerField(allow_null=True, help_text="null: held at the broker")
    avg_price = serializers.DecimalField(max_digits=18, decimal_places=4)
    cost_basis = serializers.IntegerField()
    last_price = serializers.IntegerField(allow_null=True)
    price_source = serializers.CharField()
    market_value = serializers.IntegerField()
    unrealized_pnl = serializers.IntegerField()
    unrealized_pnl_pct = serializers.DecimalField(max_digits=12, decimal_places=2)
    realized_pnl = serializers.IntegerField(allow_null=True, help_text="null: held at the broker")
    fees_paid = serializers.IntegerField(allow_null=True)
    taxes_paid = serializers.IntegerField(allow_null=True)
    source = serializers.CharField(  # type: ignore[assignment]  # the output field "source", not Field.source
        default=PAPER_ENGINE,
        help_text="paper_engine, or kis_paper / kis_real: the broker's last reconciled balance (inquire-balance)",
    )
    as_of = serializers.DateTimeField(
        allow_null=True, default=None, help_text="When the broker's balance was read (null: the paper engine's)"
    )


def broker_position_rows(holdings: ExternalHoldings) -> list[dict[str, Any]]:
    """The broker's holdings in the shape of :class:`PositionOutput` (its prices and values as it told them)."""
    rows = []
    for h in holdings.positions:
        avg = Decimal(h.avg_price)
        cost = int((avg * h.quantity).quantize(Decimal("1"), rounding=ROUND_HALF_UP))
        unrealized = h.value - cost
        pct = (Decimal(unrealized) * 100 / Decimal(cost)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        rows.append(
            {
                "code": h.code,
                "name": h.name,
                "market": "",
                "quantity": h.quantity,
                "reserved_quantity": None,
                "free_quantity": None,
                "avg_price": avg,
                "cost_basis": cost,
                "last_price": h.price,
                "price_source": "broker_balance",
                "market_value": h.value,
                "unrealized_pnl": unrealized,
                "unrealized_pnl_pct": pct if cost else Decimal("0"),
                "realized_pnl": None,
                "fees_paid": None,
                "taxes_paid": None,
                "source": holdings.executed_by,
                "as_of": holdings.as_of,
            }  # fmt: skip
        )
    return rows


class PositionListApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("account", int, required=False)],
        responses=PositionOutput(many=True),
        summary="Open positions with unrealized P&L from the latest quote",
        description="A broker-linked account adds the holdings of the broker's last reconciled balance "
        "(source kis_paper / kis_real, as_of: when it was read; its prices and values are the broker's then).",
    )
    def get(self, request: Request) -> Response:
        account = account_from_request(request)
        rows: list[dict[str, Any]] = position_list_for_account(account_id=account.pk)
        holdings = external_holdings_for(account)
        if holdings is not None:
            rows = [*rows, *broker_position_rows(holdings)]
        return Response(PositionOutput(rows, many=True).data)
