"""Paper-trading account API: list/create accounts, reset one, and its balance."""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.trading.orders.executors import external_holdings_for
from apps.trading.orders.release import paper_account_reset
from apps.trading.positions.selectors import account_balance

from .models import DEFAULT_INITIAL_CASH
from .params import account_from_request
from .selectors import paper_account_list_for_user
from .services import paper_account_create, paper_account_ensure


class PaperAccountOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    initial_cash = serializers.IntegerField()
    cash = serializers.IntegerField()
    reserved_cash = serializers.IntegerField()
    free_cash = serializers.IntegerField()
    commission_rate = serializers.DecimalField(max_digits=7, decimal_places=6)
    created_at = serializers.DateTimeField()
    reset_at = serializers.DateTimeField(allow_null=True)


class PaperAccountCreateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    initial_cash = serializers.IntegerField(min_value=1, max_value=10**13, default=DEFAULT_INITIAL_CASH)


class BrokerBalanceOutput(serializers.Serializer[Any]):
    executed_by = serializers.CharField(help_text="kis_paper or kis_real")
    label = serializers.CharField()  # type: ignore[assignment]  # the output field "label", not Field.label
    as_of = serializers.DateTimeField(allow_null=True, help_text="When the balance was read (null: not yet)")
    cash = serializers.IntegerField(allow_null=True, help_text="dnca_tot_amt: the deposit, KRW")
    securities_value = serializers.IntegerField(allow_null=True, help_text="scts_evlu_amt, KRW")
    total_value = serializers.IntegerField(allow_null=True, help_text="tot_evlu_amt, KRW")


class BalanceOutput(serializers.Serializer[Any]):
    account_id = serializers.IntegerField()
    initial_cash = serializers.IntegerField()
    cash = serializers.IntegerField()
    reserved_cash = serializers.IntegerField()
    free_cash = serializers.IntegerField()
    positions_value = serializers.IntegerField()
    positions_cost = serializers.IntegerField()
    equity = serializers.IntegerField()
    realized_pnl = serializers.IntegerField()
    unrealized_pnl = serializers.IntegerField()
    fees_paid = serializers.IntegerField()
    taxes_paid = serializers.IntegerField()
    net_pnl = serializers.IntegerField()
    return_pct = serializers.DecimalField(max_digits=12, decimal_places=2)
    broker_balance = BrokerBalanceOutput(
        allow_null=True, help_text="A broker-linked account: the broker's last reconciled balance; else null"
    )


class PaperAccountListApi(APIView):
    @extend_schema(responses=PaperAccountOutput(many=True), summary="Your paper accounts (모의투자 계좌)")
    def get(self, request: Request) -> Response:
        paper_account_ensure(user=request.user)
        return Response(PaperAccountOutput(paper_account_list_for_user(user=request.user), many=True).data)

    @extend_schema(request=PaperAccountCreateInput, responses={201: PaperAccountOutput}, summary="Open a paper account")
    def post(self, request: Request) -> Response:
        data = PaperAccountCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        account = paper_account_create(user=request.user, **data.validated_data)
        return Response(PaperAccountOutput(account).data, status=status.HTTP_201_CREATED)


class PaperAccountResetApi(APIView):
    @extend_schema(request=None, responses=PaperAccountOutput, summary="Reset an account to its initial cash")
    def post(self, request: Request, account_id: int) -> Response:
        account = paper_account_reset(account_id=account_id, user=request.user)
        return Response(PaperAccountOutput(account).data)


class BalanceApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("account", int, required=False, description="default: your first account")],
        responses=BalanceOutput,
        summary="Cash, equity, realized/unrealized P&L and return %",
    )
    def get(self, request: Request) -> Response:

        account = account_from_request(request)
        holdings = external_holdings_for(account)
        data = {**account_balance(account_id=account.pk), "broker_balance": holdings}
        return Response(BalanceOutput(data).data)
