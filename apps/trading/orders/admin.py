"""Admin for paper orders and executions. Money and state are read-only here: changes go through the
same services as the API (the cancel action calls ``order_cancel``)."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.exceptions import ApplicationError

from .models import Execution, Order, TransactionTaxRate
from .release import order_cancel


class ExecutionInline(admin.TabularInline[Execution, Any]):
    model = Execution
    extra = 0
    can_delete = False
    fields = (
        "executed_at", "venue", "phase", "price", "quantity", "amount", "commission", "tax", "realized_pnl",
        "tick_stream_id",
    )  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin[Order]):
    list_display = (
        "id", "account", "stock", "side", "order_type", "trigger_type", "trigger_price", "trigger_state",
        "bracket_leg", "route", "phase", "quantity", "limit_price", "status", "filled_quantity", "avg_fill_price",
        "trading_date", "executed_where", "created_at",
    )  # fmt: skip
    list_filter = (
        "status", "side", "order_type", "trigger_type", "trigger_state", "bracket_leg", "route", "phase",
        "trading_date", "queued",
    )  # fmt: skip
    search_fields = ("stock__code", "stock__name", "account__user__username", "client_order_id", "=id")
    list_select_related = ("stock", "account__user")
    date_hierarchy = "created_at"
    inlines = [ExecutionInline]
    actions = ["cancel_orders"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Order._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # orders are placed through the API, with its validation

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleting an open order would strand its reserved cash or shares: cancel it instead

    @admin.action(description="Cancel the selected open orders (releases reserved cash and shares)")
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        done, refused = 0, []
        for order_id in queryset.values_list("pk", flat=True):
            try:
                order_cancel(order_id=order_id)
                done += 1
            except ApplicationError as exc:
                refused.append(f"#{order_id}: {exc.message}")
        if done:
            self.message_user(request, f"{done} order(s) cancelled.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not cancelled: " + "; ".join(refused), messages.WARNING)


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin[Execution]):
    list_display = (
        "id", "order", "account", "stock", "side", "venue", "phase", "price", "quantity", "commission", "tax",
        "executed_at", "executed_where",
    )  # fmt: skip
    list_filter = ("side", "venue", "phase", "stock__market")
    search_fields = ("stock__code", "account__user__username", "=order__id", "tick_stream_id")
    list_select_related = ("stock", "account__user", "order")
    date_hierarchy = "executed_at"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Execution._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the trade history is never edited


@admin.register(TransactionTaxRate)
class TransactionTaxRateAdmin(admin.ModelAdmin[TransactionTaxRate]):
    list_display = ("market", "effective_from", "rate", "note")
    list_filter = ("market",)
    ordering = ("market", "-effective_from")
