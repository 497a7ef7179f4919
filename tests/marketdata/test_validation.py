from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from apps.marketdata.validation import compare_daily


@dataclass
class Bar:
    date: date
    open: int
    high: int
    low: int
    close: int
    volume: int


def _series(start: date, closes: list[int], volume: int = 1000) -> list[Bar]:
    return [Bar(start + timedelta(days=i), c, c, c, c, volume) for i, c in enumerate(closes)]


def test_identical_sources_agree_fully():
    bars = {"005930": _series(date(2022, 1, 3), [100, 101, 102])}

    result = compare_daily(bars, bars)

    assert (result.total_compared, result.values_compared, result.agreement_pct) == (3, 12, 100.0)
    assert result.disagreements == []


def test_isolated_stale_row_is_reported_with_its_diff():
    a = _series(date(2022, 1, 3), [70000, 71000, 72000, 73000])
    b = _series(date(2022, 1, 3), [70000, 71000, 71000, 73000])  # day 3 repeats the previous close
    b[2].volume = 0

    result = compare_daily({"005930": a}, {"005930": b}, tolerance_pct=0.5)

    fields = [(d.day, d.field, d.value_a, d.value_b, d.diff_pct) for d in result.disagreements]
    assert fields[:4] == [(date(2022, 1, 5), f, 72000, 71000, -1.3889) for f in ("open", "high", "low", "close")]
    assert fields[4] == (date(2022, 1, 5), "volume", 1000, 0, -100.0)
    assert result.max_diff == (pytest.approx(1.38888, rel=1e-4), "005930", date(2022, 1, 5), "open")
    assert result.agreement_pct == 75.0


def test_adjusted_stretch_is_not_a_data_error():
    raw = _series(date(2021, 1, 4), [50000, 51000, 52000, 53000, 54000, 55000])
    # An adjusted source scales the first four days by a constant factor (a later 2:1 split, say).
    adjusted = _series(date(2021, 1, 4), [25000, 25500, 26000, 26500, 54000, 55000])

    result = compare_daily({"X": raw}, {"X": adjusted})

    assert result.skipped_adjustment == 4
    assert result.total_compared == 2
    assert result.disagreements == []


def test_volume_is_reported_separately_from_prices():
    a = _series(date(2021, 1, 25), [100, 100], volume=1_000_000)
    b = _series(date(2021, 1, 25), [100, 100], volume=1_002_000)  # 0.2 %: within tolerance
    b[1].volume = 1_010_000  # 1 %: outside

    result = compare_daily({"X": a}, {"X": b})

    assert result.agreement_pct == 100.0
    assert result.volume_agreement_pct == 50.0
    assert [(d.field, d.diff_pct) for d in result.disagreements] == [("volume", 1.0)]


def test_days_in_one_source_only_are_counted():
    a = _series(date(2022, 1, 3), [1, 2, 3])
    b = [a[0], a[2]]

    result = compare_daily({"X": a}, {"X": b})

    assert (result.only_in_a, result.only_in_b) == (1, 0)
    assert [(d.day, d.field) for d in result.disagreements] == [(date(2022, 1, 4), "missing_in_b")]
