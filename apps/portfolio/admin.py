from django.contrib import admin

from .models import EquitySnapshot


@admin.register(EquitySnapshot)
class EquitySnapshotAdmin(admin.ModelAdmin):
    list_display = ("account", "date", "equity", "cash", "positions_value", "net_flow", "source")
    list_filter = ("source",)
    date_hierarchy = "date"
