from django.conf import settings
from django.db import models

from apps.core.krx.phases import CONTINUOUS
from apps.core.models import TimeStampedModel

from .bars import BAR_PHASES


class Market(models.TextChoices):
    KOSPI = "KOSPI", "KOSPI"
    KOSDAQ = "KOSDAQ", "KOSDAQ"
    KONEX = "KONEX", "KONEX"


class MarketWarning(models.TextChoices):
    """시장경고 구분 (KIS master ``mrkt_alrm_cls_code``: 00 none, 01 투자주의, 02 투자경고, 03 투자위험)."""

    NONE = "", "none"
    CAUTION = "caution", "투자주의 (caution)"
    WARNING = "warning", "투자경고 (warning)"
    RISK = "risk", "투자위험 (risk)"


class Stock(TimeStampedModel):
    """A listed stock: every code of the broker's stock master (``active``: listed in the latest master).

    The collection universe (``in_universe``, ranked by market cap in ``rank``) is the configurable subset whose
    bars are collected every minute and day; any other active stock can be viewed and traded, its bars are fetched
    on demand (``apps.marketdata.on_demand``).
    """

    code = models.CharField(max_length=6, unique=True, help_text="6-digit KRX short code, e.g. 005930.")
    name = models.CharField(max_length=100)
    market = models.CharField(max_length=6, choices=Market.choices)
    active = models.BooleanField(default=True, help_text="Listed in the broker's latest stock master.")
    in_universe = models.BooleanField(
        default=True, help_text="In the collection universe (rows the listing refresh adds are not)."
    )
    rank = models.PositiveIntegerField(null=True, blank=True, help_text="Rank by market cap at the last refresh.")
    market_cap = models.BigIntegerField(null=True, blank=True, help_text="KRW, at the last refresh.")
    isin = models.CharField(max_length=12, blank=True, help_text="Standard code (표준코드), e.g. KR7005930003.")
    security_group = models.CharField(max_length=2, blank=True, help_text="증권그룹구분코드: ST 주권, RT 리츠, ...")
    sector = models.CharField(max_length=40, blank=True, help_text="KOSPI200 sector where the master gives one.")
    industry_code = models.CharField(max_length=4, blank=True, help_text="지수업종 대분류 코드 of the master.")
    halted = models.BooleanField(default=False, help_text="거래정지 (trading halt).")
    administrative = models.BooleanField(default=False, help_text="관리종목 (administrative issue).")
    liquidation = models.BooleanField(default=False, help_text="정리매매 (liquidation trading before delisting).")
    warning = models.CharField(max_length=8, choices=MarketWarning.choices, blank=True, default="")
    listing_date = models.DateField(null=True, blank=True, help_text="When the master last listed it.")

    class Meta:
        ordering = ["rank", "code"]
        constraints = [
            models.CheckConstraint(condition=models.Q(code__regex=r"^[0-9A-Z]{6}$"), name="stock_code_format"),
        ]
        indexes = [models.Index(fields=["in_universe", "rank"], name="stock_universe_rank")]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class BarSource(models.TextChoices):
    KIS = "kis", "KIS REST"
    FDR = "fdr", "FinanceDataReader"
    WS = "ws", "Built from live ticks"
    YAHOO = "yahoo", "Yahoo Finance (recorded)"


class DailyBar(models.Model):
    """One trading day of one stock from one source. Prices and values in KRW, volume in shares.

    ``adjusted`` says whether prices are adjusted for corporate actions, so that validation only
    compares like with like.
    """

    stock = models.ForeignKey(Stock, on_delete=models.PROTECT, related_name="daily_bars")
    date = models.DateField()
    open = models.BigIntegerField()
    high = models.BigIntegerField()
    low = models.BigIntegerField()
    close = models.BigIntegerField()
    volume = models.BigIntegerField()
    value = models.BigIntegerField(null=True, blank=True, help_text="Traded value (거래대금), KRW.")
    source = models.CharField(max_length=8, choices=BarSource.choices)
    adjusted = models.BooleanField(default=False)
    fetched_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["stock", "date"]
        constraints = [
            models.UniqueConstraint(fields=["stock", "date", "source"], name="daily_bar_unique_per_source"),
            models.CheckConstraint(
                condition=models.Q(low__lte=models.F("high")) & models.Q(volume__gte=0), name="daily_bar_sane"
            ),
        ]
        indexes = [models.Index(fields=["source", "date"], name="daily_bar_source_date")]

    def __str__(self) -> str:
        return f"{self.stock_id} {self.date} {self.source}"


