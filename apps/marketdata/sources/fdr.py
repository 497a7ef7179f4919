"""FinanceDataReader, the live second source (it fetches from KRX/Naver servers over the internet)."""

from __future__ import annotations

import logging
from datetime import date

from .base import SourceBar, SourceUnavailable

logger = logging.getLogger(__name__)


class FinanceDataReaderSource:
    name = "fdr"

    def daily_bars(self, code: str, start: date, end: date) -> list[SourceBar]:
        try:
            import FinanceDataReader as fdr

            frame = fdr.DataReader(code, start.isoformat(), end.isoformat())
        except Exception as exc:  # noqa: BLE001 - any failure of the remote source is reported, never raised raw
            raise SourceUnavailable(f"FinanceDataReader could not fetch {code}: {type(exc).__name__}: {exc}") from exc
        bars = []
        for stamp, row in frame.iterrows():
            if any(row[col] != row[col] for col in ("Open", "High", "Low", "Close", "Volume")):  # NaN
                continue
            bars.append(
                SourceBar(
                    code=code,
                    date=stamp.date(),
                    open=int(row["Open"]),
                    high=int(row["High"]),
                    low=int(row["Low"]),
                    close=int(row["Close"]),
                    volume=int(row["Volume"]),
                    adjusted=False,
                )
            )
        return bars
