from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Position


@admin.register(Position)
class PositionAdmin(admin.ModelAdmin[Position]):
    """Read-only: positions change only by fills (``position_fills_apply``) and account resets."""

    list_display = (
        "account", "stock", "quantity", "reserved_quantity", "avg_price", "cost_basis", "realized_pnl", "fees_paid",
        "taxes_paid", "updated_at",
    )  # fmt: skip
    list_filter = ("stock__market",)
    search_fields = ("stock__code", "stock__name", "account__user__username")
    list_select_related = ("stock", "account__user")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Position._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
