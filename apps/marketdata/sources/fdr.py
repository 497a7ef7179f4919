"""FinanceDataReader, the live second source (it fetches from Naver/KRX servers over the internet).

Its default source for KRX codes is Naver's chart service, whose prices are adjusted (수정주가); the
validation job compares like with like (see ``apps.marketdata.validation``).
"""

from __future__ import annotations

import concurrent.futures
import logging
from datetime import date

from .base import SourceBar, SourceUnavailable

logger = logging.getLogger(__name__)

FETCH_TIMEOUT = 60.0  # seconds per stock; FinanceDataReader itself sets no timeout on every path


def _fetch(code: str, start: date, end: date):
    import FinanceDataReader as fdr

    return fdr.DataReader(code, start.isoformat(), end.isoformat())


class FinanceDataReaderSource:
    name = "fdr"

    def __init__(self, timeout: float = FETCH_TIMEOUT):
        self.timeout = timeout

    def daily_bars(self, code: str, start: date, end: date) -> list[SourceBar]:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fdr")
        try:
            frame = pool.submit(_fetch, code, start, end).result(timeout=self.timeout)
        except concurrent.futures.TimeoutError as exc:
            raise SourceUnavailable(f"FinanceDataReader did not answer for {code} within {self.timeout:.0f}s") from exc
        except Exception as exc:  # noqa: BLE001 - any failure of the remote source is reported, never raised raw
            raise SourceUnavailable(f"FinanceDataReader could not fetch {code}: {type(exc).__name__}: {exc}") from exc
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        bars = []
        for stamp, row in frame.iterrows():
            values = [row.get(col) for col in ("Open", "High", "Low", "Close", "Volume")]
            if any(v is None or v != v for v in values):  # missing or NaN
                continue
            bars.append(
                SourceBar(
                    code=code,
                    date=stamp.date(),
                    open=int(values[0]),
                    high=int(values[1]),
                    low=int(values[2]),
                    close=int(values[3]),
                    volume=int(values[4]),
                    adjusted=True,
                )
            )
        return bars
