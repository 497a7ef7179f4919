"""The built-in bar rules on hand-made closes (the backtest clock; no database)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from apps.strategies.builtins import Breakout, MovingAverageCross, RelativeStrength
from apps.strategies.engine import PLACED, Engine, RiskLimits, SimBroker, run_bars
from apps.strategies.interface import Bar, InvalidParams, validate_params

from .conftest import at


def _run(cls, params, closes, highs=None, lows=None):
    records = []
    broker = SimBroker(commission_rate=Decimal("0"), tax_rate=lambda m, d: Decimal("0"), markets={})
    engine = Engine(cls(validate_params(cls, params)), broker=broker, limits=RiskLimits(capital=10**9),
                    prefix="t", record=records.append)  # fmt: skip
    bars = [
        Bar("A", at(9, 1) + dt.timedelta(minutes=i), c, (highs or closes)[i], (lows or closes)[i], c, 1_000)
        for i, c in enumerate(closes)
    ]
    run_bars(engine, broker, bars)
    return [(r.side, r.at.minute - 1, r.outcome) for r in records], engine


def test_breakout_buys_a_new_high_and_sells_a_new_low():
    closes = [100, 101, 102, 101, 100, 103, 104, 102, 99, 98]
    signals, engine = _run(Breakout, {"window": 3, "exit_window": 2, "quantity": 1}, closes)
    assert signals == [("BUY", 5, PLACED), ("SELL", 7, PLACED)]  # 102 < the lowest low of 103, 104
    assert engine.position("A") == 0


def test_rsi_buys_oversold_and_sells_overbought():
    closes = [100, 99, 98, 97, 96, 97, 99, 101, 103, 105]
    signals, _engine = _run(RelativeStrength, {"period": 3, "oversold": 30, "overbought": 70, "quantity": 1}, closes)
    assert signals[0] == ("BUY", 3, PLACED)  # RSI 0 after three falls
    assert signals[1][0] == "SELL" and signals[1][2] == PLACED


def test_ma_cross_by_amount_sizes_from_the_close():
    closes = [100, 99, 98, 97, 99, 101, 103]
    _signals, engine = _run(MovingAverageCross, {"fast": 1, "slow": 3, "quantity": 0, "amount": 1_000}, closes)
    assert engine.position("A") == 1_000 // 99


@pytest.mark.parametrize("params", [{"fast": 1.5}, {"fast": True}, {"slow": "1e9"}, {"fast": float("nan")}])
def test_parameters_are_validated(params):
    with pytest.raises(InvalidParams):
        validate_params(MovingAverageCross, params)
    with pytest.raises(InvalidParams):
        validate_params(RelativeStrength, {"oversold": "nan"})
