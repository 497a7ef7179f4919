"""Chart studies computed from bars: the one implementation behind the chart's overlays and panes.

Definitions are the usual ones (and those of the maintained ``ta`` library the tests compare against):
- ``ma<n>``: simple moving average of the close over n bars (5/20/60/120: the Korean HTS defaults);
- ``bb``: Bollinger bands, the 20-bar average ± 2 population standard deviations of the close;
- ``vma20``: simple moving average of the volume over 20 bars;
- ``rsi``: Wilder's 14-bar RSI: gains and losses averaged as exponential means with alpha 1/14, the first bar
  counting as no change (as ``ta`` does), reported from the 14th bar;
- ``macd``: EMA(12) − EMA(26) of the close, its signal EMA(9) and the histogram (macd − signal); EMAs seeded
  with their first value (no "adjust") and reported once they have seen their span of values.
A study has no value (None) until it has seen enough bars: the series are as long as the bars.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MOVING_AVERAGES = (5, 20, 60, 120)
BOLLINGER_WINDOW, BOLLINGER_DEVIATIONS = 20, 2.0
VOLUME_WINDOW = 20
RSI_WINDOW = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9

STUDIES = (*(f"ma{n}" for n in MOVING_AVERAGES), "bb", "vma20", "rsi", "macd")
DEFAULT_STUDIES = ("ma5", "ma20", "ma60", "ma120")

Series = list[float | None]


def sma(values: Sequence[float], window: int) -> Series:
    """Simple moving average (a running sum: O(n))."""
    out: Series = []
    total = 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / window if i >= window - 1 else None)
    return out


def rolling_std(values: Sequence[float], window: int) -> Series:
    """Population standard deviation over ``window`` values."""
    out: Series = []
    for i in range(len(values)):
        if i < window - 1:
            out.append(None)
            continue
        chunk = values[i - window + 1 : i + 1]
        mean = sum(chunk) / window
        out.append(math.sqrt(sum((v - mean) ** 2 for v in chunk) / window))
    return out


def ema(values: Sequence[float | None], *, alpha: float, min_periods: int) -> Series:
    """Exponential mean seeded with the first value (leading Nones skipped), reported after ``min_periods``."""
    out: Series = []
    mean: float | None = None
    seen = 0
    for value in values:
        if value is None:
            out.append(None if mean is None or seen < min_periods else mean)
            continue
        mean = value if mean is None else (1 - alpha) * mean + alpha * value
        seen += 1
        out.append(mean if seen >= min_periods else None)
    return out


def ema_span(values: Sequence[float | None], span: int) -> Series:
    return ema(values, alpha=2 / (span + 1), min_periods=span)


def bollinger(closes: Sequence[float]) -> dict[str, Series]:
    middle = sma(closes, BOLLINGER_WINDOW)
    std = rolling_std(closes, BOLLINGER_WINDOW)
    upper = [
        m + BOLLINGER_DEVIATIONS * s if m is not None and s is not None else None
        for m, s in zip(middle, std, strict=True)
    ]
    lower = [
        m - BOLLINGER_DEVIATIONS * s if m is not None and s is not None else None
        for m, s in zip(middle, std, strict=True)
    ]
    return {"upper": upper, "middle": middle, "lower": lower}


def rsi(closes: Sequence[float], window: int = RSI_WINDOW) -> Series:
    changes = [0.0] + [b - a for a, b in zip(closes, closes[1:], strict=False)] if closes else []
    ups: list[float | None] = [max(c, 0.0) for c in changes]
    downs: list[float | None] = [max(-c, 0.0) for c in changes]
    avg_up = ema(ups, alpha=1 / window, min_periods=window)
    avg_down = ema(downs, alpha=1 / window, min_periods=window)
    out: Series = []
    for up, down in zip(avg_up, avg_down, strict=True):
        if up is None or down is None:
            out.append(None)
        elif down == 0:
            out.append(100.0)
        else:
            out.append(100 - 100 / (1 + up / down))
    return out


def macd(closes: Sequence[float]) -> dict[str, Series]:
    fast = ema_span(closes, MACD_FAST)
    slow = ema_span(closes, MACD_SLOW)
    line: Series = [f - s if f is not None and s is not None else None for f, s in zip(fast, slow, strict=True)]
    signal = ema_span(line, MACD_SIGNAL)
    hist: Series = [m - s if m is not None and s is not None else None for m, s in zip(line, signal, strict=True)]
    return {"macd": line, "signal": signal, "hist": hist}


def compute(bars: Sequence[dict], studies: Sequence[str]) -> dict[str, Series | dict[str, Series]]:
    """The requested ``studies`` (names of :data:`STUDIES`) over ``bars`` (dicts with close and volume)."""
    closes = [float(b["close"]) for b in bars]
    out: dict[str, Series | dict[str, Series]] = {}
    for name in studies:
        if name.startswith("ma") and name[2:].isdigit() and int(name[2:]) in MOVING_AVERAGES:
            out[name] = sma(closes, int(name[2:]))
        elif name == "bb":
            out[name] = bollinger(closes)
        elif name == "vma20":
            out[name] = sma([float(b["volume"]) for b in bars], VOLUME_WINDOW)
        elif name == "rsi":
            out[name] = rsi(closes)
        elif name == "macd":
            out[name] = macd(closes)
        else:
            raise ValueError(f"unknown study {name!r}")
    return out
