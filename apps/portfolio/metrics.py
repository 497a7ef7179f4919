"""Performance figures of a daily equity series, after empyrical's published definitions
(https://github.com/stefan-jansen/empyrical-reloaded, ``empyrical/stats.py``), tested against that library
(tests/portfolio/test_metrics.py) and against hand-computed series. Pure functions, no ORM.

Conventions:
- daily returns are time-weighted, with a day's flow counted at its start:
  ``r_t = (E_t − E_{t−1} − F_t) / (E_{t−1} + F_t)``, so money put in is never a gain;
- ``total = Π(1 + r) − 1``; ``annual = (1 + total) ** (periods / n) − 1`` (empyrical ``annual_return``);
- volatility ``= std(r, ddof=1) · √periods`` (``annual_volatility``);
- Sharpe ``= mean(r − rf) / std(r − rf, ddof=1) · √periods`` (``sharpe_ratio``), rf the daily rate
  ``(1 + R) ** (1 / periods) − 1`` of the annual setting R;
- Sortino ``= mean(r − rf) · periods / downside``, ``downside = √mean(min(r − rf, 0)²) · √periods``
  (``sortino_ratio`` / ``downside_risk`` with ``required_return = rf``);
- drawdown on the wealth index ``W_t = Π(1 + r)`` against its running peak, **including the starting value
  1** (empyrical starts its peak at the first day's value, so a loss on the first day is a drawdown here and
  not there: the only difference); Calmar ``= annual / |max drawdown|``;
- ratios are None when undefined (fewer than two returns, zero deviation, no drawdown).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Point:
    day: date
    equity: int
    flow: int = 0


def daily_returns(points: list[Point]) -> list[float]:
    returns = []
    previous = 0
    for p in points:
        base = previous + p.flow
        returns.append((p.equity - base) / base if base > 0 else 0.0)
        previous = p.equity
    return returns


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _std(xs: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def daily_risk_free(annual_rate: float, periods: int) -> float:
    return (1 + annual_rate) ** (1 / periods) - 1


def total_return(returns: list[float]) -> float:
    wealth = 1.0
    for r in returns:
        wealth *= 1 + r
    return wealth - 1


def annual_return(returns: list[float], periods: int = 252) -> float | None:
    if not returns:
        return None
    ending = 1 + total_return(returns)
    return ending ** (periods / len(returns)) - 1 if ending > 0 else -1.0


def annual_volatility(returns: list[float], periods: int = 252) -> float | None:
    sd = _std(returns)
    return sd * math.sqrt(periods) if sd is not None else None


def sharpe_ratio(returns: list[float], rf: float = 0.0, periods: int = 252) -> float | None:
    adjusted = [r - rf for r in returns]
    sd = _std(adjusted)
    if not sd:
        return None
    return _mean(adjusted) / sd * math.sqrt(periods)


def downside_risk(returns: list[float], required: float = 0.0, periods: int = 252) -> float | None:
    if not returns:
        return None
    return math.sqrt(_mean([min(r - required, 0.0) ** 2 for r in returns])) * math.sqrt(periods)


def sortino_ratio(returns: list[float], required: float = 0.0, periods: int = 252) -> float | None:
    if len(returns) < 2:
        return None
    downside = downside_risk(returns, required, periods)
    if not downside:
        return None
    return _mean([r - required for r in returns]) * periods / downside


def drawdown_series(returns: list[float]) -> list[float]:
    """``W_t / max(1, W_≤t) − 1`` for each day (0 at a new high)."""
    wealth, peak, out = 1.0, 1.0, []
    for r in returns:
        wealth *= 1 + r
        peak = max(peak, wealth)
        out.append(wealth / peak - 1)
    return out


@dataclass(frozen=True)
class Drawdown:
    depth: float  # ≤ 0
    peak: date | None  # the last high before the trough (None: the starting value)
    trough: date | None
    recovery: date | None  # first day back at the peak, None while under water


def max_drawdown(points: list[Point], returns: list[float]) -> Drawdown:
    wealth, peak, peak_day = 1.0, 1.0, None
    worst = Drawdown(0.0, None, None, None)
    worst_peak_wealth = 1.0
    for p, r in zip(points, returns, strict=True):
        wealth *= 1 + r
        if wealth >= peak:
            peak, peak_day = wealth, p.day
        depth = wealth / peak - 1
        if depth < worst.depth:
            worst = Drawdown(depth, peak_day, p.day, None)
            worst_peak_wealth = peak
    if worst.trough is None:
        return worst
    wealth = 1.0
    for p, r in zip(points, returns, strict=True):
        wealth *= 1 + r
        if p.day > worst.trough and wealth >= worst_peak_wealth - 1e-12:
            return Drawdown(worst.depth, worst.peak, worst.trough, p.day)
    return worst


def calmar_ratio(annual: float | None, mdd: float) -> float | None:
    if annual is None or mdd >= 0:
        return None
    return annual / abs(mdd)


@dataclass(frozen=True)
class TradeStats:
    trades: int
    wins: int
    losses: int
    win_rate: float | None
    avg_win: float | None
    avg_loss: float | None  # ≤ 0
    profit_factor: float | None  # Σ wins / |Σ losses|; None without losses


def trade_stats(results: list[int]) -> TradeStats:
    """Closed trades' net results (a sell's realized P&L minus its commission and tax)."""
    wins = [x for x in results if x > 0]
    losses = [x for x in results if x < 0]
    return TradeStats(
        trades=len(results),
        wins=len(wins),
        losses=len(losses),
        win_rate=len(wins) / len(results) if results else None,
        avg_win=sum(wins) / len(wins) if wins else None,
        avg_loss=sum(losses) / len(losses) if losses else None,
        profit_factor=sum(wins) / abs(sum(losses)) if losses else None,
    )
