"""Paper-trading order API: place, list, read and cancel orders; list executions.

One API for every kind of account: an account that a registered executor takes (``executors.executor_for``: a
broker-linked account) has its orders placed there, and the lists merge its orders and executions with the paper
engine's, newest first. Every order and execution says where it was executed (``executed_by``: ``paper_engine``,
``kis_paper`` or ``kis_real``; ``executed_where``: a label with the venue) and carries a ``ref`` (``paper:12``,
``broker:5``) that is unique across them; an executor's order is read at ``orders/<executor>/<id>``."""

from datetime import date
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from apps.core.exceptions import ValidationFailed, parse_id
from apps.core.serializers import SharedFieldsSerializer
from apps.trading.accounts.params import account_from_request

from .exceptions import OrderNotFound
from .executors import (
    PAPER_ENGINE,
    ExternalExecution,
    ExternalOrder,
    executor_account_annotations,
    external_executions_for_user,
    external_orders_for_user,
    external_statuses,
    order_executor,
    paper_engine_where,
)
from .models import BracketLeg, OrderStatus, OrderType, Route, Side, TriggerState, TriggerType, Venue
from .placement import CONDITIONAL_TERMS, order_submit
from .release import order_cancel
from .selectors import execution_list_for_user, order_get_for_user, order_list_for_user


class OrderOutput(SharedFieldsSerializer):
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
    trigger_type = serializers.ChoiceField(
        choices=TriggerType.choices, allow_blank=True, help_text="empty: not a conditional order"
    )
    trigger_price = serializers.IntegerField(
        allow_null=True, help_text="KRW: the print that fires it (a trailing stop's moves with the tape)"
    )
    trigger_state = serializers.ChoiceField(
        choices=TriggerState.choices, allow_blank=True,
        help_text="WAITING (a bracket leg before its entry fills), ARMED, TRIGGERED; empty: not conditional",
    )  # fmt: skip
    trail_amount = serializers.IntegerField(allow_null=True)
    trail_percent = serializers.DecimalField(max_digits=5, decimal_places=2, allow_null=True)
    triggered_at = serializers.DateTimeField(allow_null=True, help_text="Market time of the print that fired it")
    bracket_leg = serializers.ChoiceField(
        choices=BracketLeg.choices, allow_blank=True, help_text="ENTRY, TAKE_PROFIT or STOP_LOSS of a bracket"
    )
    parent = serializers.IntegerField(  # type: ignore[assignment]  # the output field "parent", not Field.parent
        source="parent_id", allow_null=True, help_text="a bracket leg's entry"
    )
    oco_peer = serializers.IntegerField(
        source="oco_peer_id", allow_null=True, help_text="the other leg: the first to fill cancels it"
    )
    route = serializers.ChoiceField(choices=Route.choices, help_text="KRX, NXT, or SOR (best of both, print by print)")
    phase = serializers.CharField(help_text="The phase of its venue when it was accepted (closed: queued)")
    accepted_at = serializers.DateTimeField(allow_null=True, help_text="Market-clock time of acceptance")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)
    ref = serializers.SerializerMethodField(help_text='Unique across executors: "paper:<id>" or "broker:<id>"')
    executed_by = serializers.SerializerMethodField(help_text="paper_engine, kis_paper or kis_real")
    executed_where = serializers.SerializerMethodField(help_text="Where it was executed, with the venue")

    def get_ref(self, obj: Any) -> str:
        return f"paper:{obj.pk}"

    def get_executed_by(self, obj: Any) -> str:
        return PAPER_ENGINE

    def get_executed_where(self, obj: Any) -> str:
        return paper_engine_where(obj.route)


