"""Read side of portfolio analytics: the daily equity series (stored snapshots, and the same rebuilt from
executions and daily bars for any period), the figures, the benchmark and the export rows.

The account's life starts at its creation (or the first execution, if earlier), or at its last reset (a
reset returns it to ``initial_cash``; executions before it belong to the previous life). Every session of
the KRX calendar in the period is one point; a position is marked at the stock's last stored daily close on
or before that day (at its last fill price when the stock has no bar yet).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings

from apps.core.exceptions import ValidationFailed
from apps.core.krx.calendar import KST, now_kst
from apps.marketdata.models import DailyBar, Stock
from apps.marketdata.selectors import krx_calendar
from apps.trading.accounts.models import PaperAccount
from apps.trading.orders.models import Execution

from . import metrics
from .models import EquitySnapshot

MAX_DAYS = 3660  # ten years of calendar days per request: bounds the work of one rebuild


@dataclass
class DayState:
    day: date
    cash: int
    positions_value: int
    equity: int
    net_flow: int = 0
    bought: int = 0
    sold: int = 0
    fees: int = 0
    taxes: int = 0
    realized_pnl: int = 0
    source: str = "rebuild"
    holdings: dict[str, int] = field(default_factory=dict)


def _kst_date(moment: datetime) -> date:
    return moment.astimezone(KST).date()


def account_life_executions(account: PaperAccount):
    qs = Execution.objects.filter(account=account).select_related("stock").order_by("executed_at", "id")
    if account.reset_at is not None:
        qs = qs.filter(created_at__gt=account.reset_at)
    return qs


def account_life_start(account: PaperAccount) -> date:
    if account.reset_at is not None:
        return _kst_date(account.reset_at)
    start = _kst_date(account.created_at)
    first = account_life_executions(account).values_list("executed_at", flat=True).first()
    return min(start, _kst_date(first)) if first else start


def last_session_day(today: date | None = None) -> date:
    today = today or now_kst().date()
    calendar = krx_calendar()
    return today if calendar.is_trading_day(today) else calendar.previous_trading_day(today)


def _closes(codes: set[str], start: date, end: date) -> dict[str, tuple[list[date], list[int]]]:
    rows = (
        DailyBar.objects.filter(stock__code__in=codes, date__gte=start - timedelta(days=40), date__lte=end)
        .order_by("stock__code", "date")
        .values_list("stock__code", "date", "close")
    )
    out: dict[str, tuple[list[date], list[int]]] = defaultdict(lambda: ([], []))
    for code, day, close in rows:
        out[code][0].append(day)
        out[code][1].append(close)
    return out


def _close_on(closes: dict[str, tuple[list[date], list[int]]], code: str, day: date) -> int | None:
    days, values = closes.get(code, ([], []))
    i = bisect.bisect_right(days, day) - 1
    return values[i] if i >= 0 else None


def equity_rebuild(*, account: PaperAccount, start: date | None = None, end: date | None = None) -> list[DayState]:
    """The account's state at every session close in ``[start, end]`` (default: its whole life up to the last
    session), recomputed from its executions and the stored daily bars (always from the life's start, so a
    later period starts from the right holdings)."""
    life = account_life_start(account)
    end = min(end, last_session_day()) if end else last_session_day()  # no closes in the future
    start = max(start or life, life)
    if end < start:
        return []
    if (end - life).days > MAX_DAYS:
        raise ValidationFailed(f"at most {MAX_DAYS} days per request", code="period_too_long")
    executions = list(account_life_executions(account))
    codes = {e.stock.code for e in executions}
    closes = _closes(codes, life, end)
    sessions = [s.day for s in krx_calendar().sessions_between(life, end)]
    cash = account.initial_cash
    holdings: dict[str, int] = defaultdict(int)
    last_price: dict[str, int] = {}
    states: list[DayState] = []
    i = 0
    for n, day in enumerate(sessions):
        state = DayState(day=day, cash=0, positions_value=0, equity=0, net_flow=account.initial_cash if n == 0 else 0)
        counted_from = life if n == 0 else sessions[n - 1] + timedelta(days=1)
        while i < len(executions) and _kst_date(executions[i].executed_at) <= day:
            e = executions[i]
            i += 1
            if e.side == "BUY":
                cash -= e.amount + e.commission
                holdings[e.stock.code] += e.quantity
            else:
                cash += e.amount - e.commission - e.tax
                holdings[e.stock.code] -= e.quantity
            last_price[e.stock.code] = e.price
            if _kst_date(e.executed_at) < counted_from:
                continue  # before the period: in the holdings, not in the day's totals
            if e.side == "BUY":
                state.bought += e.amount
            else:
                state.sold += e.amount
                state.realized_pnl += e.realized_pnl
                state.taxes += e.tax
            state.fees += e.commission
        value = 0
        for code, qty in holdings.items():
            if qty:
                price = _close_on(closes, code, day) or last_price[code]
                value += qty * price
        state.cash, state.positions_value, state.equity = cash, value, cash + value
        state.holdings = {c: q for c, q in holdings.items() if q}
        states.append(state)
    return [s for s in states if s.day >= start]


def equity_series(*, account: PaperAccount, end: date | None = None) -> list[DayState]:
    """The rebuilt life series with the stored after-close snapshots taking precedence on their days."""
    states = equity_rebuild(account=account, end=end)
    if not states:
        return states
    stored = {
        s.date: s
        for s in EquitySnapshot.objects.filter(
            account=account, date__gte=states[0].day, date__lte=states[-1].day, source="close"
        )
    }
    for state in states:
        snap = stored.get(state.day)
        if snap is not None:
            state.cash, state.positions_value, state.equity = snap.cash, snap.positions_value, snap.equity
            state.source = "close"
    return states


# --- benchmark --------------------------------------------------------------------------------------------


def benchmark_series(*, code: str, days: list[date]) -> list[float | None] | None:
    """The benchmark's closes over ``days`` rebased to 100 at the first day with a close; None when the code
    has no stored bars in the period."""
    if not days:
        return None
    closes = _closes({code}, days[0], days[-1])
    values = [_close_on(closes, code, d) for d in days]
    base = next((v for v in values if v), None)
    if base is None:
        return None
    return [round(v / base * 100, 4) if v else None for v in values]


def benchmark_choices() -> list[dict[str, str]]:
    return [{"code": s.code, "name": s.name} for s in Stock.objects.filter(active=True).order_by("rank", "code")[:200]]


# --- figures ----------------------------------------------------------------------------------------------


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(x, digits)


def account_analytics(
    *, account: PaperAccount, start: date | None = None, end: date | None = None, benchmark: str | None = None
) -> dict[str, Any]:
    """Every figure of the portfolio page and API, JSON-ready."""
    life = equity_series(account=account, end=end)
    all_returns = metrics.daily_returns([metrics.Point(s.day, s.equity, s.net_flow) for s in life])
    keep = [n for n, s in enumerate(life) if start is None or s.day >= start]
    states = [life[n] for n in keep]
    returns = [all_returns[n] for n in keep]
    points = [metrics.Point(s.day, s.equity, s.net_flow) for s in states]
    periods = settings.PORTFOLIO_TRADING_DAYS
    rf = metrics.daily_risk_free(settings.PORTFOLIO_RISK_FREE_RATE, periods)
    annual = metrics.annual_return(returns, periods)
    mdd = metrics.max_drawdown(points, returns)
    executions = account_life_executions(account)
    if states:
        executions = executions.filter(executed_at__date__gte=states[0].day, executed_at__date__lte=states[-1].day)
    results = [e.realized_pnl - e.commission - e.tax for e in executions if e.side == "SELL"]
    trades = metrics.trade_stats(results)
    traded = sum(s.bought + s.sold for s in states)
    avg_equity = sum(s.equity for s in states) / len(states) if states else 0
    code = (benchmark or settings.PORTFOLIO_BENCHMARK_CODE).strip()
    days = [s.day for s in states]
    bench = benchmark_series(code=code, days=days) if code else None
    return {
        "account": account.pk,
        "start": days[0].isoformat() if days else None,
        "end": days[-1].isoformat() if days else None,
        "days": len(days),
        "risk_free_rate": settings.PORTFOLIO_RISK_FREE_RATE,
        "figures": {
            "initial_cash": account.initial_cash,
            "end_equity": states[-1].equity if states else None,
            "total_return": _round(metrics.total_return(returns)) if returns else None,
            "annual_return": _round(annual),
            "volatility": _round(metrics.annual_volatility(returns, periods)),
            "sharpe": _round(metrics.sharpe_ratio(returns, rf, periods)),
            "sortino": _round(metrics.sortino_ratio(returns, rf, periods)),
            "max_drawdown": _round(mdd.depth),
            "max_drawdown_peak": mdd.peak.isoformat() if mdd.peak else None,
            "max_drawdown_trough": mdd.trough.isoformat() if mdd.trough else None,
            "max_drawdown_recovery": mdd.recovery.isoformat() if mdd.recovery else None,
            "calmar": _round(metrics.calmar_ratio(annual, mdd.depth)),
            **{k: (_round(v) if isinstance(v, float) else v) for k, v in asdict(trades).items()},
            "traded_amount": traded,
            "turnover": _round(traded / 2 / avg_equity) if avg_equity else None,
            "fees": sum(s.fees for s in states),
            "taxes": sum(s.taxes for s in states),
        },
        "benchmark": {"code": code, "available": bench is not None},
        "series": [
            {
                "date": s.day.isoformat(),
                "equity": s.equity,
                "cash": s.cash,
                "positions_value": s.positions_value,
                "net_flow": s.net_flow,
                "return": _round(r),
                "drawdown": _round(dd),
                "benchmark": b,
                "source": s.source,
            }
            for s, r, dd, b in zip(
                states, returns, metrics.drawdown_series(returns), bench or [None] * len(states), strict=True
            )
        ],
    }


# --- exports ----------------------------------------------------------------------------------------------


def execution_rows(*, account: PaperAccount, year: int | None = None):
    qs = Execution.objects.filter(account=account).select_related("stock", "order").order_by("executed_at", "id")
    if year is not None:
        qs = qs.filter(executed_at__year=year)
    return qs


def realized_pnl_by_stock(*, account: PaperAccount, year: int) -> list[dict[str, Any]]:
    """One row per stock sold in ``year`` (KST): quantity sold, proceeds, cost removed, gross realized P&L,
    the year's commissions (both sides) and sell taxes, and the net result."""
    rows: dict[str, dict[str, Any]] = {}
    for e in execution_rows(account=account, year=year):
        row = rows.setdefault(
            e.stock.code,
            {"code": e.stock.code, "name": e.stock.name, "sold_quantity": 0, "proceeds": 0, "cost": 0,
             "realized_pnl": 0, "commission": 0, "tax": 0},
        )  # fmt: skip
        row["commission"] += e.commission
        if e.side == "SELL":
            row["sold_quantity"] += e.quantity
            row["proceeds"] += e.amount
            row["cost"] += e.amount - e.realized_pnl
            row["realized_pnl"] += e.realized_pnl
            row["tax"] += e.tax
    out = []
    for row in sorted(rows.values(), key=lambda r: r["code"]):
        row["net_pnl"] = row["realized_pnl"] - row["commission"] - row["tax"]
        out.append(row)
    return out
