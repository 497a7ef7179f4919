"""The market day's schedule per venue (krx-rules §3.3/§3.4): every window edge of a regular day, a special day
(CSAT, the first trading day), a closed day, the planned KRX after-market switch and the order kinds per phase."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from apps.core.krx import phases as P
from apps.core.krx.calendar import KrxCalendar
from apps.core.krx.phases import KRX, KST, NXT, day_windows, phase_at, phase_now

DAY = date(2026, 3, 10)  # a regular Tuesday
CSAT = date(2026, 11, 19)  # CSAT day: 10:00-16:30 (special_days.py)
FIRST = date(2026, 1, 2)  # first trading day: 10:00-15:30


def at(hh: int, mm: int, ss: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), tzinfo=KST)


def krx(when: datetime, **kw) -> P.PhaseNow:
    kw.setdefault("session_open", time(9))
    kw.setdefault("session_close", time(15, 30))
    return phase_at(KRX, when, **kw)


def nxt(when: datetime, **kw) -> P.PhaseNow:
    kw.setdefault("session_open", time(9))
    kw.setdefault("session_close", time(15, 30))
    return phase_at(NXT, when, **kw)


ONE_S = timedelta(seconds=1)

# (moment, expected primary phase, expected concurrent phases)
KRX_EDGES = [
    (at(8, 29, 59), P.CLOSED, ()),
    (at(8, 30), P.OPENING_AUCTION, (P.PRE_CLOSE_PRICE,)),
    (at(8, 39, 59), P.OPENING_AUCTION, (P.PRE_CLOSE_PRICE,)),
    (at(8, 40), P.OPENING_AUCTION, ()),
    (at(8, 59, 59), P.OPENING_AUCTION, ()),
    (at(9, 0), P.CONTINUOUS, ()),
    (at(15, 19, 59), P.CONTINUOUS, ()),
    (at(15, 20), P.CLOSING_AUCTION, ()),
    (at(15, 29, 59), P.CLOSING_AUCTION, ()),
    (at(15, 30), P.POST_CLOSE_PRICE, ()),
    (at(15, 39, 59), P.POST_CLOSE_PRICE, ()),
    (at(15, 40), P.POST_CLOSE_PRICE, ()),
    (at(15, 59, 59), P.POST_CLOSE_PRICE, ()),
    (at(16, 0), P.AFTER_HOURS_SINGLE, ()),
    (at(17, 59, 59), P.AFTER_HOURS_SINGLE, ()),
    (at(18, 0), P.CLOSED, ()),
]


@pytest.mark.parametrize(("when", "phase", "also"), KRX_EDGES, ids=[w.strftime("%H%M%S") for w, _, _ in KRX_EDGES])
def test_krx_regular_day_edges(when, phase, also):
    now = krx(when)
    assert (now.venue, now.phase, now.also) == (KRX, phase, also)


NXT_EDGES = [
    (at(7, 59, 59), P.CLOSED),
    (at(8, 0), P.NXT_PRE),
    (at(8, 49, 59), P.NXT_PRE),
    (at(8, 50), P.CLOSED),  # paused while KRX runs its opening auction
    (at(9, 0, 29), P.CLOSED),
    (at(9, 0, 30), P.CONTINUOUS),
    (at(15, 19, 59), P.CONTINUOUS),
    (at(15, 20), P.CLOSED),  # paused while KRX runs its closing auction
    (at(15, 29, 59), P.CLOSED),
    (at(15, 30), P.NXT_AFTER),
    (at(19, 59, 59), P.NXT_AFTER),
    (at(20, 0), P.CLOSED),
]


@pytest.mark.parametrize(("when", "phase"), NXT_EDGES, ids=[w.strftime("%H%M%S") for w, _ in NXT_EDGES])
def test_nxt_regular_day_edges(when, phase):
    now = nxt(when)
    assert (now.venue, now.phase, now.also) == (NXT, phase, ())


def test_since_until_next_phase_on_a_regular_day():
    assert krx(at(10, 0)) == P.PhaseNow(
        KRX, P.CONTINUOUS, at(9, 0), at(15, 20), P.CLOSING_AUCTION, (), matching=True, indicative=False
    )
    before = krx(at(7, 0))
    assert (before.since, before.until, before.next_phase, before.matching) == (
        None,
        at(8, 30),
        P.OPENING_AUCTION,
        False,
    )
    after = krx(at(19, 0))
    assert (after.since, after.until, after.next_phase) == (at(18, 0), None, None)
    assert krx(at(17, 0)).next_phase == P.CLOSED
    pause = nxt(at(8, 55))
    assert (pause.since, pause.until, pause.next_phase) == (at(8, 50), at(9, 0, 30), P.CONTINUOUS)
    assert nxt(at(8, 10)).next_phase == P.CLOSED  # the pre-market is followed by the pause
    assert nxt(at(15, 25)).next_phase == P.NXT_AFTER


def test_matching_and_indicative_flags():
    # opening auction: orders accumulate, no matching; expected price published from 08:50 (10 min before open)
    assert krx(at(8, 49, 59)).indicative is False
    assert krx(at(8, 50)).indicative is True
    assert krx(at(8, 50)).matching is False
    assert krx(at(8, 50), indicative_minutes_before_open=20).indicative is True
    assert krx(at(8, 39, 59), indicative_minutes_before_open=20).indicative is False
    assert krx(at(8, 40), indicative_minutes_before_open=20).indicative is True
    assert krx(at(15, 25)).indicative is True and krx(at(15, 25)).matching is False
    assert krx(at(10, 0)).matching is True and krx(at(10, 0)).indicative is False
    # post-close-price trades: orders from 15:30, matching from 15:40
    assert krx(at(15, 39, 59)).matching is False
    assert krx(at(15, 40)).matching is True
    assert krx(at(16, 30)).matching is False  # after-hours single price matches at its calls only
    # NXT after-market: orders from 15:30, matching from 15:40
    assert nxt(at(15, 39, 59)).matching is False
    assert nxt(at(15, 40)).matching is True
    assert nxt(at(8, 0)).matching is True


def test_closed_day_is_closed_all_day():
    for when in (at(8, 30), at(10, 0), at(16, 0)):
        assert krx(when, session_open=None, session_close=None).phase == P.CLOSED
        assert nxt(when, session_open=None, session_close=None).phase == P.CLOSED
        assert krx(when, session_open=None).accepted == frozenset()


def test_csat_day_shifts_every_krx_window_one_hour():
    kw = {"session_open": time(10), "session_close": time(16, 30)}
    expected = [(start + timedelta(hours=1), phase, also) for start, phase, also in KRX_EDGES]
    for when, phase, also in expected:
        when = when.replace(year=CSAT.year, month=CSAT.month, day=CSAT.day)
        now = krx(when, **kw)
        assert (now.phase, now.also) == (phase, also), when
    assert krx(at(9, 59, 59, CSAT), **kw).phase == P.OPENING_AUCTION
    assert krx(at(9, 50, 0, CSAT), **kw).indicative is True


def test_first_trading_day_shifts_the_pre_open_only():
    kw = {"session_open": time(10), "session_close": time(15, 30)}
    assert krx(at(9, 29, 59, FIRST), **kw).phase == P.CLOSED
    assert krx(at(9, 30, 0, FIRST), **kw).phases == (P.OPENING_AUCTION, P.PRE_CLOSE_PRICE)
    assert krx(at(9, 40, 0, FIRST), **kw).phases == (P.OPENING_AUCTION,)
    assert krx(at(10, 0, 0, FIRST), **kw).phase == P.CONTINUOUS
    assert krx(at(15, 20, 0, FIRST), **kw).phase == P.CLOSING_AUCTION
    assert krx(at(16, 0, 0, FIRST), **kw).phase == P.AFTER_HOURS_SINGLE
    windows = day_windows(FIRST, KRX, open_time=time(10))
    continuous = next(w for w in windows if w.phase == P.CONTINUOUS)
    assert (continuous.start, continuous.end) == (at(10, 0, 0, FIRST), at(15, 20, 0, FIRST))


def test_nxt_does_not_shift_unless_configured():
    kw = {"session_open": time(10), "session_close": time(16, 30)}
    assert nxt(at(8, 0, 0, CSAT), **kw).phase == P.NXT_PRE
    assert nxt(at(9, 0, 30, CSAT), **kw).phase == P.CONTINUOUS
    assert nxt(at(15, 30, 0, CSAT), **kw).phase == P.NXT_AFTER
    shifted = {**kw, "nxt_shift_with_krx": True}
    assert nxt(at(8, 59, 59, CSAT), **shifted).phase == P.CLOSED
    assert nxt(at(9, 0, 0, CSAT), **shifted).phase == P.NXT_PRE
    assert nxt(at(10, 0, 30, CSAT), **shifted).phase == P.CONTINUOUS
    assert nxt(at(16, 19, 59, CSAT), **shifted).phase == P.CONTINUOUS
    assert nxt(at(16, 20, 0, CSAT), **shifted).phase == P.CLOSED
    assert nxt(at(16, 30, 0, CSAT), **shifted).phase == P.NXT_AFTER
    assert nxt(at(20, 59, 59, CSAT), **shifted).phase == P.NXT_AFTER


def test_krx_after_market_is_off_by_default_and_starts_on_its_date():
    assert krx(at(17, 0, 0, date(2026, 9, 14))).phase == P.AFTER_HOURS_SINGLE
    switched = {"krx_after_market_from": date(2026, 9, 14)}
    assert krx(at(17, 0, 0, date(2026, 9, 11)), **switched).phase == P.AFTER_HOURS_SINGLE
    assert krx(at(17, 0, 0, date(2026, 9, 14)), **switched).phase == P.KRX_AFTER_MARKET
    assert krx(at(19, 59, 59, date(2026, 9, 14)), **switched).phase == P.KRX_AFTER_MARKET
    assert krx(at(20, 0, 0, date(2026, 9, 14)), **switched).phase == P.CLOSED
    assert krx(at(16, 0, 0, date(2026, 9, 14)), **switched).matching is True


def test_after_hours_calls_every_ten_minutes():
    window = next(w for w in day_windows(DAY, KRX) if w.phase == P.AFTER_HOURS_SINGLE)
    calls = P.after_hours_call_times(window)
    assert calls[0] == at(16, 10) and calls[-1] == at(18, 0) and len(calls) == 12
    with pytest.raises(ValueError):
        P.after_hours_call_times(day_windows(DAY, KRX)[0])


KINDS = [
    (KRX, P.CLOSED, set()),
    (KRX, P.HALTED, set()),
    (KRX, P.OPENING_AUCTION, {"limit", "market"}),
    (KRX, P.PRE_CLOSE_PRICE, {"pre_close_price"}),
    (KRX, P.CONTINUOUS, {"limit", "market"}),
    (KRX, P.VI_AUCTION, {"limit", "market"}),
    (KRX, P.CLOSING_AUCTION, {"limit", "market"}),
    (KRX, P.POST_CLOSE_PRICE, {"post_close_price"}),
    (KRX, P.AFTER_HOURS_SINGLE, {"after_hours_single"}),
    (KRX, P.NXT_PRE, set()),
    (KRX, P.NXT_AFTER, set()),
    (NXT, P.CLOSED, set()),
    (NXT, P.HALTED, set()),
    (NXT, P.NXT_PRE, {"limit"}),
    (NXT, P.CONTINUOUS, {"limit", "market"}),
    (NXT, P.NXT_AFTER, {"limit"}),
    (NXT, P.OPENING_AUCTION, set()),
    (NXT, P.CLOSING_AUCTION, set()),
    (NXT, P.AFTER_HOURS_SINGLE, set()),
    (NXT, P.PRE_CLOSE_PRICE, set()),
]


@pytest.mark.parametrize(("venue", "phase", "kinds"), KINDS)
def test_accepted_kinds(venue, phase, kinds):
    assert P.accepted_kinds(venue, phase) == frozenset(kinds)


def test_accepted_kinds_now_unions_concurrent_sessions_and_refuses_sor():
    assert krx(at(8, 35)).accepted == {"limit", "market", "pre_close_price"}
    assert krx(at(8, 45)).accepted == {"limit", "market"}
    assert nxt(at(8, 55)).accepted == frozenset()
    with pytest.raises(ValueError):
        P.accepted_kinds(P.SOR, P.CONTINUOUS)
    with pytest.raises(ValueError):
        phase_at(P.SOR, at(10, 0), session_open=time(9))
    assert set(P.KIS_ORDER_CODES) == set(P.ORDER_KINDS)


def test_phase_now_uses_the_calendar_and_looks_ahead_to_the_next_trading_day():
    calendar = KrxCalendar()
    cfg = P.ScheduleSettings()
    assert phase_now(KRX, at(16, 19, 59, CSAT), calendar, settings=cfg).phase == P.CONTINUOUS
    csat = phase_now(KRX, at(16, 20, 0, CSAT), calendar, settings=cfg)
    assert (csat.phase, csat.until) == (P.CLOSING_AUCTION, at(16, 30, 0, CSAT))  # the CSAT close is 16:30
    # Friday evening -> Monday's opening auction
    friday = phase_now(KRX, at(19, 0, 0, date(2026, 3, 13)), calendar, settings=cfg)
    assert (friday.phase, friday.until, friday.next_phase) == (
        P.CLOSED,
        at(8, 30, 0, date(2026, 3, 16)),
        P.OPENING_AUCTION,
    )
    # a holiday (2026-03-02, substitute for March 1st) -> the next day
    holiday = phase_now(NXT, at(12, 0, 0, date(2026, 3, 2)), calendar, settings=cfg)
    assert (holiday.phase, holiday.until, holiday.next_phase) == (P.CLOSED, at(8, 0, 0, date(2026, 3, 3)), P.NXT_PRE)
    # the first trading day of 2026 (10:00 open): the calendar gives the open, the pre-open moves with it
    first = phase_now(KRX, at(9, 45, 0, FIRST), calendar, settings=cfg)
    assert (first.phase, first.since, first.until) == (P.OPENING_AUCTION, at(9, 30, 0, FIRST), at(10, 0, 0, FIRST))


def test_schedule_settings_read_from_django_settings(settings):
    settings.KRX_AFTER_MARKET_FROM = "2026-09-14"
    settings.KRX_INDICATIVE_MINUTES_BEFORE_OPEN = 20
    settings.NXT_SHIFT_WITH_KRX = True
    assert P.schedule_settings() == P.ScheduleSettings(date(2026, 9, 14), 20, True)
    settings.KRX_AFTER_MARKET_FROM = ""
    assert P.schedule_settings().krx_after_market_from is None


def test_as_json():
    assert krx(at(8, 35)).as_json() == {
        "venue": "KRX",
        "phase": "opening_auction",
        "since": "2026-03-10T08:30:00+09:00",
        "until": "2026-03-10T09:00:00+09:00",
        "next_phase": "continuous",
        "also": ["pre_close_price"],
        "matching": False,
        "indicative": False,
        "accepted": ["limit", "market", "pre_close_price"],
    }
    assert krx(at(7, 0), session_open=None).as_json()["since"] is None
