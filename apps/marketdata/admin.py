from django.contrib import admin

from .models import (
    BrokerCalendarDay,
    BrokerToken,
    CalendarOverride,
    CollectionRun,
    DailyBar,
    MinuteBar,
    ReferencePrice,
    Stock,
    ValidationRun,
)


@admin.register(Stock)
class StockAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "market", "rank", "active", "in_universe", "halted", "administrative", "warning",
                    "market_cap", "updated_at")  # fmt: skip
    list_filter = ("market", "active", "in_universe", "halted", "administrative", "warning", "security_group")
    search_fields = ("code", "name", "isin")


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


@admin.register(DailyBar)
class DailyBarAdmin(admin.ModelAdmin):
    list_display = ("stock", "date", "source", "open", "high", "low", "close", "volume", "adjusted")
    list_filter = ("source", "adjusted")
    search_fields = ("stock__code", "stock__name")
    date_hierarchy = "date"
    list_select_related = ("stock",)
    raw_id_fields = ("stock",)


@admin.register(MinuteBar)
class MinuteBarAdmin(admin.ModelAdmin):
    list_display = ("stock", "ts", "source", "open", "high", "low", "close", "volume")
    list_filter = ("source",)
    search_fields = ("stock__code",)
    list_select_related = ("stock",)
    raw_id_fields = ("stock",)
    show_full_result_count = False


@admin.register(CollectionRun)
class CollectionRunAdmin(admin.ModelAdmin):
    list_display = ("job", "started_at", "status", "requested", "stored", "failed", "backfilled", "progress_pct")
    list_filter = ("job", "status")
    readonly_fields = [f.name for f in CollectionRun._meta.fields]

    @admin.display(description="progress")
    def progress_pct(self, obj: CollectionRun) -> str:
        return f"{obj.progress * 100:.0f}%"


@admin.register(ValidationRun)
class ValidationRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "source_a",
        "source_b",
        "date_from",
        "date_to",
        "total_compared",
        "agreement_pct",
        "max_diff_pct",
    )
    readonly_fields = [f.name for f in ValidationRun._meta.fields]


@admin.register(CalendarOverride)
class CalendarOverrideAdmin(admin.ModelAdmin):
    list_display = ("date", "closed", "open_time", "close_time", "note")
    ordering = ("-date",)


class _ReadOnly(admin.ModelAdmin):
    """Rows written by the system (the broker's answers, derived prices): shown, never edited here."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(BrokerCalendarDay)
class BrokerCalendarDayAdmin(_ReadOnly):
    """The broker's stored answer per date; to correct a day, add a Calendar override (it wins)."""

    list_display = ("date", "is_open", "business_day", "trading_day", "settlement_day", "weekday_code", "fetched_at")
    list_filter = ("is_open",)
    date_hierarchy = "date"
    ordering = ("-date",)


@admin.register(ReferencePrice)
class ReferencePriceAdmin(_ReadOnly):
    list_display = ("stock", "trading_date", "price", "source", "fetched_at")
    list_filter = ("source",)
    search_fields = ("stock__code", "stock__name")
    list_select_related = ("stock",)
