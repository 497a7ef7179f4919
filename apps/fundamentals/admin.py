from django.contrib import admin

from .models import FinancialStatement, FlowValidationRun, InvestorFlow, InvestorFlowEstimate


@admin.register(InvestorFlow)
class InvestorFlowAdmin(admin.ModelAdmin):
    list_display = ("stock", "date", "source", "foreign_net_qty", "institution_net_qty", "individual_net_qty",
                    "other_corp_net_qty", "foreign_net_value", "fetched_at")  # fmt: skip
    list_filter = ("source", "date")
    search_fields = ("stock__code", "stock__name")
    date_hierarchy = "date"
    list_select_related = ("stock",)


@admin.register(InvestorFlowEstimate)
class InvestorFlowEstimateAdmin(admin.ModelAdmin):
    list_display = ("stock", "date", "slot", "slot_time", "foreign_qty", "institution_qty", "total_qty", "fetched_at")
    list_filter = ("source", "date")
    search_fields = ("stock__code", "stock__name")
    list_select_related = ("stock",)


@admin.register(FinancialStatement)
class FinancialStatementAdmin(admin.ModelAdmin):
    list_display = ("stock", "kind", "period_type", "period", "period_end", "first_fetched_at", "fetched_at")
    list_filter = ("kind", "period_type", "source")
    search_fields = ("stock__code", "stock__name")
    list_select_related = ("stock",)


@admin.register(FlowValidationRun)
class FlowValidationRunAdmin(admin.ModelAdmin):
    list_display = ("started_at", "date_from", "date_to", "second_source", "stock_days_compared", "agreement_pct",
                    "disagreements", "note")  # fmt: skip
    readonly_fields = [f.name for f in FlowValidationRun._meta.fields]