class MinuteBar(models.Model):
    """One minute of one stock from one source; ``ts`` is the aware start of the minute (stored in UTC).

    ``phase`` (``apps.marketdata.bars``): ``continuous`` for continuous trading; an auction's single print
    (opening, closing, VI) or an off-hours session's trades make bars of their own phase, so one minute can
    hold two bars (09:00: the opening print and the first continuous trades)."""

    stock = models.ForeignKey(Stock, on_delete=models.PROTECT, related_name="minute_bars")
    ts = models.DateTimeField()
    open = models.BigIntegerField()
    high = models.BigIntegerField()
    low = models.BigIntegerField()
    close = models.BigIntegerField()
    volume = models.BigIntegerField()
    source = models.CharField(max_length=8, choices=BarSource.choices)
    phase = models.CharField(
        max_length=20,
        choices=[(p, p.replace("_", " ")) for p in BAR_PHASES],
        default=CONTINUOUS,
        help_text="The phase of the trades in the bar: continuous, an auction's single print, or an off-hours session.",
    )
    fetched_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["stock", "ts"]
        constraints = [
            models.UniqueConstraint(fields=["stock", "ts", "source", "phase"], name="minute_bar_unique_per_phase"),
            models.CheckConstraint(
                condition=models.Q(low__lte=models.F("high")) & models.Q(volume__gte=0), name="minute_bar_sane"
            ),
        ]
        indexes = [models.Index(fields=["stock", "source", "ts"], name="minute_bar_range")]

    def __str__(self) -> str:
        return f"{self.stock_id} {self.ts:%Y-%m-%d %H:%M} {self.source}"


class CollectionRun(models.Model):
    """Every run of a collection job, with what it asked for, stored and failed."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Partial"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    job = models.CharField(max_length=40, db_index=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    requested = models.PositiveIntegerField(default=0)
    stored = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    backfilled = models.PositiveIntegerField(default=0, help_text="Rows filled into gaps left by earlier runs.")
    progress = models.FloatField(default=0.0, help_text="0..1 while running.")
    error_summary = models.JSONField(default=dict, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.job} {self.started_at:%Y-%m-%d %H:%M} {self.status}"

    @property
    def success_rate(self) -> float | None:
        return None if not self.requested else round(100.0 * (self.requested - self.failed) / self.requested, 2)


class ValidationRun(models.Model):
    """A comparison of two sources' daily bars (OHLC within a tolerance; volume reported separately)."""

    source_a = models.CharField(max_length=8, choices=BarSource.choices)
    source_b = models.CharField(max_length=8, choices=BarSource.choices)
    date_from = models.DateField()
    date_to = models.DateField()
    codes = models.JSONField(default=list, blank=True)
    tolerance_pct = models.DecimalField(max_digits=5, decimal_places=3, default=0.5)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    total_compared = models.PositiveIntegerField(default=0, help_text="Stock-days present in both sources.")
    values_compared = models.PositiveIntegerField(default=0, help_text="OHLC values compared (4 per stock-day).")
    agreement_pct = models.FloatField(null=True, blank=True)
    mean_diff_pct = models.FloatField(null=True, blank=True)
    max_diff_pct = models.FloatField(null=True, blank=True)
    max_diff_stock = models.CharField(max_length=6, blank=True)
    max_diff_date = models.DateField(null=True, blank=True)
    max_diff_field = models.CharField(max_length=8, blank=True)
    volume_agreement_pct = models.FloatField(null=True, blank=True)
    volume_max_diff_pct = models.FloatField(null=True, blank=True)
    only_in_a = models.PositiveIntegerField(default=0)
    only_in_b = models.PositiveIntegerField(default=0)
    skipped_adjustment_mismatch = models.PositiveIntegerField(
        default=0, help_text="Stock-days not compared because one side is adjusted and the other is not."
    )
    disagreements = models.PositiveIntegerField(default=0)
    report_path = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.source_a} vs {self.source_b} {self.date_from}..{self.date_to}"


