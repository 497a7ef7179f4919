"""Session-aware resampling of 1-minute bars to 3/5/10/15/30/60-minute bars (pandas).

Buckets are anchored at each session's open (so a 10:00 late open starts its own grid) and never span
two days. Phases never mix (``apps.marketdata.bars``): continuous minutes are bucketed together; a single
print (the opening, closing and VI auctions' prints, each after-hours single-price call) stays a bar of its own
at its minute; the closing-price sessions' bars are bucketed on the same grid but apart from the continuous
ones. Bars without a phase are continuous, except one stamped at or after the session close, which is the
closing print. A bucket is labelled with its start time and carries its phase.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime

import pandas as pd

from apps.core.krx.calendar import KST
from apps.core.krx.phases import CLOSING_AUCTION, CONTINUOUS

from .bars import SINGLE_PRINT_PHASES, phase_order

MINUTE_INTERVALS = {"1m": 1, "3m": 3, "5m": 5, "10m": 10, "15m": 15, "30m": 30, "60m": 60}


def resample_minutes(
    bars: Iterable[Mapping],
    minutes: int,
    session_opens: Mapping[date, datetime],
    session_closes: Mapping[date, datetime],
) -> list[dict]:
    """``bars``: dicts with ts (aware), open, high, low, close, volume, sorted or not. Returns dicts, oldest first."""
    frame = pd.DataFrame(list(bars))
    if frame.empty:
        return []
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True).dt.tz_convert(KST)
    if "phase" not in frame:
        frame["phase"] = CONTINUOUS
    frame["phase"] = frame["phase"].fillna(CONTINUOUS)
    frame["order"] = frame["phase"].map(phase_order)
    frame = frame.sort_values(["ts", "order"], kind="stable")
    if minutes == 1:
        return [{k: v for k, v in row.items() if k != "order"} for row in frame.to_dict("records")]
    days = frame["ts"].dt.date
    opens = pd.to_datetime(days.map(session_opens), utc=True).dt.tz_convert(KST)
    closes = pd.to_datetime(days.map(session_closes), utc=True).dt.tz_convert(KST)
    if opens.isna().any():
        missing = sorted(set(days[opens.isna()]))
        raise ValueError(f"no session known for {missing[:3]}")
    offset_min = ((frame["ts"] - opens).dt.total_seconds() // 60).astype(int)
    bucket_start = opens + pd.to_timedelta((offset_min // minutes) * minutes, unit="min")
    closing_print = (frame["phase"] == CONTINUOUS) & (frame["ts"] >= closes)
    frame.loc[closing_print, "phase"] = CLOSING_AUCTION
    single = frame["phase"].isin(SINGLE_PRINT_PHASES)
    frame["bucket"] = bucket_start.where(~single, frame["ts"])
    grouped = frame.groupby(["bucket", "phase"], sort=False).agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
    )
    out = []
    for (stamp, phase), row in grouped.iterrows():
        out.append(
            {
                "ts": stamp.to_pydatetime(),
                "open": int(row["open"]),
                "high": int(row["high"]),
                "low": int(row["low"]),
                "close": int(row["close"]),
                "volume": int(row["volume"]),
                "phase": phase,
            }
        )
    return sorted(out, key=lambda bar: (bar["ts"], phase_order(bar["phase"])))
