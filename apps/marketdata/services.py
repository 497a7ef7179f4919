"""Market-data services (business rules and transactions around the marketdata models)."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import ValidationFailed
from apps.core.krx.calendar import KST

from .bars import phase_by_time, print_bar_phase
from .models import BarSource, ChartPreference, DailyBar, MinuteBar, Stock, ValidationRun
from .selectors import krx_calendar, stocks_cache_clear
from .studies import STUDIES
from .universe import ListedStock
from .validation import PRICE_FIELDS, compare_daily

logger = logging.getLogger(__name__)


@transaction.atomic
def universe_refresh(*, listed: Sequence[ListedStock]) -> dict[str, int]:
    """Make ``listed`` the collection universe: upsert each stock with its rank, drop the rest from the universe.

    Stocks are never deleted (orders and bars refer to them); dropped ones leave the universe (``in_universe``
    false, no rank) but stay listed and tradable while the broker's master lists them (``listing_refresh``).
    """
    if not listed:
        raise ValueError("refusing to replace the universe with an empty list")
    codes = [s.code for s in listed]
    existing = set(Stock.objects.filter(code__in=codes).values_list("code", flat=True))
    for item in listed:
        Stock.objects.update_or_create(
            code=item.code,
            defaults={
                "name": item.name,
                "market": item.market,
                "rank": item.rank,
                "market_cap": item.market_cap,
                "in_universe": True,
                "active": True,  # the universe file is a listing of the day: its stocks are listed
            },
        )
    dropped = Stock.objects.filter(in_universe=True).exclude(code__in=codes).update(in_universe=False, rank=None)
    stocks_cache_clear()  # a queryset update sends no post_save
    result = {"created": len(codes) - len(existing), "updated": len(existing), "dropped": dropped}
    logger.info("universe refreshed", extra={f"stocks_{key}": value for key, value in result.items()})
    return result


@transaction.atomic
def chart_studies_set(*, user, studies: Sequence[str]) -> list[str]:
    """Remember the studies the user's charts show (names of ``studies.STUDIES``, in the catalogue's order); a
    coded error naming any unknown one (nothing is changed then)."""
    unknown = [s for s in studies if s not in STUDIES]
    if unknown:
        raise ValidationFailed(
            "Unknown studies.", code="invalid_studies", fields={"studies": [f"unknown: {', '.join(unknown)[:100]}"]}
        )
    chosen = [s for s in STUDIES if s in set(studies)]
    ChartPreference.objects.update_or_create(user=user, defaults={"studies": chosen})
    return chosen


# --- Bars ---------------------------------------------------------------------------------------


def _stock_ids(bars: Sequence) -> dict[str, int]:
    """Stock id per code of ``bars``; ValueError naming every unknown code (nothing is written then)."""
    codes = {b.code for b in bars}
    stock_ids = dict(Stock.objects.filter(code__in=codes).values_list("code", "id"))
    missing = sorted(codes - set(stock_ids))
    if missing:
        raise ValueError(f"unknown stock codes: {', '.join(missing)}")
    return stock_ids


def daily_bars_upsert(*, source: str, bars: Sequence) -> int:
    """Insert or update daily bars for ``source`` in one statement (idempotent; safe to re-run).

    ``bars`` carry ``code, date, open, high, low, close, volume`` (and optionally ``value``, ``adjusted``).
    Unknown codes raise ValueError before anything is written.
    """
    if not bars:
        return 0
    stock_ids = _stock_ids(bars)
    rows = [
        DailyBar(
            stock_id=stock_ids[b.code],
            date=b.date,
            open=b.open,
            high=b.high,
            low=b.low,
            close=b.close,
            volume=b.volume,
            value=getattr(b, "value", getattr(b, "trade_value", None)),
            adjusted=getattr(b, "adjusted", False),
            source=source,
        )
        for b in bars
    ]
    DailyBar.objects.bulk_create(
        rows,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["stock", "date", "source"],
        update_fields=["open", "high", "low", "close", "volume", "value", "adjusted", "fetched_at"],
    )
    return len(rows)


def minute_bars_upsert(*, source: str, bars: Sequence) -> int:
    """Insert or update minute bars (``code, ts, open, high, low, close, volume`` and optionally ``phase``) in
    bulk; idempotent per (stock, minute, source, phase). A bar without a phase gets the one its minute falls in on
    the calendar's session (``apps.marketdata.bars.phase_by_time``: the closing print, the off-hours sessions)."""
    if not bars:
        return 0
    stock_ids = _stock_ids(bars)
    calendar = None
    sessions: dict = {}

    def phase_of(bar) -> str:
        """The bar's own phase, else the one its minute falls in (``bars.phase_by_time``)."""
        nonlocal calendar
        given = getattr(bar, "phase", None)
        if given:
            return print_bar_phase(given)
        day = bar.ts.astimezone(KST).date()
        if day not in sessions:
            calendar = calendar or krx_calendar()
            sessions[day] = calendar.session(day)
        return phase_by_time(bar.ts, sessions[day])

    rows = [
        MinuteBar(
            stock_id=stock_ids[b.code],
            ts=b.ts,
            open=b.open,
            high=b.high,
            low=b.low,
            close=b.close,
            volume=b.volume,
            source=source,
            phase=phase_of(b),
        )
        for b in bars
    ]
    MinuteBar.objects.bulk_create(
        rows,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["stock", "ts", "source", "phase"],
        update_fields=["open", "high", "low", "close", "volume", "fetched_at"],
    )
    return len(rows)


