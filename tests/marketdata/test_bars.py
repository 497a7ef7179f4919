"""The minute bars a day has by phase (``apps.marketdata.bars``), their storage with the phase, and resampling
that never mixes phases: auction prints are not continuous bars, off-hours volume stays labelled."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from apps.core.krx.calendar import KST, KrxCalendar
from apps.marketdata.bars import (
    BROKER_CHART_PHASES,
    LIVE_PHASES,
    after_hours_call_minutes,
    broker_bar_phase,
    completed_bars,
    completeness,
    expected_minute_bars,
)
from apps.marketdata.models import MinuteBar, Stock
from apps.marketdata.resample import resample_minutes
from apps.marketdata.selectors import minute_bars_for
from apps.marketdata.services import minute_bars_upsert

DAY = date(2026, 2, 20)  # a regular Friday
FIRST_DAY = date(2026, 1, 2)  # the first trading day of the year opens at 10:00
CSAT = date(2026, 11, 19)  # CSAT day: 10:00-16:30


def at(day: date, hh: int, mm: int) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=KST)


def session(day: date):
    return KrxCalendar().session(day)


def test_broker_chart_of_a_regular_day_has_380_continuous_minutes_and_the_closing_print():
    slots = expected_minute_bars(session(DAY))

    assert len(slots) == 381
    assert (slots[0].ts, slots[0].phase) == (at(DAY, 9, 0), "continuous")
    assert (slots[-2].ts, slots[-2].phase) == (at(DAY, 15, 19), "continuous")
    assert (slots[-1].ts, slots[-1].phase) == (at(DAY, 15, 30), "closing_auction")
    assert [s.phase for s in slots].count("closing_auction") == 1


def test_live_bars_add_the_opening_print_before_the_first_continuous_minute():
    slots = expected_minute_bars(session(DAY), phases=LIVE_PHASES)

    assert len(slots) == 382
    assert [(s.ts, s.phase) for s in slots[:2]] == [(at(DAY, 9, 0), "opening_auction"), (at(DAY, 9, 0), "continuous")]


@pytest.mark.parametrize(
    ("day", "count", "first", "last"),
    [(FIRST_DAY, 321, time(10, 0), time(15, 30)), (CSAT, 381, time(10, 0), time(16, 30))],
)
def test_expected_bars_follow_the_calendar_on_special_days(day, count, first, last):
    slots = expected_minute_bars(session(day), phases=BROKER_CHART_PHASES)

    assert (len(slots), slots[0].ts.time(), slots[-1].ts.time(), slots[-1].phase) == (
        count, first, last, "closing_auction",
    )  # fmt: skip


def test_after_hours_single_price_calls_every_ten_minutes_from_1610_to_1800():
    calls = after_hours_call_minutes(session(DAY))

    assert calls == [at(DAY, 16, 10) + timedelta(minutes=10 * i) for i in range(12)]
    with_calls = expected_minute_bars(session(DAY), phases=(*BROKER_CHART_PHASES, "after_hours_single"))
    assert len(with_calls) == 381 + 12 and with_calls[-1].ts == at(DAY, 18, 0)
    # CSAT day moves them with the close.
    assert after_hours_call_minutes(session(CSAT))[0] == at(CSAT, 17, 10)


def test_broker_bar_phase_by_minute():
    s = session(DAY)

    assert broker_bar_phase(at(DAY, 9, 0), s) == "continuous"
    assert broker_bar_phase(at(DAY, 15, 19), s) == "continuous"
    assert broker_bar_phase(at(DAY, 15, 30), s) == "closing_auction"
    assert broker_bar_phase(at(DAY, 15, 20), s) is None  # inside the closing auction: no print yet
    assert broker_bar_phase(at(DAY, 8, 59), s) is None
    assert broker_bar_phase(at(DAY, 16, 10), s) is None  # the broker's chart has no after-hours bars


def test_completed_bars_wait_for_the_minute_to_end_and_for_the_closing_print():
    s = session(DAY)

    assert completed_bars(s, at(DAY, 9, 0)) == []
    assert len(completed_bars(s, at(DAY, 9, 1))) == 1
    assert len(completed_bars(s, at(DAY, 15, 29))) == 380
    assert completed_bars(s, at(DAY, 15, 30))[-1].phase == "closing_auction"
    # The live opening print counts as soon as it printed.
    assert [b.phase for b in completed_bars(s, at(DAY, 9, 0), phases=LIVE_PHASES)] == ["opening_auction"]


def test_completeness_names_the_missing_bars_and_counts_off_hours_ones_apart():
    s = session(DAY)
    stored = [(slot.ts, slot.phase) for slot in expected_minute_bars(s) if slot.ts != at(DAY, 10, 0)]
    stored += [(at(DAY, 15, 40), "post_close_price"), (at(DAY, 16, 10), "after_hours_single")]

    result = completeness("005930", s, stored, phases=BROKER_CHART_PHASES, now=at(DAY, 23, 0))

    assert (result.expected, result.stored, result.extra_off_hours, result.complete) == (381, 380, 2, False)
    assert [(m.ts, m.phase) for m in result.missing] == [(at(DAY, 10, 0), "continuous")]


def _bar(ts, price, volume, phase=None):
    row = {"ts": ts, "open": price, "high": price + 10, "low": price - 10, "close": price, "volume": volume}
    if phase:
        row["phase"] = phase
    return row


def test_resampling_keeps_auction_prints_and_off_hours_sessions_apart():
    s = session(DAY)
    rows = [
        _bar(at(DAY, 9, 0), 70_000, 5_000, "opening_auction"),
        *[_bar(at(DAY, 9, m), 70_100 + m, 100) for m in range(5)],  # continuous, no phase given
        _bar(at(DAY, 15, 30), 71_000, 9_000, "closing_auction"),
        _bar(at(DAY, 15, 40), 71_000, 30, "post_close_price"),
        _bar(at(DAY, 15, 43), 71_000, 20, "post_close_price"),
        _bar(at(DAY, 16, 10), 71_200, 7, "after_hours_single"),
        _bar(at(DAY, 16, 20), 71_300, 3, "after_hours_single"),
    ]

    bars = resample_minutes(rows, 5, {DAY: s.open}, {DAY: s.close})

    assert [(b["ts"], b["phase"], b["open"], b["close"], b["volume"]) for b in bars] == [
        (at(DAY, 9, 0), "opening_auction", 70_000, 70_000, 5_000),
        (at(DAY, 9, 0), "continuous", 70_100, 70_104, 500),
        (at(DAY, 15, 30), "closing_auction", 71_000, 71_000, 9_000),
        (at(DAY, 15, 40), "post_close_price", 71_000, 71_000, 50),
        (at(DAY, 16, 10), "after_hours_single", 71_200, 71_200, 7),
        (at(DAY, 16, 20), "after_hours_single", 71_300, 71_300, 3),
    ]
    # Volume by phase is what went in: nothing of the auctions or off-hours leaks into continuous bars.
    phases = ("opening_auction", "continuous", "closing_auction", "post_close_price", "after_hours_single")
    total = {phase: sum(r["volume"] for r in rows if r.get("phase", "continuous") == phase) for phase in phases}
    assert {p: sum(b["volume"] for b in bars if b["phase"] == p) for p in total} == total


def test_an_unlabelled_bar_at_the_close_is_the_closing_print():
    s = session(DAY)
    rows = [_bar(at(DAY, 15, 19), 70_000, 10), _bar(at(DAY, 15, 30), 70_500, 900)]

    bars = resample_minutes(rows, 60, {DAY: s.open}, {DAY: s.close})

    assert [(b["ts"].time(), b["phase"], b["volume"]) for b in bars] == [
        (time(15, 0), "continuous", 10),
        (time(15, 30), "closing_auction", 900),
    ]


@pytest.mark.django_db
def test_one_minute_stores_the_opening_print_and_continuous_trades_as_two_bars():
    Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)

    class Row:
        def __init__(self, ts, volume, phase=None):
            self.code, self.ts, self.volume = "005930", ts, volume
            self.open = self.high = self.low = self.close = 70_000
            if phase:
                self.phase = phase

    bars = [Row(at(DAY, 9, 0), 5_000, "opening_auction"), Row(at(DAY, 9, 0), 120)]
    assert minute_bars_upsert(source="ws", bars=bars) == 2
    assert minute_bars_upsert(source="ws", bars=[Row(at(DAY, 9, 0), 130)]) == 1  # the same bar again: updated

    stored = minute_bars_for(code="005930", start=at(DAY, 0, 0), end=at(DAY, 23, 59), source="ws")
    assert [(r["ts"], r["phase"], r["volume"]) for r in stored] == [
        (at(DAY, 9, 0), "opening_auction", 5_000),
        (at(DAY, 9, 0), "continuous", 130),
    ]
    assert MinuteBar.objects.count() == 2
    regular = minute_bars_for(
        code="005930", start=at(DAY, 0, 0), end=at(DAY, 23, 59), source="ws", phases=["continuous"]
    )
    assert [r["volume"] for r in regular] == [130]


@pytest.mark.django_db
def test_bars_api_labels_each_bar_with_its_phase(api_client):
    stock = Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    bars = [
        (at(DAY, 9, 0), "opening_auction", 900),
        (at(DAY, 9, 0), "continuous", 10),
        (at(DAY, 9, 1), "continuous", 20),
        (at(DAY, 15, 30), "closing_auction", 700),
    ]
    for ts, phase, volume in bars:
        MinuteBar.objects.create(stock=stock, ts=ts, open=1, high=1, low=1, close=1, volume=volume, source="kis",
                                 phase=phase)  # fmt: skip

    one = api_client.get("/api/marketdata/bars", {"code": "005930", "interval": "1m", "from": "2026-02-20",
                                                  "to": "2026-02-20"})  # fmt: skip
    five = api_client.get("/api/marketdata/bars", {"code": "005930", "interval": "5m", "from": "2026-02-20",
                                                   "to": "2026-02-20"})  # fmt: skip

    assert one.status_code == five.status_code == 200
    assert [(b["time"][11:16], b["phase"], b["volume"]) for b in one.json()] == [
        ("09:00", "opening_auction", 900), ("09:00", "continuous", 10), ("09:01", "continuous", 20),
        ("15:30", "closing_auction", 700),
    ]  # fmt: skip
    assert [(b["time"][11:16], b["phase"], b["volume"]) for b in five.json()] == [
        ("09:00", "opening_auction", 900), ("09:00", "continuous", 30), ("15:30", "closing_auction", 700),
    ]  # fmt: skip


def test_a_bar_without_a_phase_takes_the_one_its_minute_falls_in():
    from apps.marketdata.bars import phase_by_time

    s = session(DAY)
    cases = {
        (8, 30): "pre_close_price", (8, 45): "continuous", (9, 0): "continuous", (15, 19): "continuous",
        (15, 30): "closing_auction", (15, 35): "continuous", (15, 40): "post_close_price", (15, 59): "post_close_price",
        (16, 10): "after_hours_single", (18, 0): "after_hours_single", (18, 1): "continuous",
    }  # fmt: skip
    assert {hm: phase_by_time(at(DAY, *hm), s) for hm in cases} == cases
    assert phase_by_time(at(CSAT, 16, 30), session(CSAT)) == "closing_auction"
    assert phase_by_time(at(DAY, 16, 10), None) == "continuous"


@pytest.mark.django_db
def test_live_bars_without_a_phase_are_labelled_by_their_minute_when_stored():
    Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)

    class LiveBar:  # the feed's live bars carry no phase
        def __init__(self, ts):
            self.code, self.ts, self.volume = "005930", ts, 5
            self.open = self.high = self.low = self.close = 70_000

    stored = [at(DAY, 10, 0), at(DAY, 15, 30), at(DAY, 15, 41), at(DAY, 16, 20)]
    minute_bars_upsert(source="ws", bars=[LiveBar(ts) for ts in stored])

    rows = minute_bars_for(code="005930", start=at(DAY, 0, 0), end=at(DAY, 23, 59), source="ws")
    assert [(r["ts"].astimezone(KST).time(), r["phase"]) for r in rows] == [
        (time(10, 0), "continuous"), (time(15, 30), "closing_auction"), (time(15, 41), "post_close_price"),
        (time(16, 20), "after_hours_single"),
    ]  # fmt: skip
