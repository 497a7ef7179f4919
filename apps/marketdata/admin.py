from django.contrib import admin

from .models import BrokerToken, Stock


@admin.register(Stock)
class StockAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "market", "rank", "active", "market_cap", "updated_at")
    list_filter = ("market", "active")
    search_fields = ("code", "name")


@admin.register(BrokerToken)
class BrokerTokenAdmin(admin.ModelAdmin):
    """Read-only: the token itself is never shown (only its lifetime and issuance count)."""

    list_display = ("key_id", "env", "expires_at", "issued_at", "last_issued_at", "issue_count", "updated_at")
    list_filter = ("env",)
    fields = ("app_key_hash", "env", "expires_at", "issued_at", "last_issued_at", "issue_count", "updated_at")
    readonly_fields = fields

    @admin.display(description="key id")
    def key_id(self, obj: BrokerToken) -> str:
        return obj.app_key_hash[:12]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
