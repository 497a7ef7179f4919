"""Tick table and price limits (krx-rules §3.1–§3.2)."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.core.krx.rules import TickTable

NEW = dt.date(2026, 2, 20)
OLD = dt.date(2022, 1, 3)
T = TickTable()


@pytest.mark.parametrize(
    ("price", "tick"),
    [
        (1, 1),
        (1999, 1),
        (2000, 5),
        (4995, 5),
        (5000, 10),
        (19990, 10),
        (20000, 50),
        (49950, 50),
        (50000, 100),
        (199900, 100),
        (200000, 500),
        (499500, 500),
        (500000, 1000),
        (2_449_000, 1000),
    ],
)
def test_2023_table(price: int, tick: int) -> None:
    assert T.tick_size(price, NEW, "KOSPI") == tick
    assert T.tick_size(price, NEW, "KOSDAQ") == tick


def test_pre_2023_tables_differ_per_market() -> None:
    assert T.tick_size(1500, OLD, "KOSPI") == 5
    assert T.tick_size(15000, OLD, "KOSPI") == 50
    assert T.tick_size(150000, OLD, "KOSPI") == 500
    assert T.tick_size(150000, OLD, "KOSDAQ") == 100
    assert T.tick_size(600000, OLD, "KOSDAQ GLOBAL") == 100
    assert T.tick_size(600000, OLD, "KOSPI") == 1000


def test_effective_date_is_configurable() -> None:
    late = TickTable(effective=dt.date(2024, 1, 1))
    assert late.tick_size(15000, dt.date(2023, 6, 1), "KOSPI") == 50
    assert T.tick_size(15000, dt.date(2023, 6, 1), "KOSPI") == 10
    assert T.tick_size(15000, dt.date(2023, 1, 24), "KOSPI") == 50
    assert T.tick_size(15000, dt.date(2023, 1, 25), "KOSPI") == 10


def test_krx_worked_example_9940() -> None:
    assert T.price_limits(9940, NEW, "KOSPI") == (12920, 6960)


def test_pre_2023_broker_example_9750() -> None:
    upper, _ = T.price_limits(9750, OLD, "KOSPI")
    assert upper == 12650


def test_upper_limit_crossing_into_coarser_band() -> None:
    assert T.price_limits(19990, NEW, "KOSPI") == (25950, 14000)


def test_15pct_before_2015_06_15() -> None:
    assert T.price_limits(10000, dt.date(2015, 6, 12), "KOSPI") == (11500, 8500)
    assert T.price_limits(10000, dt.date(2015, 6, 15), "KOSPI") == (13000, 7000)


def test_grid_neighbours_across_band_edges() -> None:
    assert T.tick_up(1999, NEW) == 2000
    assert T.tick_down(2000, NEW) == 1999
    assert T.tick_down(5000, NEW) == 4995
    assert T.tick_up(4995, NEW) == 5000
    assert T.grid_between(19980, 20100, NEW) == [19980, 19990, 20000, 20050, 20100]
    assert T.on_grid(190100, NEW) and not T.on_grid(190150, NEW)
    assert T.ceil(89950, NEW) == 90000 and T.floor(89950, NEW) == 89900
