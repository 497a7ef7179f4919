"""The performance formulas against empyrical-reloaded (the maintained library whose definitions they follow)
and against hand-computed series."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from apps.portfolio import metrics
from apps.portfolio.metrics import Point

D0 = dt.date(2026, 3, 2)


def _points(equities: list[int], flows: dict[int, int] | None = None) -> list[Point]:
    flows = flows or {}
    return [Point(D0 + dt.timedelta(days=n), e, flows.get(n, 0)) for n, e in enumerate(equities)]


@pytest.fixture(scope="module")
def returns() -> list[float]:
    rng = np.random.default_rng(20260303)
    series = rng.normal(0.0006, 0.013, 400)
    series[0] = abs(series[0])  # a first-day gain: empyrical's peak then starts where ours does (see metrics.py)
    return [float(x) for x in series]


@pytest.mark.parametrize("rf_annual", [0.0, 0.035])
def test_figures_match_empyrical(returns, rf_annual):
    empyrical = pytest.importorskip("empyrical", reason="empyrical-reloaded (requirements/dev.txt) is not installed")
    rf = metrics.daily_risk_free(rf_annual, 252)
    r = pd.Series(returns)
    annual = metrics.annual_return(returns)
    mdd = metrics.max_drawdown(_points([1] * len(returns)), returns).depth
    assert annual == pytest.approx(empyrical.annual_return(r), rel=1e-9)
    assert metrics.total_return(returns) == pytest.approx(empyrical.cum_returns_final(r), rel=1e-9)
    assert metrics.annual_volatility(returns) == pytest.approx(empyrical.annual_volatility(r), rel=1e-9)
    assert metrics.sharpe_ratio(returns, rf) == pytest.approx(empyrical.sharpe_ratio(r, risk_free=rf), rel=1e-9)
    assert metrics.sortino_ratio(returns, rf) == pytest.approx(empyrical.sortino_ratio(r, required_return=rf), rel=1e-9)
    assert metrics.downside_risk(returns, rf) == pytest.approx(empyrical.downside_risk(r, required_return=rf), rel=1e-9)
    assert mdd == pytest.approx(empyrical.max_drawdown(r), rel=1e-9)
    assert metrics.calmar_ratio(annual, mdd) == pytest.approx(empyrical.calmar_ratio(r), rel=1e-9)


def test_a_known_curve_by_hand():
    # equity 100 -> 110 -> 99 -> 118.8 -> 95.04 -> 114.048: returns +10 %, -10 %, +20 %, -20 %, +20 %
    points = _points([100_000, 110_000, 99_000, 118_800, 95_040, 114_048], {0: 100_000})
    returns = metrics.daily_returns(points)
    assert returns == pytest.approx([0.0, 0.1, -0.1, 0.2, -0.2, 0.2])
    r = returns[1:]  # from the first close on
    # mean 0.04; deviations .06 -.14 .16 -.24 .16 -> squares sum 0.132; sample variance 0.033
    assert metrics.sharpe_ratio(r) == pytest.approx(0.04 / math.sqrt(0.033) * math.sqrt(252))  # 3.4954...
    assert metrics.sharpe_ratio(r) == pytest.approx(3.49545, abs=1e-5)
    # downside: mean(0, .01, 0, .04, 0) = 0.01 -> 0.1 · √252; Sortino = 0.04 · 252 / (0.1 · √252)
    assert metrics.sortino_ratio(r) == pytest.approx(0.04 * 252 / (0.1 * math.sqrt(252)))
    assert metrics.sortino_ratio(r) == pytest.approx(6.34980, abs=1e-5)
    assert metrics.total_return(r) == pytest.approx(0.14048)
    assert metrics.annual_volatility(r) == pytest.approx(math.sqrt(0.033) * math.sqrt(252))
    # wealth 1.1, .99, 1.188, .9504, 1.14048: the worst fall is 1.188 -> .9504 = -20 %, not yet recovered
    mdd = metrics.max_drawdown(points, returns)
    assert (mdd.depth, mdd.peak, mdd.trough, mdd.recovery) == (
        pytest.approx(-0.2), D0 + dt.timedelta(days=3), D0 + dt.timedelta(days=4), None,
    )  # fmt: skip
    assert metrics.drawdown_series(r) == pytest.approx([0, -0.1, 0, -0.2, 1.14048 / 1.188 - 1])
    assert metrics.calmar_ratio(0.5, mdd.depth) == pytest.approx(2.5)


def test_a_loss_on_the_first_day_is_a_drawdown_and_recovery_is_dated():
    points = _points([90, 99, 100, 101], {0: 100})
    returns = metrics.daily_returns(points)
    mdd = metrics.max_drawdown(points, returns)
    assert (mdd.depth, mdd.peak, mdd.trough, mdd.recovery) == (pytest.approx(-0.1), None, D0, D0 + dt.timedelta(days=2))


def test_flows_are_not_returns():
    # funded with 1,000,000, lost 1 % the first day; 500,000 more the next day and the equity rose 10,000
    points = _points([990_000, 1_500_000], {0: 1_000_000, 1: 500_000})
    assert metrics.daily_returns(points) == pytest.approx([-0.01, 10_000 / 1_490_000])


def test_undefined_ratios_are_none():
    assert metrics.sharpe_ratio([0.01]) is None
    assert metrics.sharpe_ratio([0.01, 0.01]) is None  # no deviation
    assert metrics.sortino_ratio([0.01, 0.02]) is None  # no downside
    assert metrics.calmar_ratio(0.1, 0.0) is None
    assert metrics.annual_return([]) is None


def test_trade_statistics_by_hand():
    stats = metrics.trade_stats([3_000, -1_000, 5_000, -2_000, 0])
    assert (stats.trades, stats.wins, stats.losses) == (5, 2, 2)
    assert stats.win_rate == pytest.approx(0.4)
    assert (stats.avg_win, stats.avg_loss) == (4_000, -1_500)
    assert stats.profit_factor == pytest.approx(8_000 / 3_000)
    assert metrics.trade_stats([]).win_rate is None
