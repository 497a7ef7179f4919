from django.contrib import admin

from .models import Position


@admin.register(Position)
class PositionAdmin(admin.ModelAdmin):
    """Read-only: positions change only by fills (``position_fills_apply``) and account resets."""

    list_display = (
        "account", "stock", "quantity", "reserved_quantity", "avg_price", "cost_basis", "realized_pnl", "fees_paid",
        "taxes_paid", "updated_at",
    )  # fmt: skip
    list_filter = ("stock__market",)
    search_fields = ("stock__code", "stock__name", "account__user__username")
    list_select_related = ("stock", "account__user")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Position._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
