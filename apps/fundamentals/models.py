"""Investor flows and financial statements, one row per stock, day (or period) and source.

Quantities are shares (nets signed: buys - sells), values integer KRW (the broker's 백만원 times
``KIS_INVESTOR_VALUE_UNIT``). Statement figures are kept as the broker sent them (decimal strings, in its unit:
억원 for amounts, percent for ratios) with the period they belong to and when they were first and last fetched.
"""

from django.db import models

from apps.marketdata.models import Stock

INVESTOR_TYPES = ("individual", "foreign", "institution", "other_corp")


class FlowSource(models.TextChoices):
    KIS = "kis", "KIS (FHPTJ04160001 + FHKST01010900)"


class InvestorFlow(models.Model):
    """One trading day's net buying by investor type (개인, 외국인, 기관계, 기타법인) of one stock.

    Nets, values and the institutional subtypes come from FHPTJ04160001, buys and sells of 개인/외국인/기관 from
    FHKST01010900 (which covers the last ~30 days only: older rows have no buys/sells)."""

    stock = models.ForeignKey(Stock, on_delete=models.PROTECT, related_name="investor_flows")
    date = models.DateField()
    source = models.CharField(max_length=12, choices=FlowSource.choices, default=FlowSource.KIS)
    close = models.BigIntegerField(help_text="The day's close (KRW), as the flow TR reported it.")
    individual_net_qty = models.BigIntegerField(null=True, blank=True)
    foreign_net_qty = models.BigIntegerField(null=True, blank=True)
    institution_net_qty = models.BigIntegerField(null=True, blank=True)
    other_corp_net_qty = models.BigIntegerField(null=True, blank=True)
    individual_net_value = models.BigIntegerField(null=True, blank=True, help_text="KRW")
    foreign_net_value = models.BigIntegerField(null=True, blank=True, help_text="KRW")
    institution_net_value = models.BigIntegerField(null=True, blank=True, help_text="KRW")
    other_corp_net_value = models.BigIntegerField(null=True, blank=True, help_text="KRW")
    individual_buy_qty = models.BigIntegerField(null=True, blank=True)
    individual_sell_qty = models.BigIntegerField(null=True, blank=True)
    foreign_buy_qty = models.BigIntegerField(null=True, blank=True)
    foreign_sell_qty = models.BigIntegerField(null=True, blank=True)
    institution_buy_qty = models.BigIntegerField(null=True, blank=True)
    institution_sell_qty = models.BigIntegerField(null=True, blank=True)
    institution_detail = models.JSONField(
        default=dict, blank=True, help_text="Net shares per institutional subtype (scrt, ivtr, pe_fund, bank, ...)."
    )
    fetched_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["stock", "date"]
        constraints = [
            models.UniqueConstraint(fields=["stock", "date", "source"], name="investor_flow_unique_per_source"),
        ]
        indexes = [models.Index(fields=["source", "date"], name="investor_flow_source_date")]

    def __str__(self) -> str:
        return f"{self.stock_id} {self.date} {self.source}"


class InvestorFlowEstimate(models.Model):
    """An intraday estimate (가집계, HHPTJ04160200): the running net buying of 외국인/기관 entered by the broker's
    staff at ``slot`` (1..5 = 09:30, 10:00, 11:20, 13:20, 14:30). Never the day's figures: shown as estimates."""

    stock = models.ForeignKey(Stock, on_delete=models.PROTECT, related_name="investor_flow_estimates")
    date = models.DateField()
    slot = models.PositiveSmallIntegerField(help_text="bsop_hour_gb")
    slot_time = models.TimeField(null=True, blank=True, help_text="KST time of the input, when the slot is known.")
    source = models.CharField(max_length=12, choices=FlowSource.choices, default=FlowSource.KIS)
    foreign_qty = models.BigIntegerField(null=True, blank=True)
    institution_qty = models.BigIntegerField(null=True, blank=True)
    total_qty = models.BigIntegerField(null=True, blank=True)
    fetched_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["stock", "date", "slot"]
        constraints = [
            models.UniqueConstraint(
                fields=["stock", "date", "slot", "source"], name="investor_flow_estimate_unique_per_slot"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stock_id} {self.date} slot {self.slot} (estimate)"


class StatementKind(models.TextChoices):
    BALANCE = "balance", "대차대조표 (FHKST66430100)"
    INCOME = "income", "손익계산서 (FHKST66430200)"
    RATIO = "ratio", "재무비율 (FHKST66430300)"
    PROFIT = "profit", "수익성비율 (FHKST66430400)"
    STABILITY = "stability", "안정성비율 (FHKST66430600)"
    GROWTH = "growth", "성장성비율 (FHKST66430800)"


class PeriodType(models.TextChoices):
    ANNUAL = "annual", "Annual (FID_DIV_CLS_CODE 0)"
    QUARTER = "quarter", "Quarterly (FID_DIV_CLS_CODE 1)"


class FinancialStatement(models.Model):
    """One period of one statement of one stock. ``period`` is the broker's ``stac_yymm`` (the period's last
    month); quarterly income-statement figures are cumulative from the start of the fiscal year (UNCONFIRMED)."""

    stock = models.ForeignKey(Stock, on_delete=models.PROTECT, related_name="financial_statements")
    kind = models.CharField(max_length=10, choices=StatementKind.choices)
    period_type = models.CharField(max_length=8, choices=PeriodType.choices)
    period = models.CharField(max_length=6, help_text="stac_yymm (YYYYMM)")
    period_end = models.DateField()
    source = models.CharField(max_length=12, choices=FlowSource.choices, default=FlowSource.KIS)
    values = models.JSONField(default=dict, help_text="Field -> decimal string, in the broker's unit.")
    first_fetched_at = models.DateTimeField(auto_now_add=True)
    fetched_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["stock", "kind", "period_type", "-period"]
        constraints = [
            models.UniqueConstraint(
                fields=["stock", "kind", "period_type", "period", "source"], name="financial_statement_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(period__regex=r"^[0-9]{4}(0[1-9]|1[0-2])$"), name="statement_period_format"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stock_id} {self.kind} {self.period_type} {self.period}"


class FlowValidationRun(models.Model):
    """A comparison of investor flows between two stored sources, or the record that no second source exists."""

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    date_from = models.DateField()
    date_to = models.DateField()
    sources = models.JSONField(default=list, help_text="The flow sources stored in the window.")
    second_source = models.BooleanField(default=False, help_text="False: nothing to compare against.")
    stock_days_compared = models.PositiveIntegerField(default=0)
    values_compared = models.PositiveIntegerField(default=0)
    agreement_pct = models.FloatField(null=True, blank=True)
    disagreements = models.PositiveIntegerField(default=0)
    max_diff_qty = models.BigIntegerField(null=True, blank=True)
    max_diff_stock = models.CharField(max_length=6, blank=True)
    max_diff_date = models.DateField(null=True, blank=True)
    max_diff_field = models.CharField(max_length=24, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"flows {self.date_from}..{self.date_to} {'compared' if self.second_source else 'no second source'}"
