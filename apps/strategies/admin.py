"""Admin for operators: strategies (with the admin kill switch), their signals, and backtests."""

from __future__ import annotations

from django.contrib import admin, messages

from .models import Backtest, Signal, Strategy, StrategyStatus
from .services import strategy_stop


class SignalInline(admin.TabularInline):
    model = Signal
    extra = 0
    can_delete = False
    fields = ("at", "code", "side", "quantity", "inputs", "outcome", "order", "reason")
    readonly_fields = fields
    ordering = ("-at",)
    max_num = 0
    show_change_link = False


@admin.register(Strategy)
class StrategyAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "user", "kind", "status", "stopped_by", "stop_reason", "capital", "started_at")
    list_filter = ("status", "kind", "stopped_by")
    search_fields = ("name", "user__username")
    raw_id_fields = ("user", "account", "condition")
    # Owner, account and status change only through the services (start, the kill switch): an edited owner or
    # account would let a strategy trade someone else's money, an edited status skip the stop's cancels.
    readonly_fields = ("user", "account", "status", "stopped_by", "stop_reason", "state", "last_stream_id",
                       "last_event_id", "last_execution_id", "started_at", "stopped_at")  # fmt: skip
    actions = ["kill_switch"]

    def has_add_permission(self, request) -> bool:
        return False  # created through the API or the pages, with their validation

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the kill switch stops a strategy; its audit trail stays

    @admin.action(description="Kill switch: stop the selected strategies and cancel their open orders")
    def kill_switch(self, request, queryset):
        stopped = cancelled = 0
        for strategy in queryset.exclude(status=StrategyStatus.STOPPED):
            _s, ids = strategy_stop(strategy_id=strategy.pk, reason=f"stopped by {request.user}", by="admin")
            stopped += 1
            cancelled += len(ids)
        self.message_user(request, f"{stopped} stopped, {cancelled} open orders cancelled.", messages.SUCCESS)


@admin.register(Signal)
class SignalAdmin(admin.ModelAdmin):
    list_display = ("id", "strategy", "at", "code", "side", "quantity", "outcome", "order", "reason")
    list_filter = ("outcome", "side")
    search_fields = ("code", "client_order_id", "key")
    raw_id_fields = ("strategy", "order")


@admin.register(Backtest)
class BacktestAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "kind", "start", "end", "timeframe", "status", "progress", "created_at")
    list_filter = ("status", "kind", "timeframe")
    raw_id_fields = ("user", "strategy")
    exclude = ("result",)
