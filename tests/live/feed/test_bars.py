"""Live 1-minute bars from ticks: exact OHLCV, minute boundaries, the 15:30 close, idempotent storage."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from apps.brokers.base import KST, PriceSign, Tick
from apps.live.feed.bars import BarBuilder, LiveBar, store_bars


def tick(code: str, hhmmss: str, price: int, volume: int, phase: str = "continuous") -> Tick:
    at = dt.datetime.combine(dt.date(2026, 2, 20), dt.time.fromisoformat(hhmmss), tzinfo=KST)
    return Tick(
        code=code, at=at, price=price, change=0, sign=PriceSign.UNCHANGED, change_rate=Decimal("0"), volume=volume,
        cum_volume=0, cum_value=0, open=price, high=price, low=price, ask1=price, bid1=price, side=None,
        session="0", received_at=at, phase=phase,
    )  # fmt: skip


def minute(hhmm: str) -> dt.datetime:
    return dt.datetime.combine(dt.date(2026, 2, 20), dt.time.fromisoformat(hhmm), tzinfo=KST)


def test_ohlcv_and_minute_boundaries() -> None:
    builder = BarBuilder(lateness=2.0)
    for t in [
        tick("005930", "09:00:00", 100, 5),
        tick("005930", "09:00:20", 105, 1),
        tick("000660", "09:00:30", 50, 7),
        tick("005930", "09:00:40", 98, 2),
        tick("005930", "09:00:59", 101, 3),
    ]:
        builder.add(t)
    assert builder.complete() == []  # 09:00 is not over yet
    builder.add(tick("005930", "09:01:00", 102, 4))  # 005930's 09:00 bar is closed by its next minute
    assert builder.complete() == [LiveBar("005930", minute("09:00"), 100, 105, 98, 101, 11)]
    builder.add(tick("005930", "09:01:01", 99, 1))
    assert builder.complete() == []  # 000660's 09:00 bar waits for the 2 s lateness
    builder.add(tick("005930", "09:01:02", 99, 1))
    assert builder.complete() == [LiveBar("000660", minute("09:00"), 50, 50, 50, 50, 7)]
    builder.add(tick("005930", "09:00:59", 1, 1))  # late tick of a closed minute: ignored
    assert builder.late_ticks == 1
    assert builder.drain() == [LiveBar("005930", minute("09:01"), 102, 102, 99, 99, 6)]


def test_closing_print_gets_its_own_1530_bar() -> None:
    builder = BarBuilder()
    builder.add(tick("005930", "15:19:59", 100, 1))
    builder.add(tick("005930", "15:30:00", 103, 500, "closing_auction"))
    assert builder.drain() == [
        LiveBar("005930", minute("15:19"), 100, 100, 100, 100, 1),
        LiveBar("005930", minute("15:30"), 103, 103, 103, 103, 500, "closing_auction"),
    ]


def test_single_prints_are_bars_of_their_own_phase_beside_the_continuous_minute() -> None:
    """The opening print and a VI's single print share their minute with continuous trades but not their bar; a
    continuous trade after the VI print in the same minute goes back to the minute's continuous bar."""
    builder = BarBuilder()
    builder.add(tick("005930", "09:00:00", 100, 900, "opening_auction"))
    builder.add(tick("005930", "09:00:05", 101, 3))
    builder.add(tick("005930", "09:00:30", 110, 400, "vi_auction"))
    builder.add(tick("005930", "09:00:40", 109, 2))
    builder.add(tick("005930", "09:01:00", 108, 1))
    assert sorted(builder.complete(), key=lambda b: b.phase) == [
        LiveBar("005930", minute("09:00"), 101, 109, 101, 109, 5, "continuous"),
        LiveBar("005930", minute("09:00"), 100, 100, 100, 100, 900, "opening_auction"),
        LiveBar("005930", minute("09:00"), 110, 110, 110, 110, 400, "vi_auction"),
    ]
    builder.add(tick("005930", "09:00:50", 1, 1, "vi_auction"))  # a late print of a closed minute: ignored
    assert builder.late_ticks == 1
    assert builder.drain() == [LiveBar("005930", minute("09:01"), 108, 108, 108, 108, 1)]


@pytest.mark.django_db
def test_store_is_idempotent_and_skips_unknown_codes() -> None:
    from apps.marketdata.models import MinuteBar, Stock

    Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    bars = [
        LiveBar("005930", minute("09:00"), 100, 105, 98, 101, 11),
        LiveBar("999999", minute("09:00"), 1, 1, 1, 1, 1),
    ]
    assert store_bars(bars) == 1
    bars[0].close, bars[0].volume = 102, 12
    assert store_bars(bars) == 1
    row = MinuteBar.objects.get()
    assert (row.source, row.ts, row.open, row.high, row.low, row.close, row.volume) == (
        "ws", minute("09:00"), 100, 105, 98, 102, 12,
    )  # fmt: skip
