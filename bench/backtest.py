#!/usr/bin/env python
"""Backtest throughput: bars/s and peak memory for a 50-stock, 1-year minute-bar backtest of a moving-average
cross, two ways:

- ``vector``: the rule vectorised with numpy over whole arrays (averages by cumulative sums, entries and exits
  where the fast average crosses the slow one, fills at the next bar's open, commission and tax), one core;
- ``event``: the engine every backtest and live run uses (``apps.strategies.engine``: the strategy's ``on_bar``
  per bar, signals with their client order ids, risk checks, the paper fill model), one core.

    python bench/backtest.py                       # both modes, 50 stocks x 250 days x 381 minutes
    python bench/backtest.py --mode event --stocks 10 --days 60

The bars are synthetic (a random walk on the KRX tick grid around 70,000 KRW, 381 minutes a day): a year of minute
bars of 50 stocks is more than the stored data holds. Each mode runs in its own process, so its peak resident
memory (ru_maxrss) is its own. Nothing touches the database or Redis.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

MINUTES = 381  # 09:00-15:20 continuous (380) + the closing print


def _prices(stocks: int, days: int, seed: int = 7):
    import numpy as np

    rng = np.random.default_rng(seed)
    steps = rng.integers(-1, 2, size=(stocks, days * MINUTES), dtype=np.int8).astype(np.int32) * 100
    close = np.cumsum(steps, axis=1, dtype=np.int32)
    del steps
    close += 70_000
    np.clip(close, 10_000, None, out=close)
    open_ = np.empty_like(close)
    open_[:, 0], open_[:, 1:] = close[:, 0], close[:, :-1]
    return open_, close


def vector(stocks: int, days: int, fast: int, slow: int) -> dict:
    import numpy as np

    open_, close = _prices(stocks, days)
    began = time.perf_counter()
    c = close.astype(np.float64)
    csum = np.cumsum(c, axis=1)
    ma_fast = np.full_like(c, np.nan)
    ma_slow = np.full_like(c, np.nan)
    ma_fast[:, fast - 1 :] = (csum[:, fast - 1 :] - np.pad(csum, ((0, 0), (1, 0)))[:, :-fast]) / fast
    ma_slow[:, slow - 1 :] = (csum[:, slow - 1 :] - np.pad(csum, ((0, 0), (1, 0)))[:, :-slow]) / slow
    above = np.nan_to_num(np.sign(ma_fast - ma_slow))
    position = np.zeros_like(above)
    position[:, 1:] = (above[:, :-1] > 0).astype(np.float64)  # held from the bar after the signal, at its open
    change = np.diff(position, axis=1, prepend=0.0)
    qty = 10
    traded = np.abs(change) * open_ * qty
    commission = np.floor(traded * 0.00015)
    tax = np.floor(np.where(change < 0, traded, 0.0) * 0.002)
    pnl = (position * (close - open_) * qty).sum() + ((position[:, 1:] * (open_[:, 1:] - close[:, :-1]) * qty).sum())
    net = pnl - commission.sum() - tax.sum()
    elapsed = time.perf_counter() - began
    bars = stocks * days * MINUTES
    return {"mode": "vector", "bars": bars, "seconds": round(elapsed, 3), "bars_per_second": round(bars / elapsed),
            "trades": int((change < 0).sum()), "net_pnl": int(net)}  # fmt: skip


def event(stocks: int, days: int, fast: int, slow: int) -> dict:
    import django

    django.setup()
    from decimal import Decimal

    from apps.core.krx.calendar import KST
    from apps.strategies.builtins import MovingAverageCross
    from apps.strategies.engine import Engine, RiskLimits, SimBroker, run_bars
    from apps.strategies.interface import Bar

    open_, close = _prices(stocks, days)
    codes = [f"{100000 + i:06d}" for i in range(stocks)]
    first = dt.datetime(2025, 1, 2, 9, 0, tzinfo=KST)

    def bars():
        for d in range(days):  # a day at a time, as the backtest's cursor reads rows
            day = first + dt.timedelta(days=d)
            opens = open_[:, d * MINUTES : (d + 1) * MINUTES].tolist()
            closes = close[:, d * MINUTES : (d + 1) * MINUTES].tolist()
            for m in range(MINUTES):
                ts = day + dt.timedelta(minutes=m)
                for s, code in enumerate(codes):
                    o, c = opens[s][m], closes[s][m]
                    yield Bar(code, ts, o, max(o, c), min(o, c), c, 1_000)

    # as a stored backtest keeps them: the first 2,000 signals and fills, counts of all
    broker = SimBroker(commission_rate=Decimal("0.00015"), tax_rate=lambda m, d: Decimal("0.002"), markets={},
                       keep_fills=2_000)  # fmt: skip
    signals: list = []

    def record(signal) -> None:
        if len(signals) < 2_000:
            signals.append(signal)

    engine = Engine(MovingAverageCross({"fast": fast, "slow": slow, "quantity": 10, "amount": 0}), broker=broker,
                    limits=RiskLimits(capital=10**12), prefix="bench", record=record)  # fmt: skip
    began = time.perf_counter()
    count = run_bars(engine, broker, bars())
    elapsed = time.perf_counter() - began
    return {"mode": "event", "bars": count, "seconds": round(elapsed, 3), "bars_per_second": round(count / elapsed),
            "signals": engine.signals, "fills": broker.fill_count, "trades": len(engine.ledger.trades)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["vector", "event", "both"], default="both")
    parser.add_argument("--stocks", type=int, default=50)
    parser.add_argument("--days", type=int, default=250)
    parser.add_argument("--fast", type=int, default=5)
    parser.add_argument("--slow", type=int, default=20)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = vector if args.mode == "vector" else event
        result = run(args.stocks, args.days, args.fast, args.slow)
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(result))
        return
    modes = ["vector", "event"] if args.mode == "both" else [args.mode]
    print(f"{args.stocks} stocks x {args.days} days x {MINUTES} minute bars = {args.stocks * args.days * MINUTES:,}"
          " bars (synthetic), one core per mode")  # fmt: skip
    for mode in modes:
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--mode", mode, "--stocks", str(args.stocks), "--days",
             str(args.days), "--fast", str(args.fast), "--slow", str(args.slow)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        result = json.loads(out.stdout.strip().splitlines()[-1])
        shown = ("mode", "bars", "seconds", "bars_per_second", "peak_rss_mb")
        extra = {k: v for k, v in result.items() if k not in shown}
        print(f"{mode:>6}: {result['bars']:,} bars in {result['seconds']} s = {result['bars_per_second']:,} bars/s; "
              f"peak RSS {result['peak_rss_mb']} MB; {extra}")  # fmt: skip


if __name__ == "__main__":
    main()