class CalendarOverride(models.Model):
    """An operator-edited correction to the KRX calendar (closures, late opens, shifted closes).

    The top layer (``apps.core.krx.calendar``): a row here wins over the broker's stored answer and the
    package layer (the announced special days, exchange_calendars) for its date.
    """

    date = models.DateField(unique=True)
    closed = models.BooleanField(default=False)
    open_time = models.TimeField(null=True, blank=True, help_text="KST; empty = the usual 09:00.")
    close_time = models.TimeField(null=True, blank=True, help_text="KST; empty = the usual 15:30.")
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {'closed' if self.closed else f'{self.open_time}-{self.close_time}'}"


class BrokerCalendarDay(models.Model):
    """The broker's answer for one date (KIS 국내휴장일조회 CTCA0903R), stored by the daily calendar sync.

    ``is_open`` (``opnd_yn``) decides whether KRX trades that day, over the package layer; an operator
    override still wins. The other flags are kept as the broker sent them.
    """

    date = models.DateField(unique=True)
    is_open = models.BooleanField(help_text="opnd_yn (개장일여부): KRX open, orders accepted.")
    business_day = models.BooleanField(help_text="bzdy_yn (영업일여부).")
    trading_day = models.BooleanField(help_text="tr_day_yn (거래일여부).")
    settlement_day = models.BooleanField(help_text="sttl_day_yn (결제일여부).")
    weekday_code = models.CharField(max_length=2, blank=True, help_text="wday_dvsn_cd: 01 Sunday .. 07 Saturday.")
    source = models.CharField(max_length=8, default="kis")
    fetched_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {'open' if self.is_open else 'closed'} ({self.source})"


class ReferencePrice(models.Model):
    """A day's base price (기준가) that did not come from a stored previous close, and where it came from.

    Used (in this order) when no daily bar of the previous trading day is stored: the broker's own base
    price (KIS inquire-price ``stck_sdpr``) or a live tick's ``price - change``. The ±30 % band is computed
    from it with KRX's rounding exactly as from a close.
    """

    class Source(models.TextChoices):
        BROKER_QUOTE = "broker_quote", "Broker quote (stck_sdpr)"
        LIVE_TICK = "live_tick", "Live tick (price - change)"

    stock = models.ForeignKey(Stock, on_delete=models.PROTECT, related_name="reference_prices")
    trading_date = models.DateField()
    price = models.BigIntegerField()
    source = models.CharField(max_length=12, choices=Source.choices)
    fetched_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-trading_date", "stock"]
        constraints = [
            models.UniqueConstraint(fields=["stock", "trading_date"], name="reference_price_unique_per_day"),
            models.CheckConstraint(condition=models.Q(price__gt=0), name="reference_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.stock_id} {self.trading_date} {self.price} ({self.source})"


class ChartPreference(models.Model):
    """The chart studies a user last chose (names of ``apps.marketdata.studies.STUDIES``), shown on every chart."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chart_preference")
    studies = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user_id}: {', '.join(self.studies)}"


class BrokerEnv(models.TextChoices):
    REAL = "real", "real"
    PAPER = "paper", "paper"


class BrokerToken(TimeStampedModel):
    """The one KIS access token of an app key in one environment, shared by every process.

    The app key itself is never stored: rows are keyed by its sha256. ``token_encrypted`` holds the
    token encrypted with AES-256-GCM under a key derived from SECRET_KEY (see
    ``apps.marketdata.broker_services``). The row doubles as the cross-process issuance lock
    (``SELECT ... FOR UPDATE``). ``last_issued_at`` survives a dropped token so that the
    1-issuance-per-minute rule can be honoured.
    """

    app_key_hash = models.CharField(max_length=64, help_text="sha256 hex of the app key.")
    env = models.CharField(max_length=5, choices=BrokerEnv.choices)
    token_encrypted = models.TextField(blank=True, default="", help_text="AES-GCM ciphertext; empty = none.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="access_token_token_expired.")
    issued_at = models.DateTimeField(null=True, blank=True, help_text="When the current token was requested.")
    last_issued_at = models.DateTimeField(null=True, blank=True, help_text="Last tokenP success for this key.")
    issue_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app_key_hash", "env"], name="broker_token_key_env_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.env} {self.app_key_hash[:12]}"
