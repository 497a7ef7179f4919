"""Loaders for the recorded KRX data under ``HOGA_DATA_DIR`` (stdlib csv only, read in place).

Files (see the data README): KRX daily (raw, marcap), the top-50 listing, CREON daily (adjusted),
CREON 1-minute Samsung bars (bar-END labels), Yahoo 5-minute bars (bar-START labels, +09:00) and
the real KIS websocket frames. Prices are ints in KRW, volumes ints in shares.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

KRX_DAILY = Path("daily/krx_marcap/krx_daily_top100_2021-2026_janfeb_windows.csv")
LISTING_DIR = Path("listing")
CREON_DAILY_DIR = Path("daily/creon")
CREON_MINUTE = Path("intraday/A005930_1min_2020-03-20.csv")
YAHOO_5M_DIR = Path("intraday/yahoo_5m")
REAL_FRAMES = Path("ticks/kis_websocket_real_frames_005930.txt")

#: The Yahoo 5-minute files are named after the company, not the code.
YAHOO_5M_CODES: dict[str, str] = {
    "SAMSUNG_Electronics": "005930",
    "SK_Hynix": "000660",
    "NAVER": "035420",
    "Kakao": "035720",
    "HYUNDAI_Motors": "005380",
    "Celltrion": "068270",
    "LG_Chem": "051910",
    "SAMSUNG_SDI": "006400",
    "KIA_Motors": "000270",
    "POSCO": "005490",
}


@dataclass(frozen=True, slots=True)
class DailyBar:
    """One recorded daily bar. ``source`` names the file family it came from."""

    date: dt.date
    open: int
    high: int
    low: int
    close: int
    volume: int
    amount: int = 0
    source: str = "krx"


@dataclass(frozen=True, slots=True)
class Instrument:
    """Static data of one stock."""

    code: str
    name: str
    market: str
    listed_shares: int = 0


@dataclass(frozen=True, slots=True)
class IntradayBar:
    """One recorded intraday bar covering [start, end) in KST seconds of day.

    ``start == end`` marks a single print (the 15:30 closing auction).
    """

    start_s: int
    end_s: int
    open: int
    high: int
    low: int
    close: int
    volume: int


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed by the caller


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with _open_text(path) as fh:
        yield from csv.DictReader(fh)


def _num(text: str) -> int:
    """'60800.0' / '60800' / '' -> int (empty = 0)."""
    text = text.strip()
    return int(float(text)) if text else 0


@dataclass(frozen=True, slots=True)
class KrxDaily:
    """The KRX daily file: bars per code (ascending), latest instrument data, codes per date by rank."""

    bars: dict[str, list[DailyBar]]
    instruments: dict[str, Instrument]
    ranked_codes: dict[dt.date, list[str]]


def ymd_date(text: str) -> dt.date:
    """'YYYYMMDD' -> date (ValueError if malformed)."""
    if len(text) != 8 or not text.isdigit():
        raise ValueError(f"bad YYYYMMDD {text!r}")
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))


def load_krx_daily(data_dir: Path) -> KrxDaily:
    """Load the KRX (marcap) daily file."""
    bars: dict[str, list[DailyBar]] = defaultdict(list)
    instruments: dict[str, Instrument] = {}
    ranked: dict[dt.date, list[tuple[int, str]]] = defaultdict(list)
    for row in _rows(data_dir / KRX_DAILY):
        code = row["Code"]
        ranked[dt.date.fromisoformat(row["Date"])].append((_num(row["Rank"]), code))
        bars[code].append(
            DailyBar(
                date=dt.date.fromisoformat(row["Date"]),
                open=_num(row["Open"]),
                high=_num(row["High"]),
                low=_num(row["Low"]),
                close=_num(row["Close"]),
                volume=_num(row["Volume"]),
                amount=_num(row["Amount"]),
                source="krx",
            )
        )
        instruments[code] = Instrument(code, row["Name"], row["Market"], _num(row["Stocks"]))
    for series in bars.values():
        series.sort(key=lambda b: b.date)
    ranked_codes = {day: [code for _, code in sorted(items)] for day, items in ranked.items()}
    return KrxDaily(dict(bars), instruments, ranked_codes)


def load_listing(data_dir: Path, on: dt.date) -> list[Instrument] | None:
    """The top-by-marcap listing recorded for ``on`` (rank order), or None if none was recorded."""
    path = data_dir / LISTING_DIR / f"krx_top50_by_marcap_{on.isoformat()}.csv"
    if not path.is_file():
        return None
    rows = sorted(_rows(path), key=lambda r: int(r["Rank"]))
    return [Instrument(r["Code"], r["Name"], r["Market"], _num(r["Stocks"])) for r in rows]


def load_creon_daily(data_dir: Path) -> dict[str, list[DailyBar]]:
    """CREON broker daily bars per code (split-ADJUSTED prices; used only before the KRX windows)."""
    out: dict[str, list[DailyBar]] = {}
    folder = data_dir / CREON_DAILY_DIR
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("A*.csv")):
        series = [
            DailyBar(
                date=ymd_date(r["일자"]),
                open=_num(r["시가"]),
                high=_num(r["고가"]),
                low=_num(r["저가"]),
                close=_num(r["종가"]),
                volume=_num(r["거래량"]),
                source="creon",
            )
            for r in _rows(path)
        ]
        # One bar a date (the recorded 005930 file repeats 2009-09-15): the last row of a date wins.
        series = sorted({b.date: b for b in series}.values(), key=lambda b: b.date)
        out[path.stem[1:]] = series
    return out


def load_creon_minutes(data_dir: Path) -> dict[tuple[str, dt.date], list[IntradayBar]]:
    """CREON 1-minute bars keyed by (code, date).

    Labels are bar ENDS (09:01 covers [09:00, 09:01)); a label after 15:20 is the closing-auction
    single print at that time.
    """
    path = data_dir / CREON_MINUTE
    out: dict[tuple[str, dt.date], list[IntradayBar]] = defaultdict(list)
    if not path.is_file():
        return {}
    code = path.name.split("_", 1)[0][1:]
    for r in _rows(path):
        stamp = dt.datetime.fromisoformat(r["time"])
        end = stamp.hour * 3600 + stamp.minute * 60 + stamp.second
        start = end if end > 15 * 3600 + 20 * 60 else end - 60
        out[(code, stamp.date())].append(
            IntradayBar(
                start,
                end,
                _num(r["open"]),
                _num(r["high"]),
                _num(r["low"]),
                _num(r["close"]),
                _num(r["volume"]),
            )
        )
    for bars in out.values():
        bars.sort(key=lambda b: b.start_s)
    return dict(out)


def load_yahoo_5m(data_dir: Path) -> dict[tuple[str, dt.date], list[IntradayBar]]:
    """Yahoo 5-minute bars keyed by (code, date); labels are bar STARTS (09:00 covers [09:00, 09:05))."""
    out: dict[tuple[str, dt.date], list[IntradayBar]] = defaultdict(list)
    folder = data_dir / YAHOO_5M_DIR
    if not folder.is_dir():
        return {}
    for path in sorted(folder.glob("*.csv")):
        code = YAHOO_5M_CODES.get(path.stem)
        if code is None:
            continue
        for r in _rows(path):
            stamp = dt.datetime.fromisoformat(r["Datetime"])
            start = stamp.hour * 3600 + stamp.minute * 60 + stamp.second
            out[(code, stamp.date())].append(
                IntradayBar(
                    start,
                    start + 300,
                    _num(r["Open"]),
                    _num(r["High"]),
                    _num(r["Low"]),
                    _num(r["Close"]),
                    _num(r["Volume"]),
                )
            )
    for bars in out.values():
        bars.sort(key=lambda b: b.start_s)
    return dict(out)


def daily_from_intraday(bars: list[IntradayBar], on: dt.date, source: str) -> DailyBar | None:
    """Aggregate intraday bars with volume into one daily bar (None if nothing traded)."""
    traded = [b for b in bars if b.volume > 0]
    if not traded:
        return None
    return DailyBar(
        date=on,
        open=traded[0].open,
        high=max(b.high for b in traded),
        low=min(b.low for b in traded),
        close=traded[-1].close,
        volume=sum(b.volume for b in traded),
        source=source,
    )


def load_real_frames(data_dir: Path) -> list[str]:
    """The recorded real KIS websocket data frames (comment lines removed)."""
    path = data_dir / REAL_FRAMES
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip() and not line.startswith("#")]
