from django.contrib import admin

from .models import PaperAccount


@admin.register(PaperAccount)
class PaperAccountAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "name", "cash", "reserved_cash", "initial_cash", "commission_rate", "created_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "name")
    # Money changes only through services; the admin shows it read-only.
    readonly_fields = ("cash", "reserved_cash", "created_at", "updated_at", "reset_at")
