"""Recorded daily-bar files in the data directory, used as the offline second source.

- ``daily/yahoo/<code>.KS_*.csv``: Yahoo downloads (Date,Open,High,Low,Close,Adj Close,Volume). ``Close``
  is split-adjusted; files named ``*_unsplit`` predate the last split and are raw. Real Yahoo defects
  (zero-volume rows repeating the previous close) are kept: finding them is the point of validation.
- ``daily/fdr_format/<code>_fdr_*.csv``: FinanceDataReader-style output (Date,Open,High,Low,Close,Volume,Change).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from apps.core.krx.calendar import KST

from .base import SourceBar, SourceUnavailable

CLOSING_PRINT = time(15, 30)


def _int(text: str) -> int:
    return int(round(float(text)))


def _ohlcv(row: dict, keys: tuple[str, ...] = ("Open", "High", "Low", "Close", "Volume")) -> dict[str, int]:
    return dict(zip(("open", "high", "low", "close", "volume"), (_int(row[k]) for k in keys), strict=True))


class RecordedYahooSource:
    name = "yahoo"

    def __init__(self, data_dir: str | Path):
        self.folder = Path(data_dir) / "daily" / "yahoo" if data_dir else None

    def files_for(self, code: str) -> list[Path]:
        if self.folder is None or not self.folder.is_dir():
            raise SourceUnavailable("no recorded Yahoo files: HOGA_DATA_DIR is not set or has no daily/yahoo")
        # Newest coverage last, so that on overlapping dates the newer download wins.
        return sorted(self.folder.glob(f"{code}.KS_*.csv"), key=lambda p: ("_unsplit" not in p.name, p.name))

    def daily_bars(self, code: str, start: date, end: date) -> list[SourceBar]:
        by_date: dict[date, SourceBar] = {}
        for path in self.files_for(code):
            adjusted = "_unsplit" not in path.name
            with path.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    if not row.get("Open") or row["Open"] in ("null", ""):
                        continue
                    day = date.fromisoformat(row["Date"][:10])
                    if start <= day <= end:
                        by_date[day] = SourceBar(code=code, date=day, adjusted=adjusted, **_ohlcv(row))
        return [by_date[d] for d in sorted(by_date)]


class RecordedFdrSource:
    """FinanceDataReader-format files recorded earlier (split-adjusted prices)."""

    name = "fdr"

    def __init__(self, data_dir: str | Path):
        self.folder = Path(data_dir) / "daily" / "fdr_format" if data_dir else None

    def daily_bars(self, code: str, start: date, end: date) -> list[SourceBar]:
        if self.folder is None or not self.folder.is_dir():
            raise SourceUnavailable("no recorded FinanceDataReader files: HOGA_DATA_DIR has no daily/fdr_format")
        bars = []
        for path in sorted(self.folder.glob(f"{code}_fdr_*.csv")):
            with path.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    day = date.fromisoformat(row["Date"][:10])
                    if start <= day <= end:
                        bars.append(SourceBar(code=code, date=day, adjusted=True, **_ohlcv(row)))
        return sorted({b.date: b for b in bars}.values(), key=lambda b: b.date)


@dataclass(frozen=True)
class RecordedMinute:
    code: str
    ts: datetime  # aware, KST, start of the minute (the closing print keeps its 15:30 stamp)
    open: int
    high: int
    low: int
    close: int
    volume: int


def read_creon_minutes(path: Path, code: str) -> list[RecordedMinute]:
    """CREON-style 1-minute file (time,open,high,low,close,volume with bar-END labels, naive KST).

    A bar labelled 09:01 covers 09:00:00-09:00:59 and is stored at 09:00; the closing-auction bar
    labelled 15:30 is a single print at 15:30 and keeps that stamp.
    """
    rows = []
    with Path(path).open(newline="") as handle:
        for row in csv.DictReader(handle):
            label = datetime.fromisoformat(row["time"]).replace(tzinfo=KST)
            start = label if label.time() >= CLOSING_PRINT else label - timedelta(minutes=1)
            rows.append(RecordedMinute(code=code, ts=start, **_ohlcv(row, ("open", "high", "low", "close", "volume"))))
    return rows