def external_order_data(order: ExternalOrder) -> dict[str, Any]:
    """An executor's order in the shape of :class:`OrderOutput` (plus ``broker_order_no``)."""
    return {
        "id": order.id, "ref": order.ref, "account": order.account_id, "code": order.code, "name": order.name,
        "side": order.side, "order_type": order.order_type, "quantity": order.quantity,
        "limit_price": order.limit_price, "status": order.status, "filled_quantity": order.filled_quantity,
        "avg_fill_price": None if order.avg_fill_price is None else f"{order.avg_fill_price:.4f}",
        "commission_total": None, "tax_total": None, "reserved_cash": 0, "reject_reason": order.reject_reason,
        "client_order_id": order.client_order_id, "trading_date": order.trading_date.isoformat(), "queued": False,
        "route": order.route, "phase": "", "accepted_at": None, "created_at": order.created_at.isoformat(),
        "updated_at": order.updated_at.isoformat(), "closed_at": None, "executed_by": order.executed_by,
        "executed_where": order.executed_where, "broker_order_no": order.broker_order_no,
        "cancelled_quantity": order.extra.get("cancelled_quantity", 0),
        "cancel_pending": order.extra.get("cancel_pending", False),
    }  # fmt: skip


def external_execution_data(e: ExternalExecution) -> dict[str, Any]:
    return {
        "id": e.id, "ref": e.ref, "order": e.order_id, "order_ref": e.order_ref, "account": e.account_id,
        "code": e.code, "side": e.side, "price": e.price, "quantity": e.quantity, "amount": e.price * e.quantity,
        "commission": None, "tax": None, "realized_pnl": None, "executed_at": e.executed_at.isoformat(),
        "venue": e.venue, "phase": "", "source": e.source, "executed_by": e.executed_by,
        "executed_where": e.executed_where,
    }  # fmt: skip


class OrderInput(SharedFieldsSerializer):
    account = serializers.IntegerField(required=False, help_text="default: your first account")
    code = serializers.CharField(max_length=12)
    side = serializers.CharField(help_text="BUY or SELL")
    order_type = serializers.CharField(
        required=False,
        help_text="MARKET or LIMIT (with trigger_type: what it becomes when fired, LIMIT for STOP_LIMIT; "
        "may be left out); PRE_CLOSE_PRICE (KIS 05, KRX 08:30-08:40 at the previous close), "
        "POST_CLOSE_PRICE (06, 15:30-16:00 at today's close), AFTER_HOURS_SINGLE (07, 16:00-18:00, a limit within "
        "±10 % of today's close)",
    )
    quantity = serializers.JSONField(help_text="a positive integer number of shares")
    limit_price = serializers.JSONField(
        required=False, allow_null=True, help_text="KRW, on the tick grid (LIMIT and AFTER_HOURS_SINGLE only)"
    )
    client_order_id = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=False)
    route = serializers.CharField(
        required=False, max_length=8, help_text="KRX (default), NXT (NXT-eligible stocks), or SOR (best of both)"
    )
    confirm = serializers.BooleanField(
        required=False, default=False, help_text="A broker-linked real account: true confirms this order"
    )
    trigger_type = serializers.CharField(
        required=False, allow_blank=True, max_length=16,
        help_text="STOP (market on trigger), STOP_LIMIT (limit_price on trigger), TAKE_PROFIT, TRAILING_STOP",
    )  # fmt: skip
    trigger_price = serializers.JSONField(required=False, allow_null=True, help_text="KRW, on the tick grid")
    trail_amount = serializers.JSONField(required=False, allow_null=True, help_text="TRAILING_STOP: KRW distance")
    trail_percent = serializers.JSONField(
        required=False, allow_null=True, help_text="TRAILING_STOP: percent distance (0-50, two decimals)"
    )
    take_profit_price = serializers.JSONField(
        required=False, allow_null=True, help_text="bracket: the take-profit leg's trigger (a BUY entry only)"
    )
    stop_loss_price = serializers.JSONField(
        required=False, allow_null=True, help_text="bracket: the stop-loss leg's trigger (below take_profit_price)"
    )


class ExecutionOutput(SharedFieldsSerializer):
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
    venue = serializers.ChoiceField(choices=Venue.choices, help_text="Where the print happened: KRX or NXT")
    phase = serializers.CharField(help_text="The phase of the print (a call phase: the call's single price)")
    source = serializers.CharField(  # type: ignore[assignment]  # the output field "source", not Field.source
        help_text='"tick": a live trade print; "poll": a REST price snapshot of a stock without a live slot '
        "(its price, at most the volume traded since the previous snapshot, no order book walked)"
    )
    ref = serializers.SerializerMethodField()
    executed_by = serializers.SerializerMethodField(help_text="paper_engine, kis_paper or kis_real")
    executed_where = serializers.SerializerMethodField(help_text="Where it was executed, with the venue")

    def get_ref(self, obj: Any) -> str:
        return f"paper:{obj.pk}"

    def get_executed_by(self, obj: Any) -> str:
        return PAPER_ENGINE

    def get_executed_where(self, obj: Any) -> str:
        return paper_engine_where(obj.venue)