# --- Validation ---------------------------------------------------------------------------------


def validation_run_execute(
    *,
    source_a: str,
    source_b: str,
    date_from: date,
    date_to: date,
    codes: Sequence[str] | None = None,
    tolerance_pct: float = 0.5,
) -> ValidationRun:
    """Compare two sources' stored daily bars, write the CSV report and record a ValidationRun."""
    valid_sources = set(BarSource.values)
    for name in (source_a, source_b):
        if name not in valid_sources:
            raise ValueError(f"unknown source {name!r}; choose from {sorted(valid_sources)}")
    if source_a == source_b:
        raise ValueError("compare two different sources")
    if date_from > date_to:
        raise ValueError(f"--from {date_from} is after --to {date_to}")
    if not 0 < tolerance_pct < 100:
        raise ValueError("tolerance must be between 0 and 100 percent")
    codes = sorted(set(codes or []))
    if codes:
        unknown = sorted(set(codes) - set(Stock.objects.filter(code__in=codes).values_list("code", flat=True)))
        if unknown:
            raise ValueError(f"unknown stock codes: {', '.join(unknown)}")

    def load(source: str) -> dict[str, list]:
        qs = DailyBar.objects.filter(source=source, date__range=(date_from, date_to)).select_related("stock")
        if codes:
            qs = qs.filter(stock__code__in=codes)
        grouped: dict[str, list] = {}
        for bar in qs.order_by("stock__code", "date"):
            grouped.setdefault(bar.stock.code, []).append(bar)
        return grouped

    bars_a, bars_b = load(source_a), load(source_b)
    # Compare the stocks both sources carry, over the span of dates both cover for that stock; a day
    # inside that span that only one source has is reported as missing in the other.
    shared_a, shared_b = {}, {}
    for code in sorted(set(bars_a) & set(bars_b)):
        first = max(bars_a[code][0].date, bars_b[code][0].date)
        last = min(bars_a[code][-1].date, bars_b[code][-1].date)
        shared_a[code] = [b for b in bars_a[code] if first <= b.date <= last]
        shared_b[code] = [b for b in bars_b[code] if first <= b.date <= last]
    result = compare_daily(shared_a, shared_b, tolerance_pct=tolerance_pct)

    run = ValidationRun.objects.create(
        source_a=source_a,
        source_b=source_b,
        date_from=date_from,
        date_to=date_to,
        codes=codes,
        tolerance_pct=tolerance_pct,
    )
    report_dir = Path(settings.REPORTS_DIR)
    report_dir.mkdir(parents=True, exist_ok=True)
    report_path = report_dir / f"validation_{run.pk}_{source_a}_vs_{source_b}_{date_from}_{date_to}.csv"
    with report_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["stock", "date", "field", f"value_{source_a}", f"value_{source_b}", "diff_pct"])
        for d in result.disagreements:
            writer.writerow([d.code, d.day.isoformat(), d.field, d.value_a, d.value_b, d.diff_pct])
    max_diff, max_code, max_day, max_field = result.max_diff
    ValidationRun.objects.filter(pk=run.pk).update(
        finished_at=timezone.now(),
        total_compared=result.total_compared,
        values_compared=result.values_compared,
        agreement_pct=result.agreement_pct,
        mean_diff_pct=result.mean_diff_pct,
        max_diff_pct=round(max_diff, 4) if result.values_compared else None,
        max_diff_stock=max_code,
        max_diff_date=max_day,
        max_diff_field=max_field,
        volume_agreement_pct=result.volume_agreement_pct,
        volume_max_diff_pct=round(result.volume_max_diff_pct, 4) if result.volume_compared else None,
        only_in_a=result.only_in_a,
        only_in_b=result.only_in_b,
        skipped_adjustment_mismatch=result.skipped_adjustment,
        disagreements=sum(1 for d in result.disagreements if d.field in PRICE_FIELDS),
        report_path=str(report_path),
    )
    run.refresh_from_db()
    logger.info(
        "validation finished",
        extra={
            "validation_run": run.pk,
            "sources": f"{source_a}/{source_b}",
            "compared": run.total_compared,
            "agreement_pct": run.agreement_pct,
            "report": str(report_path),
        },
    )
    return run
