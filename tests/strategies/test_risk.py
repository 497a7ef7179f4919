"""Risk limits are enforced by the engine, not the strategy: each one trips, stops the strategy with its reason,
records the signal as ``risk_stop`` and cancels what it still had open (backtest clock here; the live clock in
test_live.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from apps.strategies.engine import PLACED, RISK_STOP, SKIPPED, Engine, RiskLimits, SimBroker, run_bars
from apps.strategies.interface import Bar, Strategy

from .conftest import at


class Script(Strategy):
    """Buys (or sells) what ``plan`` says at each bar index."""

    key = "script"

    def on_bar(self, ctx, bar):
        i = self.state["i"] = self.state.get("i", -1) + 1
        for side, code, qty in self.p["plan"].get(i, []):
            (ctx.buy if side == "BUY" else ctx.sell)(code, quantity=qty, inputs={"i": i})


def _run(plan, prices, *, codes=("A",), **limits):
    records = []
    broker = SimBroker(commission_rate=Decimal("0"), tax_rate=lambda m, d: Decimal("0"), markets={})
    engine = Engine(Script({"plan": plan}), broker=broker, limits=RiskLimits(**{"capital": 10_000_000, **limits}),
                    prefix="t", record=records.append)  # fmt: skip
    bars = []
    for i, price in enumerate(prices):
        for code in codes:
            bars.append(Bar(code, at(9, 1) + dt.timedelta(minutes=i), price, price, price, price, 1_000))
    run_bars(engine, broker, bars)
    return engine, broker, records


def test_within_limits_nothing_trips():
    engine, broker, records = _run({0: [("BUY", "A", 10)], 2: [("SELL", "A", 10)]}, [1000] * 4,
                                   max_order_value=10_000, max_position_value=10_000, max_orders_per_minute=1,
                                   daily_loss_limit=1)  # fmt: skip
    assert engine.stopped == ""
    assert [r.outcome for r in records] == [PLACED, PLACED]
    assert len(broker.fills) == 2


def test_capital():
    engine, broker, records = _run({0: [("BUY", "A", 6)], 1: [("BUY", "A", 6)]}, [1000] * 3, capital=10_000)
    assert engine.stopped.startswith("capital:")
    assert [r.outcome for r in records] == [PLACED, RISK_STOP]
    assert engine.position("A") == 6


def test_max_position_value():
    engine, _broker, records = _run({0: [("BUY", "A", 5)], 1: [("BUY", "A", 5)]}, [1000] * 3,
                                    max_position_value=9_000)  # fmt: skip
    assert engine.stopped.startswith("max_position_value:")
    assert records[-1].outcome == RISK_STOP


def test_max_order_value():
    engine, _broker, records = _run({0: [("BUY", "A", 11)]}, [1000] * 2, max_order_value=10_000)
    assert engine.stopped.startswith("max_order_value:")
    assert [r.outcome for r in records] == [RISK_STOP]
    assert engine.position("A") == 0


def test_max_orders_per_minute_and_the_open_orders_are_cancelled():
    plan = {1: [("BUY", "A", 1), ("BUY", "B", 1), ("BUY", "A", 1)]}  # bar 1: B of the first minute
    engine, broker, records = _run(plan, [1000] * 3, codes=("A", "B"), max_orders_per_minute=2)
    assert engine.stopped.startswith("max_orders_per_minute:")
    assert [r.outcome for r in records] == [PLACED, PLACED, RISK_STOP]
    assert broker.fills == [] and broker.pending == {}  # the two placed were cancelled before any bar filled them
    assert engine.ledger.pending == {}


def test_daily_loss_limit_and_later_signals_are_skipped():
    engine, _broker, records = _run({0: [("BUY", "A", 100)], 4: [("SELL", "A", 100)]},
                                    [1000, 1000, 990, 960, 950], daily_loss_limit=5_000)  # fmt: skip
    assert engine.stopped.startswith("daily_loss_limit:")
    assert "lost 5,000 KRW" in engine.stopped  # 100 shares, 1000 -> 950
    assert [r.outcome for r in records] == [PLACED]  # stopped at 950: the exit is never asked for


def test_a_stopped_engine_skips_signals_of_other_triggers():
    engine, _broker, records = _run({0: [("BUY", "A", 11)]}, [1000], max_order_value=10_000)
    engine.on_bar(Bar("A", at(10, 0), 1000, 1000, 1000, 1000, 1))
    engine.buy("A", quantity=1)
    assert records[-1].outcome == SKIPPED and records[-1].reason.startswith("stopped:")
