"""Session-aware resampling of 1-minute bars to 3/5/10/15/30/60-minute bars (pandas).

Buckets are anchored at each session's open (so a 10:00 late open starts its own grid) and never span
two days. The closing-auction print (stamped at the session close, 15:30) is its own bucket: it never
merges with continuous-session minutes. A bucket is labelled with its start time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime

import pandas as pd

from .calendar import KST

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
    frame = frame.sort_values("ts")
    if minutes == 1:
        return frame.to_dict("records")
    days = frame["ts"].dt.date
    opens = pd.to_datetime(days.map(session_opens), utc=True).dt.tz_convert(KST)
    closes = pd.to_datetime(days.map(session_closes), utc=True).dt.tz_convert(KST)
    if opens.isna().any():
        missing = sorted(set(days[opens.isna()]))
        raise ValueError(f"no session known for {missing[:3]}")
    offset_min = ((frame["ts"] - opens).dt.total_seconds() // 60).astype(int)
    bucket_start = opens + pd.to_timedelta((offset_min // minutes) * minutes, unit="min")
    is_auction = frame["ts"] >= closes
    frame["bucket"] = bucket_start.where(~is_auction, frame["ts"])
    grouped = frame.groupby("bucket", sort=True).agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
    )
    out = []
    for stamp, row in grouped.iterrows():
        out.append(
            {
                "ts": stamp.to_pydatetime(),
                "open": int(row["open"]),
                "high": int(row["high"]),
                "low": int(row["low"]),
                "close": int(row["close"]),
                "volume": int(row["volume"]),
            }
        )
    return out
