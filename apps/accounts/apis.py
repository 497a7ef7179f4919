"""Paper-trading account API: list/create accounts, reset one, and its balance."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ValidationFailed, parse_id

from .models import DEFAULT_INITIAL_CASH
from .selectors import paper_account_for_user, paper_account_list_for_user
from .services import paper_account_create, paper_account_ensure, paper_account_reset


class PaperAccountOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    initial_cash = serializers.IntegerField()
    cash = serializers.IntegerField()
    reserved_cash = serializers.IntegerField()
    free_cash = serializers.IntegerField()
    commission_rate = serializers.DecimalField(max_digits=7, decimal_places=6)
    created_at = serializers.DateTimeField()
    reset_at = serializers.DateTimeField(allow_null=True)


class PaperAccountCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    initial_cash = serializers.IntegerField(min_value=1, max_value=10**13, default=DEFAULT_INITIAL_CASH)


class BalanceOutput(serializers.Serializer):
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


def account_from_request(request):
    """The account named by ``?account=`` (it must be the user's), else the user's first one."""
    raw = request.query_params.get("account")
    if raw in (None, "") and request.method == "POST" and isinstance(request.data, dict):
        raw = request.data.get("account")
    if raw in (None, ""):
        return paper_account_ensure(user=request.user)
    account_id = parse_id(raw)
    if account_id is None:
        raise ValidationFailed("Invalid account.", code="invalid_account", fields={"account": ["an account id"]})
    return paper_account_for_user(user=request.user, account_id=account_id)


class PaperAccountListApi(APIView):
    @extend_schema(responses=PaperAccountOutput(many=True), summary="Your paper accounts (모의투자 계좌)")
    def get(self, request):
        paper_account_ensure(user=request.user)
        return Response(PaperAccountOutput(paper_account_list_for_user(user=request.user), many=True).data)

    @extend_schema(request=PaperAccountCreateInput, responses={201: PaperAccountOutput}, summary="Open a paper account")
    def post(self, request):
        data = PaperAccountCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        account = paper_account_create(user=request.user, **data.validated_data)
        return Response(PaperAccountOutput(account).data, status=status.HTTP_201_CREATED)


class PaperAccountResetApi(APIView):
    @extend_schema(request=None, responses=PaperAccountOutput, summary="Reset an account to its initial cash")
    def post(self, request, account_id: int):
        account = paper_account_reset(account_id=account_id, user=request.user)
        return Response(PaperAccountOutput(account).data)


class BalanceApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("account", int, required=False, description="default: your first account")],
        responses=BalanceOutput,
        summary="Cash, equity, realized/unrealized P&L and return %",
    )
    def get(self, request):
        from apps.positions.selectors import account_balance

        account = account_from_request(request)
        return Response(BalanceOutput(account_balance(account_id=account.pk)).data)
