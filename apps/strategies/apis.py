"""Strategies API under /api/strategies/ (session or token auth): only your own strategies and backtests exist
for you; another user's id, or a malformed one, is a 404. Bad input is a coded 400."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ValidationFailed

from .interface import ChoiceParam, FloatParam
from .registry import strategy_classes
from .selectors import (
    backtest_get_for_user,
    backtest_list_for_user,
    signal_list,
    strategy_get_for_user,
    strategy_list_for_user,
)
from .services import backtest_create, strategy_create, strategy_start, strategy_stop, strategy_update

MAX_LISTED = 500


class ParamSpecOutput(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()
    default = serializers.JSONField()
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    choices = serializers.ListField(child=serializers.CharField())
    help = serializers.CharField()


class KindOutput(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    description = serializers.CharField()
    uses_condition = serializers.BooleanField()
    params = ParamSpecOutput(many=True)


class StrategyOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    params = serializers.JSONField()
    codes = serializers.ListField(child=serializers.CharField())
    condition_id = serializers.IntegerField(allow_null=True)
    account_id = serializers.IntegerField()
    status = serializers.CharField()
    stop_reason = serializers.CharField()
    stopped_by = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    stopped_at = serializers.DateTimeField(allow_null=True)
    capital = serializers.IntegerField()
    max_position_value = serializers.IntegerField()
    max_order_value = serializers.IntegerField()
    daily_loss_limit = serializers.IntegerField()
    max_orders_per_minute = serializers.IntegerField()


class StrategyInput(serializers.Serializer):
    kind = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=100, required=False)
    params = serializers.JSONField(required=False, help_text="The kind's parameters (GET kinds lists them).")
    codes = serializers.ListField(child=serializers.CharField(max_length=12), required=False, max_length=200)
    condition_id = serializers.IntegerField(required=False, min_value=1, help_text="Condition strategies only.")
    account_id = serializers.IntegerField(required=False, min_value=1, help_text="Default: your first account.")
    capital = serializers.IntegerField(min_value=1)
    max_position_value = serializers.IntegerField(required=False, min_value=0)
    max_order_value = serializers.IntegerField(required=False, min_value=0)
    daily_loss_limit = serializers.IntegerField(required=False, min_value=0)
    max_orders_per_minute = serializers.IntegerField(required=False, min_value=0)


class StrategyUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    params = serializers.JSONField(required=False)
    codes = serializers.ListField(child=serializers.CharField(max_length=12), required=False, max_length=200)
    capital = serializers.IntegerField(required=False, min_value=1)
    max_position_value = serializers.IntegerField(required=False, min_value=0)
    max_order_value = serializers.IntegerField(required=False, min_value=0)
    daily_loss_limit = serializers.IntegerField(required=False, min_value=0)
    max_orders_per_minute = serializers.IntegerField(required=False, min_value=0)


class StopInput(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True)


class StopOutput(serializers.Serializer):
    strategy = StrategyOutput()
    cancelled_orders = serializers.ListField(child=serializers.IntegerField())


class SignalOutput(serializers.Serializer):
    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    code = serializers.CharField()
    side = serializers.CharField()
    quantity = serializers.IntegerField()
    inputs = serializers.JSONField()
    outcome = serializers.CharField()
    reason = serializers.CharField()
    client_order_id = serializers.CharField()
    order_id = serializers.IntegerField(allow_null=True)
    order_status = serializers.CharField(source="order.status", allow_null=True, default=None)


class BacktestInput(serializers.Serializer):
    strategy_id = serializers.IntegerField(required=False, min_value=1, help_text="Copy kind, params, stocks, limits.")
    kind = serializers.CharField(max_length=64, required=False)
    name = serializers.CharField(max_length=100, required=False)
    params = serializers.JSONField(required=False)
    codes = serializers.ListField(child=serializers.CharField(max_length=12), required=False, max_length=200)
    timeframe = serializers.ChoiceField(choices=["1m", "1d"], required=False)
    start = serializers.CharField(max_length=10, help_text="YYYY-MM-DD")
    end = serializers.CharField(max_length=10, help_text="YYYY-MM-DD")
    capital = serializers.IntegerField(required=False, min_value=1)
    max_position_value = serializers.IntegerField(required=False, min_value=0)
    max_order_value = serializers.IntegerField(required=False, min_value=0)
    daily_loss_limit = serializers.IntegerField(required=False, min_value=0)
    max_orders_per_minute = serializers.IntegerField(required=False, min_value=0)


class BacktestOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    strategy_id = serializers.IntegerField(allow_null=True)
    kind = serializers.CharField()
    params = serializers.JSONField()
    codes = serializers.ListField(child=serializers.CharField())
    timeframe = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField()
    limits = serializers.JSONField()
    status = serializers.CharField()
    progress = serializers.FloatField()
    bars_done = serializers.IntegerField()
    bars_total = serializers.IntegerField()
    task_id = serializers.CharField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    result = serializers.JSONField(help_text="Analytics, equity and drawdown per day, signals and fills.")


def _valid(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationFailed("Send a JSON object.", code="invalid_strategy", fields={"body": ["Not an object."]})
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise ValidationFailed("Invalid input.", code="invalid_strategy", fields=serializer.errors)
    return dict(serializer.validated_data)


def _kinds() -> list[dict[str, Any]]:
    out = []
    for key, cls in sorted(strategy_classes().items()):
        params = []
        for name, spec in cls.params.items():
            kind = "choice" if isinstance(spec, ChoiceParam) else "float" if isinstance(spec, FloatParam) else "int"
            params.append({
                "name": name, "type": kind, "default": spec.default, "help": spec.help,
                "low": getattr(spec, "low", None), "high": getattr(spec, "high", None),
                "choices": list(getattr(spec, "choices", ())),
            })  # fmt: skip
        out.append({"key": key, "label": cls.label, "description": cls.description,
                    "uses_condition": cls.uses_condition, "params": params})  # fmt: skip
    return out


class StrategyKindListApi(APIView):
    @extend_schema(responses=KindOutput(many=True), summary="Strategy kinds: the built-ins and deployed ones")
    def get(self, request):
        return Response(KindOutput(_kinds(), many=True).data)


class StrategyListApi(APIView):
    @extend_schema(responses=StrategyOutput(many=True), summary="Your strategies")
    def get(self, request):
        return Response(StrategyOutput(strategy_list_for_user(user=request.user)[:MAX_LISTED], many=True).data)

    @extend_schema(request=StrategyInput, responses={201: StrategyOutput}, summary="Create a strategy (a draft)")
    def post(self, request):
        _valid(StrategyInput, request.data)
        strategy = strategy_create(user=request.user, data=dict(request.data))
        return Response(StrategyOutput(strategy).data, status=status.HTTP_201_CREATED)


class StrategyDetailApi(APIView):
    @extend_schema(responses=StrategyOutput, summary="One of your strategies")
    def get(self, request, strategy_id: str):
        return Response(StrategyOutput(strategy_get_for_user(user=request.user, strategy_id=strategy_id)).data)

    @extend_schema(
        request=StrategyUpdateInput, responses=StrategyOutput, summary="Change a strategy that is not running"
    )
    def patch(self, request, strategy_id: str):
        strategy = strategy_get_for_user(user=request.user, strategy_id=strategy_id)
        _valid(StrategyUpdateInput, request.data)
        return Response(StrategyOutput(strategy_update(strategy=strategy, data=dict(request.data))).data)


class StrategyStartApi(APIView):
    @extend_schema(request=None, responses=StrategyOutput, summary="Run a strategy live on its paper account")
    def post(self, request, strategy_id: str):
        strategy = strategy_get_for_user(user=request.user, strategy_id=strategy_id)
        return Response(StrategyOutput(strategy_start(strategy=strategy)).data)


class StrategyStopApi(APIView):
    @extend_schema(request=StopInput, responses=StopOutput, summary="Kill switch: stop and cancel its open orders")
    def post(self, request, strategy_id: str):
        strategy = strategy_get_for_user(user=request.user, strategy_id=strategy_id)
        data = _valid(StopInput, request.data if request.data else {})
        stopped, cancelled = strategy_stop(
            strategy_id=strategy.pk, reason=data.get("reason") or "stopped by the user", by="user"
        )
        return Response({"strategy": StrategyOutput(stopped).data, "cancelled_orders": cancelled})


class StrategySignalListApi(APIView):
    @extend_schema(responses=SignalOutput(many=True), summary="The audit trail: signals, their inputs and orders")
    def get(self, request, strategy_id: str):
        strategy = strategy_get_for_user(user=request.user, strategy_id=strategy_id)
        return Response(SignalOutput(signal_list(strategy=strategy)[:MAX_LISTED], many=True).data)


class BacktestListApi(APIView):
    @extend_schema(responses=BacktestOutput(many=True), summary="Your backtests (results included)")
    def get(self, request):
        return Response(BacktestOutput(backtest_list_for_user(user=request.user)[:100], many=True).data)

    @extend_schema(request=BacktestInput, responses={201: BacktestOutput}, summary="Queue a backtest over stored bars")
    def post(self, request):
        _valid(BacktestInput, request.data)
        backtest = backtest_create(user=request.user, data=dict(request.data))
        return Response(BacktestOutput(backtest).data, status=status.HTTP_201_CREATED)


class BacktestDetailApi(APIView):
    @extend_schema(responses=BacktestOutput, summary="One backtest: progress while it runs, then its results")
    def get(self, request, backtest_id: str):
        return Response(BacktestOutput(backtest_get_for_user(user=request.user, backtest_id=backtest_id)).data)


COMPARED = ("final_equity", "pnl", "total_return", "annual_return", "sharpe", "sortino", "max_drawdown", "calmar",
            "trades", "win_rate", "profit_factor", "bars_per_second", "stopped")  # fmt: skip


class ComparisonOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    params = serializers.JSONField()
    status = serializers.CharField()
    figures = serializers.JSONField()


class BacktestCompareApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("ids", str, description="Comma-separated backtest ids (up to 10)")],
        responses=ComparisonOutput(many=True),
        summary="Backtests side by side: their headline figures",
    )
    def get(self, request):
        raw = str(request.query_params.get("ids", ""))[:200]
        ids = [part for part in raw.split(",") if part.strip()][:10]
        rows = []
        for backtest_id in ids:
            backtest = backtest_get_for_user(user=request.user, backtest_id=backtest_id)
            figures = {k: backtest.result.get(k) for k in COMPARED}
            rows.append({"id": backtest.pk, "name": backtest.name, "kind": backtest.kind, "params": backtest.params,
                         "status": backtest.status, "figures": figures})  # fmt: skip
        return Response(ComparisonOutput(rows, many=True).data)
