"""Collection of investor flows and financial statements from the broker into PostgreSQL.

Like the bars (``apps.marketdata.collection``): every run is a ``CollectionRun`` (job ``flows``,
``flow_estimates`` or ``statements``) with what it asked for, stored, failed and backfilled; writes are bulk
upserts, so re-running is harmless; the broker client is passed in (it never touches the ORM; the services do).

Flows: for each stock, the trading days of the last ``backfill_days`` (the calendar's) that have no stored row are
the gap; the broker is asked back to the first of them (FHPTJ04160001 pages by date), so a missed day of any age
inside the window is filled by the next run. FHKST01010900 adds buys and sells for its ~30 days, and the two TRs'
nets are cross-checked (a disagreement is recorded in the run's note and error summary, the by-type TR's value kept).
Where FHPTJ04160001 is refused (an environment that does not offer it), FHKST01010900 alone is stored and the note
says so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, time

from channels.db import database_sync_to_async as sync_to_async  # closes stale connections around each call
from django.utils import timezone

from apps.brokers.base import BrokerBusinessError, BrokerError
from apps.brokers.kis.fundamentals import STATEMENT_TRS, InvestorFlowDay
from apps.core.krx.calendar import KST, KrxCalendar
from apps.marketdata.collection import _run_finish, _run_start
from apps.marketdata.models import CollectionRun

from .models import FinancialStatement, FlowSource
from .selectors import flow_dates_stored
from .services import financial_statements_upsert, investor_estimates_upsert, investor_flows_upsert
from .validation import compare_flows

logger = logging.getLogger(__name__)

FLOWS_BACKFILL_DAYS = 60  # trading days whose gaps every run fills (two FHPTJ04160001 pages of ~30 sessions)


def merge_flows(by_type: Sequence[InvestorFlowDay], investor: Sequence[InvestorFlowDay]) -> list[InvestorFlowDay]:
    """One row per day: FHPTJ04160001's nets, values and subtypes with FHKST01010900's buys and sells; a day only
    FHKST01010900 has is kept as it is (no 기타법인, no subtypes)."""
    extra = {row.date: row for row in investor}
    merged: dict[date, InvestorFlowDay] = {}
    for row in by_type:
        other = extra.get(row.date)
        merged[row.date] = row if other is None else replace(row, buy_qty=other.buy_qty, sell_qty=other.sell_qty)
    for day, row in extra.items():
        merged.setdefault(day, row)
    return [merged[d] for d in sorted(merged)]


async def flows_collect(
    *,
    client,
    trading_date: date,
    calendar: KrxCalendar,
    codes: Sequence[str],
    backfill_days: int = FLOWS_BACKFILL_DAYS,
) -> CollectionRun:
    """Daily investor flows up to ``trading_date`` (after its close), filling every gap in the window."""
    expected = calendar.trading_days_back(trading_date, backfill_days)
    first_day = expected[0]
    run = await sync_to_async(_run_start)(
        "flows",
        window_start=datetime.combine(first_day, time.min, tzinfo=KST),
        window_end=datetime.combine(trading_date, time.max, tzinfo=KST),
    )
    stored_by_code = await sync_to_async(flow_dates_stored)(
        codes=codes, date_from=first_day, date_to=trading_date, source=FlowSource.KIS
    )
    errors: dict[str, str] = {}
    rows: list[InvestorFlowDay] = []
    crosscheck = {"days": 0, "disagreements": 0}
    missing_after: dict[str, int] = {}
    not_offered: dict[str, str] = {}
    for code in codes:
        missing = [d for d in expected if d not in stored_by_code.get(code, set())]
        if not missing:
            continue
        try:
            try:
                by_type = await client.investor_flows_by_type(code, missing[0], trading_date)
            except BrokerBusinessError as exc:  # a TR the environment does not offer (paper: UNCONFIRMED)
                by_type = []
                not_offered.setdefault("FHPTJ04160001", f"{type(exc).__name__}: {exc}"[:200])
            investor = await client.investor_flows(code)
        except BrokerError as exc:
            errors[code] = f"{type(exc).__name__}: {exc}"[:300]
            continue
        check = compare_flows(
            {(code, r.date): r for r in by_type if r.date >= missing[0]},
            {(code, r.date): r for r in investor if r.date >= missing[0]},
        )
        crosscheck["days"] += check.stock_days
        crosscheck["disagreements"] += len(check.disagreements)
        if check.disagreements:
            first = check.disagreements[0]
            errors.setdefault(
                f"{code}:crosscheck",
                f"FHPTJ04160001 vs FHKST01010900 disagree on {len(check.disagreements)} values, first {first.day} "
                f"{first.field}: {first.value_a} vs {first.value_b}",
            )
        wanted = set(missing)
        fresh = [r for r in merge_flows(by_type, investor) if r.date in wanted]
        rows.extend(fresh)
        left = len(wanted - {r.date for r in fresh})
        if left:
            missing_after[code] = left
    stored = await sync_to_async(investor_flows_upsert)(source=FlowSource.KIS, flows=rows)
    backfilled = sum(1 for r in rows if r.date < trading_date)
    failed = sum(1 for key in errors if ":" not in key)
    notes = [f"TR cross-check: {crosscheck['disagreements']} disagreements over {crosscheck['days']} stock-days"]
    if not_offered:
        notes.append(
            f"FHPTJ04160001 refused ({not_offered['FHPTJ04160001']}): FHKST01010900 only (~30 days, no 기타법인, "
            "no institutional subtypes)"
        )
    if missing_after:
        notes.append(
            f"broker had no flows for {sum(missing_after.values())} stock-days of the window "
            f"({len(missing_after)} stocks, e.g. listed later or before the broker's history)"
        )
    return await sync_to_async(_run_finish)(
        run, requested=len(codes), stored=stored, failed=failed, backfilled=backfilled, errors=errors,
        note="; ".join(notes),
    )  # fmt: skip


async def estimates_collect(
    *, client, trading_date: date, codes: Sequence[str], path: str | None = None
) -> CollectionRun:
    """Today's intraday 외국인/기관 estimates (HHPTJ04160200). A broker that does not offer the TR (a refused
    request for every stock: an unknown path, "not offered here") is recorded as such in the note, not as a
    failure of the data: the run is SKIPPED."""
    run = await sync_to_async(_run_start)(
        "flow_estimates",
        window_start=datetime.combine(trading_date, time.min, tzinfo=KST),
        window_end=datetime.combine(trading_date, time.max, tzinfo=KST),
    )
    errors: dict[str, str] = {}
    refused: dict[str, str] = {}
    estimates = []
    for code in codes:
        try:
            estimates.extend(await client.investor_estimates(code, path=path))
        except BrokerBusinessError as exc:
            refused[code] = f"{type(exc).__name__}: {exc}"[:300]
        except BrokerError as exc:
            errors[code] = f"{type(exc).__name__}: {exc}"[:300]
    if codes and len(refused) == len(codes):
        sample = next(iter(refused.values()))
        await sync_to_async(CollectionRun.objects.filter(pk=run.pk).update)(
            finished_at=timezone.now(),
            status=CollectionRun.Status.SKIPPED,
            requested=len(codes),
            progress=1.0,
            note=f"the broker does not offer intraday estimates (HHPTJ04160200): {sample}",
        )
        await sync_to_async(run.refresh_from_db)()
        return run
    errors.update(refused)
    stored = await sync_to_async(investor_estimates_upsert)(
        day=trading_date, source=FlowSource.KIS, estimates=estimates
    )
    return await sync_to_async(_run_finish)(
        run, requested=len(codes), stored=stored, failed=len(errors), backfilled=0, errors=errors,
        note="intraday estimates (가집계), not the day's figures",
    )  # fmt: skip


async def statements_collect(
    *, client, codes: Sequence[str], kinds: Sequence[str] = tuple(STATEMENT_TRS)
) -> CollectionRun:
    """Every statement TR, annual and quarterly, for each stock (12 calls a stock). Every period the broker
    returns is upserted, so a restated period is overwritten and a newly published one added."""
    now = timezone.now()
    run = await sync_to_async(_run_start)("statements", window_start=now, window_end=now)
    errors: dict[str, str] = {}
    stored = 0
    periods_before = await sync_to_async(_statement_count)(codes)
    for code in codes:
        rows = []
        try:
            for kind in kinds:
                for annual in (True, False):
                    rows.extend(await client.financial_statement(code, kind, annual=annual))
        except BrokerError as exc:
            errors[code] = f"{type(exc).__name__}: {exc}"[:300]
            continue
        stored += await sync_to_async(financial_statements_upsert)(source=FlowSource.KIS, rows=rows)
    new_periods = await sync_to_async(_statement_count)(codes) - periods_before
    return await sync_to_async(_run_finish)(
        run, requested=len(codes), stored=stored, failed=len(errors), backfilled=0, errors=errors,
        note=f"{new_periods} statement periods new since the last run",
    )  # fmt: skip


def _statement_count(codes: Sequence[str]) -> int:
    return FinancialStatement.objects.filter(stock__code__in=codes).count()