def _date_param(request: Request) -> date | None:
    raw = request.query_params.get("date")
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed("Invalid date.", code="invalid_date", fields={"date": ["YYYY-MM-DD"]}) from None


MERGED_MAX = 1000  # a merged list holds at most this many of each kind (newest)


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
    def get(self, request: Request) -> Response:
        status_filter = (request.query_params.get("status") or "")[:20] or None
        statuses = [*OrderStatus.values, *external_statuses(), "OPEN"]
        statuses = list(dict.fromkeys(statuses))
        if status_filter and status_filter.upper() not in statuses:
            raise ValidationFailed("Invalid status.", code="invalid_status", fields={"status": [f"one of {statuses}"]})
        account = request.query_params.get("account")
        filters: dict[str, Any] = {
            "status": status_filter if not status_filter or status_filter.upper() in statuses else None,
            "code": (request.query_params.get("code") or "")[:12] or None,
            "date": _date_param(request),
            "account_id": account_from_request(request).pk if account else None,
        }
        orders = order_list_for_user(user=request.user, **filters)
        if filters["status"] and filters["status"].upper() not in [*OrderStatus.values, "OPEN"]:
            orders = orders.none()  # an executor's own status
        external = external_orders_for_user(user=request.user, **filters, limit=MERGED_MAX)
        items: Any = orders
        if external:  # merged newest first; the paper engine's newest MERGED_MAX with the executors'
            merged = [*orders[:MERGED_MAX], *external]
            items = sorted(merged, key=lambda o: (o.created_at, o.id), reverse=True)
        paginator = self.paginator
        page: list[Any] | None = paginator.paginate_queryset(items, request, view=self) if paginator else None
        rows = page if paginator is not None and page is not None else items
        data = [external_order_data(o) if isinstance(o, ExternalOrder) else OrderOutput(o).data for o in rows]
        if paginator is not None and page is not None:
            return paginator.get_paginated_response(data)
        return Response(data)

    @property
    def paginator(self) -> BasePagination | None:
        if not hasattr(self, "_paginator"):
            cls: type[BasePagination] | None = api_settings.DEFAULT_PAGINATION_CLASS  # type: ignore[assignment]
            self._paginator = cls() if cls else None
        return self._paginator

    @extend_schema(
        request=OrderInput,
        responses={201: OrderOutput, 200: OrderOutput},
        summary="Place an order (resubmitting the same client_order_id returns the same order)",
        description="A conditional order takes trigger_type and trigger_price (trail_amount or trail_percent for a "
        "TRAILING_STOP); a bracket is a BUY entry with take_profit_price and stop_loss_price, whose legs appear "
        "as orders of their own (parent: the entry, oco_peer: each other).",
    )
    def post(self, request: Request) -> Response:
        data = OrderInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        account = account_from_request(request, annotations=executor_account_annotations())
        side = str(values["side"]).upper()
        trigger_type = str(values.get("trigger_type") or "").strip().upper() or None
        order_type = str(values.get("order_type") or "").strip().upper()
        if not order_type and trigger_type is not None:
            order_type = OrderType.LIMIT if trigger_type == TriggerType.STOP_LIMIT else OrderType.MARKET
        route = str(values.get("route") or Route.KRX).strip().upper()
        if side not in Side.values or order_type not in OrderType.values or route not in Route.values:
            fields = {}
            if side not in Side.values:
                fields["side"] = [f"one of {Side.values}"]
            if order_type not in OrderType.values:
                fields["order_type"] = [f"one of {OrderType.values}"]
            if route not in Route.values:
                fields["route"] = [f"one of {Route.values}"]
            raise ValidationFailed("Invalid order.", code="invalid_order", fields=fields)
        if values.get("take_profit_price") is not None or values.get("stop_loss_price") is not None:
            if trigger_type is not None:
                raise ValidationFailed(
                    "A bracket's entry is a plain order.", code="invalid_bracket", fields={"trigger_type": ["Empty."]}
                )
        started = timezone.now()
        order = order_submit(
            account=account,
            confirm=values.get("confirm", False),
            user=request.user,
            code=str(values["code"]).strip().upper(),
            side=side,
            order_type=order_type,
            quantity=values["quantity"],
            limit_price=values.get("limit_price"),
            client_order_id=values.get("client_order_id"),
            route=route,
            trigger_type=trigger_type,
            **{name: values.get(name) for name in CONDITIONAL_TERMS if name != "trigger_type"},
        )
        if isinstance(order, ExternalOrder):  # a broker-linked account: the order went to the broker
            return Response(
                external_order_data(order), status=status.HTTP_201_CREATED if order.created else status.HTTP_200_OK
            )
        created = order.created_at >= started  # else: a resubmitted client_order_id returned the earlier order
        return Response(OrderOutput(order).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class OrderDetailApi(APIView):
    @extend_schema(responses=OrderOutput, summary="One of your orders")
    def get(self, request: Request, order_id: int) -> Response:
        return Response(OrderOutput(order_get_for_user(user=request.user, order_id=order_id)).data)

    @extend_schema(request=None, responses=OrderOutput, summary="Cancel an open order (the unfilled remainder)")
    def delete(self, request: Request, order_id: int) -> Response:
        return Response(OrderOutput(order_cancel(order_id=order_id, user=request.user)).data)


class ExternalOrderDetailApi(APIView):
    @extend_schema(
        operation_id="paper_trading_orders_external_detail",
        responses=OrderOutput,
        summary="One of your orders executed at a broker (orders/broker/<id>)",
    )
    def get(self, request: Request, executor: str, order_id: str) -> Response:
        found = order_executor(executor[:20])
        order = found.order(user=request.user, order_id=order_id) if found else None  # type: ignore[arg-type]
        if order is None:
            raise OrderNotFound(f"Order {executor[:20]}:{order_id[:20]} not found.")
        return Response(external_order_data(order))

    @extend_schema(
        operation_id="paper_trading_orders_external_cancel",
        request=None,
        responses=OrderOutput,
        summary="Cancel the open remainder of an order executed at a broker (orders/broker/<id>)",
        description="The broker is asked to cancel what is still open; what filled first stays filled. The answer "
        "is the order after the broker's own inquiry of it was read back: CANCELLED once the broker confirmed "
        "the cancel (else cancel_pending, and its confirm notice finishes it). order_not_found (404): not one of "
        "your orders; invalid_order_id (400): not an order id; order_not_cancellable (409): closed, or not yet "
        "numbered by the broker; cancel_pending (409): a cancel is on its way; broker_refused (409).",
    )
    def delete(self, request: Request, executor: str, order_id: str) -> Response:
        found = order_executor(executor[:20])
        if found is None:
            raise OrderNotFound(f"Order {executor[:20]}:{order_id[:20]} not found.")
        if parse_id(order_id) is None:
            raise ValidationFailed(
                "Not an order id.", code="invalid_order_id", fields={"order_id": ["a positive integer id"]}
            )
        return Response(external_order_data(found.cancel(user=request.user, order_id=order_id)))


class ExecutionListApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("account", int, required=False), OpenApiParameter("code", str, required=False)],
        responses=ExecutionOutput(many=True),
        summary="Your executions (체결), newest first",
    )
    def get(self, request: Request) -> Response:
        account = request.query_params.get("account")
        account_id = account_from_request(request).pk if account else None
        code = (request.query_params.get("code") or "")[:12] or None
        executions = execution_list_for_user(user=request.user, account_id=account_id, code=code)
        external = external_executions_for_user(user=request.user, account_id=account_id, code=code, limit=500)
        if not external:
            return Response(ExecutionOutput(executions[:500], many=True).data)
        merged: list[Any] = [*executions[:500], *external]
        merged = sorted(merged, key=lambda e: (e.executed_at, e.id), reverse=True)[:500]
        return Response(
            [
                external_execution_data(e) if isinstance(e, ExternalExecution) else ExecutionOutput(e).data
                for e in merged
            ]
        )
