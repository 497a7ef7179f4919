"""Comparison of two sources' daily bars (pure: bars in, a result out; no ORM, no files).

OHLC values agree when they differ by at most ``tolerance_pct`` percent (of source A's value); volume
is compared and reported separately, because sources legitimately differ on off-hours volume.

Like with like: a corporate action (split, spin-off) makes an adjusted source differ from a raw one by
a constant factor over a whole stretch of days. Such stretches are not data errors: a stock-day whose
close ratio B/A is off by more than the tolerance, but equals (within ``FACTOR_MATCH_PCT``) the ratio of
at least ``FACTOR_RUN_DAYS - 1`` neighbouring days in an unbroken run, is counted as an adjustment
mismatch and left out of the comparison. An isolated bad day (a stale row, a wrong print) has no such
run and is reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

PRICE_FIELDS = ("open", "high", "low", "close")
FACTOR_RUN_DAYS = 3
FACTOR_MATCH_PCT = 0.2


class BarLike(Protocol):
    date: date
    open: int
    high: int
    low: int
    close: int
    volume: int


@dataclass(frozen=True)
class Disagreement:
    code: str
    day: date
    field: str
    value_a: int | None
    value_b: int | None
    diff_pct: float | None


@dataclass
class ComparisonResult:
    total_compared: int = 0
    values_compared: int = 0
    values_agreeing: int = 0
    diffs: list[float] = field(default_factory=list)
    max_diff: tuple[float, str, date | None, str] = (0.0, "", None, "")
    volume_compared: int = 0
    volume_agreeing: int = 0
    volume_max_diff_pct: float = 0.0
    only_in_a: int = 0
    only_in_b: int = 0
    skipped_adjustment: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def agreement_pct(self) -> float | None:
        return None if not self.values_compared else round(100.0 * self.values_agreeing / self.values_compared, 4)

    @property
    def mean_diff_pct(self) -> float | None:
        return None if not self.diffs else round(sum(self.diffs) / len(self.diffs), 6)

    @property
    def volume_agreement_pct(self) -> float | None:
        return None if not self.volume_compared else round(100.0 * self.volume_agreeing / self.volume_compared, 4)


def diff_pct(a: int, b: int) -> float:
    if a == 0:
        return 0.0 if b == 0 else 100.0
    return (b - a) * 100.0 / a


def _adjustment_days(common: list[tuple[BarLike, BarLike]], tolerance_pct: float) -> set[date]:
    """Days that sit in a run of >= FACTOR_RUN_DAYS consecutive days sharing one off-tolerance ratio."""
    ratios = [(a.date, b.close / a.close if a.close else 1.0) for a, b in common]
    marked: set[date] = set()
    start = 0
    while start < len(ratios):
        end = start + 1
        base = ratios[start][1]
        while end < len(ratios) and abs(ratios[end][1] / base - 1) * 100 <= FACTOR_MATCH_PCT:
            end += 1
        if end - start >= FACTOR_RUN_DAYS and abs(base - 1) * 100 > tolerance_pct:
            marked.update(day for day, _ in ratios[start:end])
        start = end
    return marked


def compare_daily(
    bars_a: dict[str, Iterable[BarLike]],
    bars_b: dict[str, Iterable[BarLike]],
    *,
    tolerance_pct: float = 0.5,
) -> ComparisonResult:
    """Compare per stock and day. ``bars_*`` map a stock code to its bars from that source."""
    result = ComparisonResult()
    for code in sorted(set(bars_a) | set(bars_b)):
        a_by_day = {bar.date: bar for bar in bars_a.get(code, ())}
        b_by_day = {bar.date: bar for bar in bars_b.get(code, ())}
        for day in sorted(set(a_by_day) ^ set(b_by_day)):
            only_a = day in a_by_day
            result.only_in_a += only_a
            result.only_in_b += not only_a
            bar = a_by_day.get(day) or b_by_day[day]
            result.disagreements.append(
                Disagreement(code, day, "missing_in_b" if only_a else "missing_in_a",
                             bar.close if only_a else None, None if only_a else bar.close, None)
            )  # fmt: skip
        common = [(a_by_day[d], b_by_day[d]) for d in sorted(set(a_by_day) & set(b_by_day))]
        adjusted = _adjustment_days(common, tolerance_pct)
        for a, b in common:
            if a.date in adjusted:
                result.skipped_adjustment += 1
                continue
            result.total_compared += 1
            for name in PRICE_FIELDS:
                va, vb = getattr(a, name), getattr(b, name)
                diff = diff_pct(va, vb)
                result.values_compared += 1
                result.diffs.append(abs(diff))
                if abs(diff) <= tolerance_pct:
                    result.values_agreeing += 1
                else:
                    result.disagreements.append(Disagreement(code, a.date, name, va, vb, round(diff, 4)))
                if abs(diff) > result.max_diff[0]:
                    result.max_diff = (abs(diff), code, a.date, name)
            vdiff = diff_pct(a.volume, b.volume)
            result.volume_compared += 1
            result.volume_max_diff_pct = max(result.volume_max_diff_pct, abs(vdiff))
            if abs(vdiff) <= tolerance_pct:
                result.volume_agreeing += 1
            else:
                result.disagreements.append(Disagreement(code, a.date, "volume", a.volume, b.volume, round(vdiff, 4)))
    return result
