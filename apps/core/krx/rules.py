"""KRX market rules shared by the sandbox broker and paper trading: the tick table (호가가격단위) and the
daily price limits (가격제한폭), per krx-rules §3.1–§3.2. Pure functions, no ORM.

Invariants:
- ``tick_size(p, on, market)`` is the tick of the band containing ``p`` (lower bound included).
- Band bounds are multiples of the finer tick below them, so "the largest grid price <= q" is
  ``q - q % tick_size(q)`` and the grid is totally ordered with ``tick_up``/``tick_down`` as neighbours.
- ``price_limits`` follows KRX's three steps exactly (base 9,940 -> 12,920 / 6,960).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

#: Date the unified 2023 tick table came into force (krx-rules §3.1).
TICK_TABLE_2023_EFFECTIVE = dt.date(2023, 1, 25)
#: Date the ±30% daily band came into force; ±15% before (krx-rules §3.2).
LIMIT_30PCT_EFFECTIVE = dt.date(2015, 6, 15)

# (exclusive upper bound, tick); the last entry's bound is None (no upper bound).
Band = tuple[int | None, int]

TABLE_2023: tuple[Band, ...] = (
    (2_000, 1),
    (5_000, 5),
    (20_000, 10),
    (50_000, 50),
    (200_000, 100),
    (500_000, 500),
    (None, 1_000),
)
# Before 2023-01-25 KOSPI and KOSDAQ had different tables (verified: zero violations in the
# recorded 2021–2022 KRX daily data with these two tables).
TABLE_OLD_KOSPI: tuple[Band, ...] = (
    (1_000, 1),
    (5_000, 5),
    (10_000, 10),
    (50_000, 50),
    (100_000, 100),
    (500_000, 500),
    (None, 1_000),
)
TABLE_OLD_KOSDAQ: tuple[Band, ...] = (
    (1_000, 1),
    (5_000, 5),
    (10_000, 10),
    (50_000, 50),
    (None, 100),
)


class TickTable:
    """Date-effective tick table.

    ``effective`` is the first date of the unified 2023 table; older dates use the per-market
    table (KOSDAQ, KOSDAQ GLOBAL and KONEX use the KOSDAQ table, everything else KOSPI's).
    """

    def __init__(self, effective: dt.date = TICK_TABLE_2023_EFFECTIVE) -> None:
        self.effective = effective

    def bands(self, on: dt.date, market: str = "KOSPI") -> Sequence[Band]:
        """The band list in force on ``on`` for ``market``."""
        if on >= self.effective:
            return TABLE_2023
        if market.upper().startswith(("KOSDAQ", "KONEX")):
            return TABLE_OLD_KOSDAQ
        return TABLE_OLD_KOSPI

    def tick_size(self, price: int, on: dt.date, market: str = "KOSPI") -> int:
        """Tick of the band containing ``price`` (prices below 1 use the smallest tick)."""
        for bound, tick in self.bands(on, market):
            if bound is None or price < bound:
                return tick
        raise AssertionError("unreachable: the last band is open-ended")

    def floor(self, price: int, on: dt.date, market: str = "KOSPI") -> int:
        """Largest grid price <= ``price``."""
        return price - price % self.tick_size(price, on, market)

    def ceil(self, price: int, on: dt.date, market: str = "KOSPI") -> int:
        """Smallest grid price >= ``price``."""
        low = self.floor(price, on, market)
        return low if low == price else self.tick_up(low, on, market)

    def on_grid(self, price: int, on: dt.date, market: str = "KOSPI") -> bool:
        """True when ``price`` is a valid quote price."""
        return price > 0 and price % self.tick_size(price, on, market) == 0

    def tick_up(self, price: int, on: dt.date, market: str = "KOSPI") -> int:
        """Next grid price above the grid price ``price``."""
        return price + self.tick_size(price, on, market)

    def tick_down(self, price: int, on: dt.date, market: str = "KOSPI") -> int:
        """Next grid price below the grid price ``price`` (never below 1)."""
        if price <= 1:
            return 1
        return self.floor(price - 1, on, market)

    def grid_between(self, low: int, high: int, on: dt.date, market: str = "KOSPI") -> list[int]:
        """All grid prices p with low <= p <= high, ascending."""
        out: list[int] = []
        p = self.ceil(max(low, 1), on, market)
        while p <= high:
            out.append(p)
            p = self.tick_up(p, on, market)
        return out

    def price_limits(self, base: int, on: dt.date, market: str = "KOSPI") -> tuple[int, int]:
        """(상한가, 하한가) for base price ``base`` on ``on`` (krx-rules §3.2, KRX's three steps).

        1. w = base × rate (30% since 2015-06-15, 15% before; KONEX 15%).
        2. Truncate w to a multiple of the base price's tick.
        3. upper = base + w, lower = base − w, each truncated to the tick of its own band.
        """
        if base <= 0:
            return 0, 0
        pct = 30 if on >= LIMIT_30PCT_EFFECTIVE and not market.upper().startswith("KONEX") else 15
        width = base * pct // 100
        base_tick = self.tick_size(base, on, market)
        width -= width % base_tick
        upper = self.floor(base + width, on, market)
        lower = max(self.floor(base - width, on, market), 1)
        return upper, lower


DEFAULT_TICKS = TickTable()


def tick_size(price: int, on: dt.date, market: str = "KOSPI") -> int:
    """Tick of the band containing ``price`` on ``on`` (module-level shortcut of ``DEFAULT_TICKS``)."""
    return DEFAULT_TICKS.tick_size(price, on, market)


def on_tick_grid(price: int, on: dt.date, market: str = "KOSPI") -> bool:
    """True when ``price`` is a valid quote price on ``on``."""
    return DEFAULT_TICKS.on_grid(price, on, market)


def price_limits(base: int, on: dt.date, market: str = "KOSPI") -> tuple[int, int]:
    """(상한가, 하한가) for the base price ``base`` (KRX's three rounding steps, see ``TickTable``)."""
    return DEFAULT_TICKS.price_limits(base, on, market)
