"""Circuit breaker stages and the sidecar as pure rules: thresholds exactly at and just inside, the 1-minute
persistence, the halt and the resumption call, once per stage per day, stage 3 closing the day, the
40-minutes-before-close cutoff (stage 3 exempt), the sidecar's once-a-day, grace and cutoff, KOSDAQ's two
conditions."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from fractions import Fraction

import pytest

from apps.core.krx.calendar import KST
from apps.core.krx.circuit import (
    CLOSED,
    DOWN,
    HALTED,
    KOSDAQ,
    KOSPI,
    NORMAL,
    RESUME_CALL,
    UP,
    CircuitBreaker,
    CircuitRules,
    Sidecar,
)

DAY = date(2026, 3, 10)


def at(hh, mm, ss=0, day=DAY):
    return datetime.combine(day, time(hh, mm, ss), tzinfo=KST)


def cb(**kw):
    kw.setdefault("market", KOSPI)
    kw.setdefault("previous_close", "2500.00")
    kw.setdefault("session_open", at(9, 0))
    kw.setdefault("session_close", at(15, 30))
    return CircuitBreaker(**kw)


def hold(breaker, value, start, seconds=60, step=10):
    """Observations of ``value`` every ``step`` s from ``start`` for ``seconds``; the events they trigger."""
    events = []
    for offset in range(0, seconds + 1, step):
        event = breaker.on_index(value, start + timedelta(seconds=offset))
        if event is not None:
            events.append(event)
    return events


def test_stage_one_at_exactly_minus_eight_percent_for_one_minute():
    breaker = cb()
    assert breaker.on_index("2300.00", at(10, 0)) is None
    assert breaker.on_index("2300.00", at(10, 0, 59)) is None
    event = breaker.on_index("2300.00", at(10, 1))
    assert (event.stage, event.value, event.triggered) == (1, Fraction(2300), at(10, 1))
    assert (event.halt_until, event.call_until) == (at(10, 21), at(10, 31))
    assert breaker.state_at(at(10, 0, 59)).kind == NORMAL
    assert breaker.state_at(at(10, 1)).kind == HALTED
    assert breaker.state_at(at(10, 20, 59)).kind == HALTED
    assert breaker.state_at(at(10, 21)).kind == RESUME_CALL
    assert breaker.state_at(at(10, 30, 59)).until == at(10, 31)
    assert breaker.state_at(at(10, 31)).kind == NORMAL


def test_just_inside_the_threshold_or_an_interrupted_minute_does_not_trigger():
    breaker = cb()
    assert hold(breaker, "2300.01", at(10, 0), seconds=300) == []
    breaker = cb()
    assert breaker.on_index("2300", at(10, 0)) is None
    assert breaker.on_index("2310", at(10, 0, 30)) is None  # recovered: the minute restarts
    assert breaker.on_index("2300", at(10, 1)) is None
    assert breaker.on_index("2300", at(10, 1, 59)) is None
    assert breaker.on_index("2300", at(10, 2)).stage == 1


def test_stage_two_needs_fifteen_percent_and_one_percent_below_stage_one_after_the_resumption():
    breaker = cb()
    assert [e.stage for e in hold(breaker, "2130", at(10, 0))] == [1]  # -14.8 %
    # during the halt and the resumption call nothing triggers
    assert hold(breaker, "2000", at(10, 5), seconds=600) == []
    assert hold(breaker, "2000", at(10, 25), seconds=300) == []
    # -15.2 % but only -0.47 % below stage 1's 2,130: no stage 2; stage 1 does not fire again either
    assert hold(breaker, "2120", at(10, 40), seconds=300) == []
    # 2,108.70 = 2,130 x 0.99 exactly: stage 2
    events = hold(breaker, "2108.70", at(11, 0))
    assert [(e.stage, e.halt_until) for e in events] == [(2, at(11, 21))]
    assert breaker.state_at(at(11, 30)).kind == RESUME_CALL


def test_stage_three_closes_the_day_and_each_stage_fires_once():
    breaker = cb()
    hold(breaker, "2300", at(10, 0))
    hold(breaker, "2125", at(11, 0))  # -15 %, -7.6 % below 2,300
    assert len(breaker.events) == 2
    assert hold(breaker, "2000.01", at(12, 0), seconds=300) == []  # -19.9996 %
    events = hold(breaker, "2000", at(13, 0))  # exactly -20 % and -5.9 % below 2,125
    assert [(e.stage, e.halt_until, e.call_until) for e in events] == [(3, None, None)]
    assert breaker.state_at(at(15, 0)).kind == CLOSED
    assert hold(breaker, "1500", at(14, 0), seconds=300) == []
    assert len(breaker.events) == 3


def test_no_stage_one_or_two_in_the_last_forty_minutes_but_stage_three_yes():
    late = cb()
    assert hold(late, "2000", at(14, 49, 30), seconds=600) == []  # the minute would end at 14:50:30
    assert late.cutoff == at(14, 50)
    early = cb()
    assert [e.stage for e in hold(early, "2300", at(14, 48, 50))] == [1]  # ends at 14:49:50, before the cutoff
    staged = cb()
    hold(staged, "2300", at(10, 0))
    hold(staged, "2125", at(11, 0))
    assert [e.stage for e in hold(staged, "2000", at(15, 0))] == [3]


def test_a_later_close_moves_the_cutoff():
    csat = date(2026, 11, 19)
    breaker = cb(session_open=at(10, 0, day=csat), session_close=at(16, 30, day=csat))
    assert breaker.cutoff == at(15, 50, day=csat)
    assert [e.stage for e in hold(breaker, "2300", at(15, 0, day=csat))] == [1]


def test_outside_the_session_nothing_triggers_and_bad_input_is_refused():
    breaker = cb()
    assert hold(breaker, "2000", at(8, 30), seconds=600) == []
    assert hold(breaker, "2000", at(15, 30), seconds=600) == []
    with pytest.raises(ValueError):
        cb(previous_close=0)


def sidecar(**kw):
    kw.setdefault("market", KOSPI)
    kw.setdefault("futures_previous_close", "350.00")
    kw.setdefault("session_open", at(9, 0))
    kw.setdefault("session_close", at(15, 30))
    return Sidecar(**kw)


def feed(side, start, futures, index=None, seconds=60, step=10):
    events = []
    for offset in range(0, seconds + 1, step):
        event = side.on_prices(start + timedelta(seconds=offset), futures, index)
        if event is not None:
            events.append(event)
    return events


def test_kospi_sidecar_exactly_five_percent_for_a_minute_once_a_day():
    up = sidecar()
    events = feed(up, at(10, 0), "367.50")  # +5 %
    assert [(e.direction, e.triggered, e.until) for e in events] == [(UP, at(10, 1), at(10, 6))]
    assert up.active(at(10, 5, 59)) is events[0] and up.active(at(10, 6)) is None
    assert feed(up, at(11, 0), "380", seconds=300) == []  # once a day
    down = sidecar()
    assert [e.direction for e in feed(down, at(10, 0), "332.50")] == [DOWN]  # -5 %
    assert feed(sidecar(), at(10, 0), "367.45", seconds=300) == []  # +4.99 %
    assert feed(sidecar(), at(10, 0), "332.55", seconds=300) == []


def test_sidecar_grace_after_the_open_and_cutoff_before_the_close():
    side = sidecar()
    assert feed(side, at(9, 0), "380", seconds=290) == []  # 09:00-09:04:50
    assert [e.triggered for e in feed(side, at(9, 5), "380")] == [at(9, 6)]
    late = sidecar()
    assert feed(late, at(14, 49, 30), "380", seconds=600) == []
    near = sidecar()
    assert [(e.triggered, e.until) for e in feed(near, at(14, 47), "380")] == [(at(14, 48), at(14, 50))]
    keep = sidecar(rules=replace(CircuitRules(), release_at_cutoff=False))
    assert [e.until for e in feed(keep, at(14, 47), "380")] == [at(14, 53)]


def test_a_direction_change_restarts_the_minute():
    side = sidecar()
    assert side.on_prices(at(10, 0), "368") is None
    assert side.on_prices(at(10, 0, 40), "332") is None  # now down: a new minute
    assert side.on_prices(at(10, 1), "332") is None
    assert side.on_prices(at(10, 1, 40), "332").direction == DOWN


def test_kosdaq_sidecar_needs_both_futures_and_index():
    def kosdaq():
        return sidecar(market=KOSDAQ, futures_previous_close="1500", index_previous_close="1000")

    assert [e.direction for e in feed(kosdaq(), at(10, 0), "1590", "1030")] == [UP]  # +6 % and +3 %
    assert feed(kosdaq(), at(10, 0), "1590", "1029.99", seconds=300) == []
    assert feed(kosdaq(), at(10, 0), "1589.9", "1100", seconds=300) == []
    assert feed(kosdaq(), at(10, 0), "1590", "970", seconds=300) == []  # opposite directions
    assert [e.direction for e in feed(kosdaq(), at(10, 0), "1410", "970")] == [DOWN]
    assert feed(kosdaq(), at(10, 0), "1410", None, seconds=300) == []
    with pytest.raises(ValueError):
        sidecar(market=KOSDAQ)


def test_rules_from_settings(settings):
    settings.CB_STAGE_PCTS = [7.0, 14.0, 21.0]
    settings.CB_HALT_MINUTES = 15
    settings.SIDECAR_KOSPI_FUTURES_PCT = 4.5
    rules = CircuitRules.from_settings()
    assert rules.stage_pcts == (7, 14, 21) and rules.halt_minutes == 15
    assert rules.sidecar_kospi_futures_pct == Fraction(9, 2)
    breaker = cb(rules=rules)
    assert [e.halt_until for e in hold(breaker, "2325", at(10, 0))] == [at(10, 16)]  # -7 %
