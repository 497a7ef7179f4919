from django.contrib import admin

from .models import Stock


@admin.register(Stock)
class StockAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "market", "rank", "active", "market_cap", "updated_at")
    list_filter = ("market", "active")
    search_fields = ("code", "name")
