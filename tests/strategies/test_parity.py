"""One engine, two clocks: a moving-average cross run live on prints through the tick stream, the strategy host
and the fill engine, then backtested on the minute bars Hoga stored from the same prints (the live bar builder,
``source="ws"``). Same signals at the same bar times, same orders; fills differ only as the fill model says (live:
the first print after the order reached the paper exchange, a price within the next bar's range; backtest: that
bar's open)."""

from __future__ import annotations

import pytest

from apps.strategies.backtest import backtest_execute
from apps.strategies.models import Signal
from apps.trading.orders.models import Execution, Order

from .conftest import CLOSES, DAY, at, minute_prints

pytestmark = pytest.mark.django_db


def _store_bars(prints):
    from apps.live.feed.bars import BarBuilder, store_bars
    from apps.strategies.interface import TickEvent

    builder = BarBuilder()
    for code, price, volume, when in prints:
        builder.add(TickEvent(code, when, price, volume, "0-0"))  # type: ignore[arg-type]
    return store_bars(builder.drain())


def test_live_run_and_backtest_agree(live, make_stock, make_strategy, account):
    strategy = make_strategy()
    prints = minute_prints(CLOSES, start=at(9, 1))
    live.feed(prints)
    assert _store_bars(prints) == len(CLOSES)

    live_signals = list(Signal.objects.filter(strategy=strategy).order_by("at"))
    result = backtest_execute(
        kind="ma_cross", params=strategy.params, codes=["005930"], start=DAY, end=DAY, timeframe="1m",
        limits={"capital": strategy.capital}, commission_rate=account.commission_rate,
    )  # fmt: skip
    back_signals = result["signals"]
    assert len(live_signals) == 4  # two entries, two exits
    assert [(s.at.isoformat(), s.side, s.quantity, s.outcome) for s in live_signals] == [
        (s["at"], s["side"], s["quantity"], s["outcome"]) for s in back_signals
    ]
    assert [s.key for s in live_signals] == [s["key"] for s in back_signals]
    assert [s.inputs for s in live_signals] == [s["inputs"] for s in back_signals]

    orders = list(Order.objects.filter(account=account).order_by("id"))
    assert [(o.side, o.quantity, o.client_order_id) for o in orders] == [
        (s.side, s.quantity, s.client_order_id) for s in live_signals
    ]
    assert all(s.order_id == o.pk for s, o in zip(live_signals, orders, strict=True))

    live_fills = list(Execution.objects.filter(account=account).order_by("id"))
    back_fills = result["fills"]
    assert [(f.side, f.quantity) for f in live_fills] == [(f["side"], f["quantity"]) for f in back_fills]
    bars = {b["ts"].isoformat(): b for b in _bars()}
    for live_fill, back_fill in zip(live_fills, back_fills, strict=True):
        bar = bars[back_fill["at"]]  # the bar after the signal's
        assert back_fill["price"] == bar["open"]
        assert bar["low"] <= live_fill.price <= bar["high"]
        assert live_fill.executed_at.replace(second=0).isoformat() == back_fill["at"]
    assert result["trades"] == 2 and result["stopped"] == ""


def _bars():
    from apps.marketdata.models import MinuteBar

    return MinuteBar.objects.filter(source="ws").values("ts", "open", "high", "low", "close")
