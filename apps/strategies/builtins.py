"""The built-in strategies a user configures from the UI without code: condition entry/exit, moving-average
cross, breakout and RSI. They follow ``interface.Strategy`` like any operator-deployed class."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_noop

from .interface import (
    Bar,
    ChoiceParam,
    ConditionSignal,
    Context,
    FloatParam,
    IntParam,
    InvalidParams,
    Param,
    Strategy,
)

SIZING: dict[str, Param] = {
    "quantity": IntParam(default=0, low=0, high=10**7, help=gettext_noop("Shares per entry (0: use amount).")),
    "amount": IntParam(default=1_000_000, low=0, high=10**11, help=gettext_noop("KRW per entry when quantity is 0.")),
}


def _size(p: dict[str, Any]) -> dict[str, int | None]:
    return {"quantity": p["quantity"] or None, "amount": None if p["quantity"] else (p["amount"] or None)}


class ConditionEntryExit(Strategy):
    key = "condition"
    label = gettext_noop("Condition entry/exit")
    description = gettext_noop(
        "A stock entering the Kiwoom condition is bought (with a bracket when set); leaving it, sold."
    )
    uses_condition = True
    params: dict[str, Param] = {
        **SIZING,
        "stop_loss_pct": FloatParam(
            default=0.0, low=0.0, high=29.0, help=gettext_noop("Stop-loss leg below the alert's price, %.")
        ),
        "take_profit_pct": FloatParam(
            default=0.0, low=0.0, high=29.0, help=gettext_noop("Take-profit leg above it, % (0: none).")
        ),
        "exit_on_out": ChoiceParam(
            default="yes", choices=("yes", "no"), help=gettext_noop("Sell when the stock leaves.")
        ),
    }

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if bool(params["stop_loss_pct"]) != bool(params["take_profit_pct"]):
            raise InvalidParams(
                "A bracket needs both stop_loss_pct and take_profit_pct (or neither).",
                fields={"take_profit_pct": ["Set both or neither."]},
            )

    def on_condition_event(self, ctx: Context, event: ConditionSignal) -> None:
        inputs = {"event_id": event.event_id, "kind": event.kind, "price": event.price}
        if event.kind == "IN":
            if ctx.position(event.code) > 0:
                return
            bracket = None
            if self.p["stop_loss_pct"] and self.p["take_profit_pct"]:
                bracket = {"stop_loss_pct": self.p["stop_loss_pct"], "take_profit_pct": self.p["take_profit_pct"]}
            ctx.buy(event.code, **_size(self.p), inputs=inputs, bracket=bracket)
        elif event.kind == "OUT" and self.p["exit_on_out"] == "yes":
            ctx.sell(event.code, inputs=inputs)


class MovingAverageCross(Strategy):
    key = "ma_cross"
    label = gettext_noop("Moving-average cross")
    description = gettext_noop(
        "Buys when the fast average of closes crosses above the slow one; sells on the cross below."
    )
    params: dict[str, Param] = {
        "fast": IntParam(default=5, low=1, high=200),
        "slow": IntParam(default=20, low=2, high=500),
        **SIZING,
    }

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if params["fast"] >= params["slow"]:
            raise InvalidParams("fast must be below slow.", fields={"fast": ["Below slow."]})

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        fast, slow = self.p["fast"], self.p["slow"]
        st = self.state.get(bar.code)
        if st is None:
            st = self.state[bar.code] = {"c": [], "d": 0}
        closes = st["c"]
        closes.append(bar.close)
        if len(closes) > slow:
            del closes[0]
        if len(closes) < slow:
            return
        f = sum(closes[-fast:]) / fast
        s = sum(closes) / slow
        d = 1 if f > s else -1 if f < s else 0
        prev = st["d"]
        if d == 0 or d == prev:
            return
        st["d"] = d
        if prev == 0:
            return  # the first comparison is no cross
        inputs = {"close": bar.close, "fast_ma": round(f, 4), "slow_ma": round(s, 4)}
        if d > 0 and ctx.position(bar.code) == 0:
            ctx.buy(bar.code, **_size(self.p), inputs=inputs)
        elif d < 0 and ctx.position(bar.code) > 0:
            ctx.sell(bar.code, inputs=inputs)


class Breakout(Strategy):
    key = "breakout"
    label = gettext_noop("Breakout")
    description = gettext_noop(
        "Buys a close above the highest high of the last N bars; sells a close below the lowest low of M."
    )
    params: dict[str, Param] = {
        "window": IntParam(default=20, low=2, high=500),
        "exit_window": IntParam(default=10, low=2, high=500),
        **SIZING,
    }

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        n, m = self.p["window"], self.p["exit_window"]
        st = self.state.setdefault(bar.code, {"h": [], "l": []})
        highs, lows = st["h"], st["l"]
        if len(highs) >= n and ctx.position(bar.code) == 0 and bar.close > max(highs[-n:]):
            ctx.buy(bar.code, **_size(self.p), inputs={"close": bar.close, "highest": max(highs[-n:])})
        elif len(lows) >= m and ctx.position(bar.code) > 0 and bar.close < min(lows[-m:]):
            ctx.sell(bar.code, inputs={"close": bar.close, "lowest": min(lows[-m:])})
        highs.append(bar.high)
        lows.append(bar.low)
        keep = max(n, m)
        if len(highs) > keep:
            del highs[0], lows[0]


class RelativeStrength(Strategy):
    key = "rsi"
    label = gettext_noop("RSI")
    description = gettext_noop(
        "Wilder's RSI: buys when it falls below the oversold level, sells above the overbought one."
    )
    params: dict[str, Param] = {
        "period": IntParam(default=14, low=2, high=200),
        "oversold": FloatParam(default=30.0, low=1.0, high=99.0),
        "overbought": FloatParam(default=70.0, low=1.0, high=99.0),
        **SIZING,
    }

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if params["oversold"] >= params["overbought"]:
            raise InvalidParams("oversold must be below overbought.", fields={"oversold": ["Below overbought."]})

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        period = self.p["period"]
        st = self.state.setdefault(bar.code, {"prev": None, "n": 0, "g": 0.0, "l": 0.0})
        prev = st["prev"]
        st["prev"] = bar.close
        if prev is None:
            return
        change = bar.close - prev
        gain, loss = max(change, 0), max(-change, 0)
        st["n"] += 1
        if st["n"] <= period:
            st["g"] += gain / period
            st["l"] += loss / period
            if st["n"] < period:
                return
        else:
            st["g"] = (st["g"] * (period - 1) + gain) / period
            st["l"] = (st["l"] * (period - 1) + loss) / period
        rsi = 100.0 if st["l"] == 0 else 100 - 100 / (1 + st["g"] / st["l"])
        inputs = {"close": bar.close, "rsi": round(rsi, 4)}
        if rsi < self.p["oversold"] and ctx.position(bar.code) == 0:
            ctx.buy(bar.code, **_size(self.p), inputs=inputs)
        elif rsi > self.p["overbought"] and ctx.position(bar.code) > 0:
            ctx.sell(bar.code, inputs=inputs)


BUILTINS: tuple[type[Strategy], ...] = (ConditionEntryExit, MovingAverageCross, Breakout, RelativeStrength)
