"""Comparison of investor flows from two sources (pure: rows in, a result out; no ORM).

Net quantities per investor type are compared exactly (both sources count shares traded on KRX; a difference
of one share is a disagreement); a type one side does not carry (``None``) is not compared. Used by the
collection (FHPTJ04160001 against FHKST01010900, two TRs of one broker: a consistency check, not an
independent source) and by the validation job (two stored sources, when a second one exists).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

COMPARED_TYPES = ("individual", "foreign", "institution", "other_corp")


@dataclass(frozen=True)
class FlowDisagreement:
    code: str
    day: date
    field: str
    value_a: int | None
    value_b: int | None


@dataclass
class FlowComparison:
    stock_days: int = 0
    values_compared: int = 0
    values_agreeing: int = 0
    only_in_a: int = 0
    only_in_b: int = 0
    max_diff: tuple[int, str, date | None, str] = (0, "", None, "")
    disagreements: list[FlowDisagreement] = field(default_factory=list)

    @property
    def agreement_pct(self) -> float | None:
        return None if not self.values_compared else round(100.0 * self.values_agreeing / self.values_compared, 4)


def net_of(row: Any, who: str) -> int | None:
    """The net quantity of investor type ``who`` on a row (a mapping ``net_qty`` or ``<who>_net_qty`` attribute)."""
    nets = getattr(row, "net_qty", None)
    if isinstance(nets, Mapping):
        return nets.get(who)
    return getattr(row, f"{who}_net_qty", None)


def compare_flows(rows_a: Mapping[tuple[str, date], Any], rows_b: Mapping[tuple[str, date], Any]) -> FlowComparison:
    """Compare per (stock code, day) the net quantities of every investor type both sides carry."""
    result = FlowComparison()
    for key in sorted(set(rows_a) ^ set(rows_b)):
        if key in rows_a:
            result.only_in_a += 1
        else:
            result.only_in_b += 1
    for code, day in sorted(set(rows_a) & set(rows_b)):
        a, b = rows_a[(code, day)], rows_b[(code, day)]
        result.stock_days += 1
        for who in COMPARED_TYPES:
            va, vb = net_of(a, who), net_of(b, who)
            if va is None or vb is None:
                continue
            result.values_compared += 1
            if va == vb:
                result.values_agreeing += 1
                continue
            name = f"{who}_net_qty"
            result.disagreements.append(FlowDisagreement(code, day, name, va, vb))
            if abs(vb - va) > result.max_diff[0]:
                result.max_diff = (abs(vb - va), code, day, name)
    return result
