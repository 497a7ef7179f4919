"""Read side of investor flows and financial statements (API, pages, collection)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation

from django.db.models import Max

from apps.marketdata.models import DailyBar, Stock

from .models import (
    INVESTOR_TYPES,
    FinancialStatement,
    FlowSource,
    FlowValidationRun,
    InvestorFlow,
    InvestorFlowEstimate,
    PeriodType,
)


def stock_ids_for(*, codes: Iterable[str]) -> dict[str, int]:
    """Stock id per code; ValueError naming every unknown code."""
    codes = set(codes)
    ids = dict(Stock.objects.filter(code__in=codes).values_list("code", "id"))
    missing = sorted(codes - set(ids))
    if missing:
        raise ValueError(f"unknown stock codes: {', '.join(missing)}")
    return ids


def flow_dates_stored(*, codes: Sequence[str], date_from: date, date_to: date, source: str) -> dict[str, set[date]]:
    stored: dict[str, set[date]] = {}
    rows = InvestorFlow.objects.filter(
        stock__code__in=codes, source=source, date__range=(date_from, date_to)
    ).values_list("stock__code", "date")
    for code, day in rows:
        stored.setdefault(code, set()).add(day)
    return stored


FLOW_FIELDS = (
    "date",
    "close",
    *(f"{who}_net_qty" for who in INVESTOR_TYPES),
    *(f"{who}_net_value" for who in INVESTOR_TYPES),
    *(f"{who}_{side}_qty" for who in INVESTOR_TYPES[:3] for side in ("buy", "sell")),
    "institution_detail",
    "fetched_at",
)


def investor_flows_for(*, code: str, date_from: date, date_to: date, source: str = FlowSource.KIS) -> list[dict]:
    """Stored daily flows of one stock, oldest first."""
    return list(
        InvestorFlow.objects.filter(stock__code=code, source=source, date__range=(date_from, date_to))
        .order_by("date")
        .values(*FLOW_FIELDS)
    )


def newest_flow_day(*, code: str, source: str = FlowSource.KIS) -> date | None:
    return (
        InvestorFlow.objects.filter(stock__code=code, source=source).order_by("-date").values_list("date", flat=True)
    ).first()


def investor_flows_latest(*, code: str, days: int, source: str = FlowSource.KIS) -> list[dict]:
    """The newest ``days`` stored daily flows of one stock, oldest first (whatever the calendar date: with the
    sandbox the market's today is its replay date)."""
    rows = list(
        InvestorFlow.objects.filter(stock__code=code, source=source).order_by("-date").values(*FLOW_FIELDS)[:days]
    )
    return rows[::-1]


def investor_estimates_for(*, code: str, day: date, source: str = FlowSource.KIS) -> list[dict]:
    return list(
        InvestorFlowEstimate.objects.filter(stock__code=code, date=day, source=source)
        .order_by("slot")
        .values("slot", "slot_time", "foreign_qty", "institution_qty", "total_qty", "fetched_at")
    )


def investor_estimates_latest(
    *, code: str, source: str = FlowSource.KIS, after: date | None = None
) -> tuple[date | None, list[dict]]:
    """The newest day with intraday estimates (only when it is newer than ``after``, the newest day with final
    flows: once the day's figures are in, its estimates are history) and its rows."""
    qs = InvestorFlowEstimate.objects.filter(stock__code=code, source=source)
    if after is not None:
        qs = qs.filter(date__gt=after)
    day = qs.order_by("-date").values_list("date", flat=True).first()
    if day is None:
        return None, []
    return day, investor_estimates_for(code=code, day=day, source=source)


def flows_with_cumulative(rows: list[dict]) -> list[dict]:
    """``rows`` (oldest first) each with ``<type>_cum_qty``: the running sum of the type's net from the first row."""
    running = dict.fromkeys(INVESTOR_TYPES, 0)
    out = []
    for row in rows:
        extra = {}
        for who in INVESTOR_TYPES:
            running[who] += row.get(f"{who}_net_qty") or 0
            extra[f"{who}_cum_qty"] = running[who]
        out.append({**row, **extra})
    return out


TOP_SIDES = {"foreign": "foreign_net_value", "institution": "institution_net_value"}


def investor_flows_top(*, day: date | None = None, who: str, limit: int = 10, source: str = FlowSource.KIS) -> dict:
    """The stocks ``who`` (foreign or institution) bought most, net in KRW, on ``day`` (default: the newest day
    stored), with the day they belong to; net sellers are not listed."""
    field = TOP_SIDES[who]
    qs = InvestorFlow.objects.filter(source=source, stock__active=True)
    if day is None:
        day = qs.aggregate(last=Max("date"))["last"]
    if day is None:
        return {"date": None, "rows": []}
    rows = list(
        qs.filter(date=day, **{f"{field}__gt": 0})
        .order_by(f"-{field}", "stock__code")
        .values("stock__code", "stock__name", "close", field, f"{who}_net_qty")[:limit]
    )
    return {
        "date": day,
        "rows": [
            {
                "code": r["stock__code"],
                "name": r["stock__name"],
                "close": r["close"],
                "net_value": r[field],
                "net_qty": r[f"{who}_net_qty"],
            }
            for r in rows
        ],
    }


def statements_for(
    *, code: str, kind: str | None = None, period_type: str | None = None, source: str = FlowSource.KIS
) -> list[FinancialStatement]:
    qs = FinancialStatement.objects.filter(stock__code=code, source=source)
    if kind:
        qs = qs.filter(kind=kind)
    if period_type:
        qs = qs.filter(period_type=period_type)
    return list(qs.order_by("kind", "period_type", "-period"))


def statement_last_fetched(*, codes: Sequence[str], source: str = FlowSource.KIS) -> dict[str, object]:
    return dict(
        FinancialStatement.objects.filter(stock__code__in=codes, source=source)
        .values("stock__code")
        .annotate(last=Max("fetched_at"))
        .values_list("stock__code", "last")
    )


def _dec(values: dict, key: str) -> Decimal | None:
    try:
        raw = values.get(key)
        return None if raw in (None, "") else Decimal(str(raw))
    except InvalidOperation:
        return None


def fundamentals_summary(*, code: str, source: str = FlowSource.KIS) -> dict | None:
    """The stock page's compact panel: the latest revenue, operating profit and net income (with their period;
    quarterly figures are year-to-date as the broker reports them), ROE and debt ratio (latest period), and
    PER/PBR from the latest stored close: PER over the trailing-twelve-month EPS (the last annual EPS plus this
    year's cumulative EPS minus the same period a year earlier), PBR over the latest BPS. None without data."""
    rows = statements_for(code=code, source=source)
    if not rows:
        return None
    latest: dict[tuple[str, str], FinancialStatement] = {}
    by_period: dict[tuple[str, str, str], FinancialStatement] = {}
    for row in rows:  # ordered -period within kind/period_type
        latest.setdefault((row.kind, row.period_type), row)
        by_period[(row.kind, row.period_type, row.period)] = row

    def pick(kind: str) -> FinancialStatement | None:
        q, a = latest.get((kind, PeriodType.QUARTER)), latest.get((kind, PeriodType.ANNUAL))
        if q is None or (a is not None and a.period >= q.period):
            return a
        return q

    def figure(kind: str, key: str) -> dict | None:
        row = pick(kind)
        value = _dec(row.values, key) if row else None
        if row is None or value is None:
            return None
        return {"value": value, "period": row.period, "period_type": row.period_type, "fetched_at": row.fetched_at}

    summary = {
        "revenue": figure("income", "sale_account"),
        "operating_income": figure("income", "bsop_prti"),
        "net_income": figure("income", "thtr_ntin"),
        "roe": figure("ratio", "roe_val"),
        "debt_ratio": figure("ratio", "lblt_rate"),
        "per": None,
        "pbr": None,
        "close": None,
    }
    bar = DailyBar.objects.filter(stock__code=code).order_by("-date", "source").values("date", "close").first()
    if bar is None:
        return summary
    summary["close"] = {"value": bar["close"], "date": bar["date"]}
    ratio_q = latest.get(("ratio", PeriodType.QUARTER))
    ratio_a = latest.get(("ratio", PeriodType.ANNUAL))
    eps, eps_basis = None, ""
    if ratio_q is not None and ratio_a is not None:
        year, month = int(ratio_q.period[:4]), ratio_q.period[4:]
        if ratio_q.period[4:] == "12" or ratio_a.period >= ratio_q.period:
            eps, eps_basis = _dec(ratio_a.values, "eps"), f"{ratio_a.period} annual"
        else:
            prev_annual = by_period.get(("ratio", PeriodType.ANNUAL, f"{year - 1}12"))
            prev_same = by_period.get(("ratio", PeriodType.QUARTER, f"{year - 1}{month}"))
            parts = [_dec(ratio_q.values, "eps")]
            if prev_annual is not None and prev_same is not None:
                parts += [_dec(prev_annual.values, "eps"), _dec(prev_same.values, "eps")]
            if len(parts) == 3 and all(p is not None for p in parts):
                eps = parts[0] + parts[1] - parts[2]  # type: ignore[operator]
                eps_basis = f"TTM to {ratio_q.period}"
            else:
                eps, eps_basis = _dec(ratio_a.values, "eps"), f"{ratio_a.period} annual"
    elif ratio_a is not None:
        eps, eps_basis = _dec(ratio_a.values, "eps"), f"{ratio_a.period} annual"
    if eps is not None and eps > 0:
        summary["per"] = {"value": (Decimal(bar["close"]) / eps).quantize(Decimal("0.01")), "period": eps_basis}
    bps_row = pick("ratio")
    bps = _dec(bps_row.values, "bps") if bps_row else None
    if bps_row is not None and bps is not None and bps > 0:
        summary["pbr"] = {"value": (Decimal(bar["close"]) / bps).quantize(Decimal("0.01")), "period": bps_row.period}
    return summary


def flow_validation_latest() -> FlowValidationRun | None:
    return FlowValidationRun.objects.filter(finished_at__isnull=False).order_by("-started_at", "-id").first()
