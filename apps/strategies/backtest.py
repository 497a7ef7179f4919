"""Backtests: the engine (``engine.Engine``) over stored bars with the paper fill model (``engine.SimBroker``),
analysed with the portfolio analytics (``apps.portfolio.metrics``).

Bars: minute bars of the regular session (continuous minutes and the opening, closing and VI prints, each a bar
of its own phase, in day order); per (stock, minute, phase) the first stored source of ``MINUTE_SOURCES``
(``ws``: built by Hoga from live prints, then the broker's chart). Daily bars: per (stock, day) the first of
``DAILY_SOURCES``; a daily bar's time is its session's open. Read with a server-side cursor in time order, so
memory does not grow with the range.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from django.db import connection

from apps.core.krx.calendar import KST
from apps.marketdata.bars import OFF_HOURS_PHASES, phase_order
from apps.marketdata.models import DailyBar, MinuteBar, Stock
from apps.marketdata.selectors import krx_calendar
from apps.portfolio import metrics as M
from apps.trading.orders.pricing import transaction_tax_rate

from .engine import Engine, RiskLimits, SignalRecord, SimBroker, run_bars
from .interface import Bar
from .registry import strategy_class

MINUTE_SOURCES = ("ws", "kis")
DAILY_SOURCES = ("kis", "fdr", "yahoo")
MAX_STORED_SIGNALS = 2_000
MAX_STORED_FILLS = 2_000
REGULAR_PHASES = ("continuous", "opening_auction", "closing_auction", "vi_auction")
assert not set(REGULAR_PHASES) & OFF_HOURS_PHASES


def _case(column: str, values: tuple[str, ...]) -> str:
    return "CASE " + " ".join(f"WHEN {column} = '{v}' THEN {i}" for i, v in enumerate(values)) + " ELSE 99 END"


def minute_bars(codes: list[str], start: dt.date, end: dt.date) -> Iterator[Bar]:
    """Stored minute bars of ``codes`` from ``start`` to ``end`` (KST days, inclusive), in time order."""
    ids = dict(Stock.objects.filter(code__in=codes).values_list("pk", "code"))
    begin = dt.datetime.combine(start, dt.time(0), tzinfo=KST)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0), tzinfo=KST)
    table = MinuteBar._meta.db_table
    phase_rank = " ".join(f"WHEN phase = '{p}' THEN {phase_order(p)}" for p in REGULAR_PHASES)
    sql = (
        f"SELECT stock_id, ts, open, high, low, close, volume FROM ("
        f" SELECT DISTINCT ON (stock_id, ts, phase) stock_id, ts, phase, open, high, low, close, volume"
        f" FROM {table} WHERE stock_id = ANY(%s) AND ts >= %s AND ts < %s AND phase = ANY(%s)"
        f" AND source = ANY(%s) ORDER BY stock_id, ts, phase, {_case('source', MINUTE_SOURCES)}) b"
        f" ORDER BY ts, CASE {phase_rank} ELSE 99 END, stock_id"
    )
    params = [list(ids), begin, until, list(REGULAR_PHASES), list(MINUTE_SOURCES)]
    yield from _stream(sql, params, ids)


def daily_bars(codes: list[str], start: dt.date, end: dt.date, session_open: Callable[[dt.date], dt.datetime]
               ) -> Iterator[Bar]:  # fmt: skip
    ids = dict(Stock.objects.filter(code__in=codes).values_list("pk", "code"))
    table = DailyBar._meta.db_table
    sql = (
        f"SELECT stock_id, date, open, high, low, close, volume FROM ("
        f" SELECT DISTINCT ON (stock_id, date) stock_id, date, open, high, low, close, volume FROM {table}"
        f" WHERE stock_id = ANY(%s) AND date >= %s AND date <= %s AND source = ANY(%s)"
        f" ORDER BY stock_id, date, {_case('source', DAILY_SOURCES)}) b ORDER BY date, stock_id"
    )
    for bar in _stream(sql, [list(ids), start, end, list(DAILY_SOURCES)], ids):
        day = bar.ts if isinstance(bar.ts, dt.date) and not isinstance(bar.ts, dt.datetime) else bar.ts.date()
        yield Bar(bar.code, session_open(day), bar.open, bar.high, bar.low, bar.close, bar.volume)


def _stream(sql: str, params: list[Any], ids: dict[int, str]) -> Iterator[Bar]:
    """Rows in chunks from a server-side cursor (``WITH HOLD`` in autocommit: the run's progress updates commit
    meanwhile, so its page shows them)."""
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(5_000):
            for stock_id, ts, o, h, low, c, v in rows:
                yield Bar(ids[stock_id], ts, int(o), int(h), int(low), int(c), int(v))


def bar_count(codes: list[str], start: dt.date, end: dt.date, timeframe: str) -> int:
    if timeframe == "1d":
        return DailyBar.objects.filter(stock__code__in=codes, date__gte=start, date__lte=end).values(
            "stock_id", "date").distinct().count()  # fmt: skip
    begin = dt.datetime.combine(start, dt.time(0), tzinfo=KST)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0), tzinfo=KST)
    return (
        MinuteBar.objects.filter(stock__code__in=codes, ts__gte=begin, ts__lt=until, phase__in=REGULAR_PHASES)
        .values("stock_id", "ts", "phase").distinct().count()
    )  # fmt: skip


@functools.lru_cache(maxsize=4096)
def _tax(market: str, day: dt.date) -> Decimal:
    return transaction_tax_rate(market=market, trade_date=day)


def analytics(engine: Engine, capital: int) -> dict[str, Any]:
    """Equity, drawdown, Sharpe and trades of a run (``apps.portfolio.metrics``)."""
    points = engine.equity_points
    if points:
        points = [M.Point(points[0].day, points[0].equity, flow=capital)] + points[1:]
    returns = M.daily_returns(points)
    annual = M.annual_return(returns) if returns else None
    drawdown = M.max_drawdown(points, returns) if returns else M.Drawdown(0.0, None, None, None)
    trades = M.trade_stats(engine.ledger.trades)
    final = engine.equity
    return {
        "final_equity": final,
        "pnl": final - capital,
        "total_return": M.total_return(returns) if returns else 0.0,
        "annual_return": annual,
        "annual_volatility": M.annual_volatility(returns) if returns else None,
        "sharpe": M.sharpe_ratio(returns) if returns else None,
        "sortino": M.sortino_ratio(returns) if returns else None,
        "max_drawdown": drawdown.depth,
        "calmar": M.calmar_ratio(annual, drawdown.depth),
        "trades": trades.trades,
        "win_rate": trades.win_rate,
        "profit_factor": trades.profit_factor,
        "equity": [[p.day.isoformat(), p.equity] for p in points],
        "drawdown": [round(x, 6) for x in M.drawdown_series(returns)],
    }


def backtest_execute(
    *,
    kind: str,
    params: dict[str, Any],
    codes: list[str],
    start: dt.date,
    end: dt.date,
    timeframe: str,
    limits: dict[str, int],
    commission_rate: Decimal,
    progress: Callable[[int], None] | None = None,
    bars: Any = None,
) -> dict[str, Any]:
    """Run one backtest; returns the stored result (analytics, signals, fills, stop reason, bars/s)."""
    cls = strategy_class(kind)
    markets = dict(Stock.objects.filter(code__in=codes).values_list("code", "market"))
    broker = SimBroker(commission_rate=commission_rate, tax_rate=_tax, markets=markets, keep_fills=MAX_STORED_FILLS,
                       day_orders=timeframe != "1d")  # fmt: skip
    signals: list[SignalRecord] = []

    def record(signal: SignalRecord) -> None:  # the first ones are stored; memory stays flat however many
        if len(signals) < MAX_STORED_SIGNALS:
            signals.append(signal)

    engine = Engine(cls(params), broker=broker, limits=RiskLimits(**limits), prefix="bt", record=record)
    if bars is None:
        if timeframe == "1d":
            calendar = krx_calendar()

            def session_open(day: dt.date) -> dt.datetime:
                session = calendar.session(day)
                return session.open if session else dt.datetime.combine(day, dt.time(9), tzinfo=KST)

            bars = daily_bars(codes, start, end, session_open)
        else:
            bars = minute_bars(codes, start, end)
    began = time.perf_counter()
    count = run_bars(engine, broker, bars, progress=progress)
    elapsed = time.perf_counter() - began
    result = analytics(engine, limits["capital"])
    result.update(
        bars=count,
        bars_per_second=round(count / elapsed) if elapsed > 0 else None,
        stopped=engine.stopped,
        signal_count=engine.signals,
        fill_count=broker.fill_count,
        signals=[
            {
                "key": s.key,
                "at": s.at.isoformat(),
                "code": s.code,
                "side": s.side,
                "quantity": s.quantity,
                "inputs": s.inputs,
                "outcome": s.outcome,
                "reason": s.reason,
            }
            for s in signals
        ],  # fmt: skip
        fills=[
            {
                "at": f.at.isoformat(),
                "code": f.code,
                "side": f.side,
                "price": f.price,
                "quantity": f.quantity,
                "commission": f.commission,
                "tax": f.tax,
            }
            for f in broker.fills
        ],  # fmt: skip
    )
    return result
