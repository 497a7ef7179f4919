"""Services of investor flows and financial statements: bulk upserts (idempotent, safe to re-run) and the flow
validation. The broker client is never called here (see ``collection``); rows come in as the client's dataclasses.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date

from django.conf import settings
from django.utils import timezone

from apps.brokers.kis.fundamentals import InvestorEstimate, InvestorFlowDay, StatementRow

from .models import (
    INVESTOR_TYPES,
    FinancialStatement,
    FlowSource,
    FlowValidationRun,
    InvestorFlow,
    InvestorFlowEstimate,
    PeriodType,
)
from .selectors import stock_ids_for
from .validation import compare_flows

logger = logging.getLogger(__name__)

_FLOW_UPDATE_FIELDS = [
    "close",
    *(f"{who}_net_qty" for who in INVESTOR_TYPES),
    *(f"{who}_net_value" for who in INVESTOR_TYPES),
    *(f"{who}_{side}_qty" for who in INVESTOR_TYPES[:3] for side in ("buy", "sell")),
    "institution_detail",
    "fetched_at",
]


def _krw(units: int | None) -> int | None:
    """A value in the broker's unit (백만원, UNCONFIRMED) as integer KRW."""
    return None if units is None else units * int(settings.KIS_INVESTOR_VALUE_UNIT)


def investor_flows_upsert(*, source: str = FlowSource.KIS, flows: Sequence[InvestorFlowDay]) -> int:
    """Insert or update one row per (stock, day, source) in one statement. A figure the row's TR does not carry
    (``None``) is written as NULL. Unknown codes raise ValueError before anything is written."""
    if not flows:
        return 0
    ids = stock_ids_for(codes={f.code for f in flows})
    rows = []
    for f in flows:
        fields = {
            "close": f.close,
            "institution_detail": dict(f.institution_detail_qty),
        }
        for who in INVESTOR_TYPES:
            fields[f"{who}_net_qty"] = f.net_qty.get(who)
            fields[f"{who}_net_value"] = _krw(f.net_value_units.get(who))
        for who in INVESTOR_TYPES[:3]:
            fields[f"{who}_buy_qty"] = f.buy_qty.get(who)
            fields[f"{who}_sell_qty"] = f.sell_qty.get(who)
        rows.append(InvestorFlow(stock_id=ids[f.code], date=f.date, source=source, **fields))
    InvestorFlow.objects.bulk_create(
        rows,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["stock", "date", "source"],
        update_fields=_FLOW_UPDATE_FIELDS,
    )
    return len(rows)


def investor_estimates_upsert(*, day: date, source: str = FlowSource.KIS, estimates: Sequence[InvestorEstimate]) -> int:
    """Insert or update today's intraday estimates, one row per (stock, day, slot, source)."""
    if not estimates:
        return 0
    ids = stock_ids_for(codes={e.code for e in estimates})
    rows = [
        InvestorFlowEstimate(
            stock_id=ids[e.code],
            date=day,
            slot=e.slot,
            slot_time=e.at,
            source=source,
            foreign_qty=e.foreign_qty,
            institution_qty=e.institution_qty,
            total_qty=e.total_qty,
        )
        for e in estimates
    ]
    InvestorFlowEstimate.objects.bulk_create(
        rows,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["stock", "date", "slot", "source"],
        update_fields=["slot_time", "foreign_qty", "institution_qty", "total_qty", "fetched_at"],
    )
    return len(rows)


def period_end(period: str) -> date:
    """The last day of ``YYYYMM``."""
    import calendar  # deferred: only this helper needs it

    year, month = int(period[:4]), int(period[4:])
    return date(year, month, calendar.monthrange(year, month)[1])


def financial_statements_upsert(*, source: str = FlowSource.KIS, rows: Sequence[StatementRow]) -> int:
    """Insert or update one row per (stock, kind, period type, period, source); ``first_fetched_at`` keeps the
    first fetch, ``fetched_at`` the latest (a restated period is overwritten with the broker's new figures)."""
    if not rows:
        return 0
    ids = stock_ids_for(codes={r.code for r in rows})
    objs = [
        FinancialStatement(
            stock_id=ids[r.code],
            kind=r.kind,
            period_type=PeriodType.ANNUAL if r.annual else PeriodType.QUARTER,
            period=r.period,
            period_end=period_end(r.period),
            source=source,
            values={k: str(v) for k, v in r.values.items()},
        )
        for r in rows
    ]
    FinancialStatement.objects.bulk_create(
        objs,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["stock", "kind", "period_type", "period", "source"],
        update_fields=["values", "period_end", "fetched_at"],
    )
    return len(objs)


def flows_validate(*, date_from: date, date_to: date) -> FlowValidationRun:
    """Compare the stored flows of the first two sources present in the window; with one source (or none) the
    run records that there is no second source to compare against, and which sources there are."""
    if date_from > date_to:
        raise ValueError(f"date_from {date_from} is after date_to {date_to}")
    window = InvestorFlow.objects.filter(date__range=(date_from, date_to))
    sources = sorted(set(window.values_list("source", flat=True).distinct()))
    run = FlowValidationRun.objects.create(date_from=date_from, date_to=date_to, sources=sources)
    if len(sources) < 2:
        note = (
            f"no second source of investor flows: only {', '.join(sources) or 'nothing'} is stored for "
            f"{date_from}..{date_to} (KIS is the only flow source Hoga collects; its two flow TRs are "
            "cross-checked at collection, see the collection runs)"
        )
        FlowValidationRun.objects.filter(pk=run.pk).update(finished_at=timezone.now(), note=note)
        run.refresh_from_db()
        logger.info("flow validation: no second source", extra={"sources": ",".join(sources)})
        return run

    def load(source: str) -> dict:
        return {
            (row.stock.code, row.date): row
            for row in window.filter(source=source).select_related("stock").order_by("stock__code", "date")
        }

    source_a, source_b = sources[0], sources[1]
    result = compare_flows(load(source_a), load(source_b))
    diff, code, day, name = result.max_diff
    FlowValidationRun.objects.filter(pk=run.pk).update(
        finished_at=timezone.now(),
        second_source=True,
        stock_days_compared=result.stock_days,
        values_compared=result.values_compared,
        agreement_pct=result.agreement_pct,
        disagreements=len(result.disagreements),
        max_diff_qty=diff if result.disagreements else None,
        max_diff_stock=code,
        max_diff_date=day,
        max_diff_field=name,
        note=f"{source_a} vs {source_b}; only in {source_a}: {result.only_in_a}, "
        f"only in {source_b}: {result.only_in_b}",
    )
    run.refresh_from_db()
    return run
