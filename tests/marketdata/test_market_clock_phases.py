"""MarketNow's per-venue phases: from the calendar (regular day, CSAT day, closed day, the next trading day) and
from the sandbox's replay clock (a real sandbox moved across the day); ``session`` keeps its meaning."""

from __future__ import annotations

from datetime import date, datetime, time

import httpx
import pytest

from apps.core.krx import phases as P
from apps.core.krx.calendar import KST, KrxCalendar
from apps.marketdata import market_clock
from apps.marketdata.market_clock import CLOSED, CLOSING_AUCTION, CONTINUOUS, PRE_OPEN, MarketNow, calendar_now

DAY = date(2026, 2, 20)  # a regular Friday


def at(hh, mm, ss=0, day=DAY):
    return datetime.combine(day, time(hh, mm, ss), tzinfo=KST)


@pytest.mark.parametrize(
    ("when", "session", "krx", "nxt"),
    [
        (at(8, 10), PRE_OPEN, P.CLOSED, P.NXT_PRE),
        (at(8, 35), PRE_OPEN, P.OPENING_AUCTION, P.NXT_PRE),
        (at(8, 55), PRE_OPEN, P.OPENING_AUCTION, P.CLOSED),
        (at(9, 0, 10), CONTINUOUS, P.CONTINUOUS, P.CLOSED),
        (at(9, 0, 30), CONTINUOUS, P.CONTINUOUS, P.CONTINUOUS),
        (at(15, 20), CLOSING_AUCTION, P.CLOSING_AUCTION, P.CLOSED),
        (at(15, 35), CLOSED, P.POST_CLOSE_PRICE, P.NXT_AFTER),
        (at(16, 10), CLOSED, P.AFTER_HOURS_SINGLE, P.NXT_AFTER),
        (at(19, 0), CLOSED, P.CLOSED, P.NXT_AFTER),
        (at(21, 0), CLOSED, P.CLOSED, P.CLOSED),
    ],
)
def test_calendar_now_per_venue_phases_keep_the_session_field(when, session, krx, nxt):
    market = calendar_now(KrxCalendar(), when)
    assert market.session == session
    assert (market.phase(P.KRX).phase, market.phase(P.NXT).phase) == (krx, nxt)
    assert market.phases[P.KRX] is market.phase(P.KRX)


def test_concurrent_sessions_and_countdowns():
    market = calendar_now(KrxCalendar(), at(8, 35))
    krx = market.phase(P.KRX)
    assert (krx.phases, krx.until, krx.next_phase) == ((P.OPENING_AUCTION, P.PRE_CLOSE_PRICE), at(9, 0), P.CONTINUOUS)
    assert krx.accepted == {"limit", "market", "pre_close_price"}
    # Friday night: both venues point at Monday
    late = calendar_now(KrxCalendar(), at(21, 0))
    monday = date(2026, 2, 23)
    assert (late.phase(P.KRX).until, late.phase(P.KRX).next_phase) == (at(8, 30, day=monday), P.OPENING_AUCTION)
    assert (late.phase(P.NXT).until, late.phase(P.NXT).next_phase) == (at(8, 0, day=monday), P.NXT_PRE)


def test_csat_day_and_closed_day():
    csat = date(2026, 11, 19)
    market = calendar_now(KrxCalendar(), at(9, 45, day=csat))
    assert (market.session, market.phase(P.KRX).phase, market.phase(P.KRX).until) == (
        PRE_OPEN,
        P.OPENING_AUCTION,
        at(10, 0, day=csat),
    )
    assert calendar_now(KrxCalendar(), at(16, 25, day=csat)).phase(P.KRX).phase == P.CLOSING_AUCTION
    saturday = calendar_now(KrxCalendar(), at(10, 0, day=date(2026, 2, 21)))
    assert (saturday.trading_date, saturday.phase(P.KRX).phase, saturday.phase(P.NXT).phase) == (
        None,
        P.CLOSED,
        P.CLOSED,
    )
    assert saturday.phase(P.KRX).accepted == frozenset()


def test_a_hand_built_market_now_derives_its_phases():
    market = MarketNow(now=at(15, 25), trading_date=DAY, session=CLOSING_AUCTION, source="calendar")
    assert market.phases == {}
    assert market.phase(P.KRX).phase == P.CLOSING_AUCTION
    assert market.phase(P.NXT).phase == P.CLOSED
    closed = MarketNow(now=at(10, 0), trading_date=None, session=CLOSED, source="calendar")
    assert closed.phase(P.KRX).phase == P.CLOSED
    assert hash(market) == hash(MarketNow(now=at(15, 25), trading_date=DAY, session=CLOSING_AUCTION, source="calendar"))


def test_krx_after_market_setting_reaches_market_now(settings):
    settings.KRX_AFTER_MARKET_FROM = "2026-09-14"
    market = calendar_now(KrxCalendar(), at(17, 0, day=date(2026, 9, 14)))
    assert market.phase(P.KRX).phase == P.KRX_AFTER_MARKET
    settings.KRX_AFTER_MARKET_FROM = ""
    assert calendar_now(KrxCalendar(), at(17, 0, day=date(2026, 9, 14))).phase(P.KRX).phase == P.AFTER_HOURS_SINGLE


@pytest.fixture(scope="module")
def sandbox():
    from apps.sandbox.server import SandboxThread
    from tests.sandbox.conftest import base_config, shared_market

    cfg = base_config(speed=0.001)  # practically frozen: the phase checks do not race the clock
    with SandboxThread(cfg, shared_market(cfg)) as running:
        yield running


def test_sandbox_clock_gives_per_venue_phases(sandbox, settings):
    from tests.sandbox.conftest import ADMIN

    settings.MARKET_BROKER = "sandbox"
    settings.KIS_ENV = "real"
    settings.SANDBOX_CONNECT_HOST = "127.0.0.1"
    settings.SANDBOX_REAL_REST_PORT = sandbox.ports.real_rest
    url = f"http://127.0.0.1:{sandbox.ports.real_rest}/sandbox/clock"
    seen = {}
    for hhmmss in ("10:00:00", "15:25:00", "16:30:00"):
        answer = httpx.post(url, json={"time": hhmmss}, headers={"X-Sandbox-Admin": ADMIN}, timeout=10)
        assert answer.status_code == 200
        market_clock._sandbox_cache.clear()  # the process reuses an answer for a second; this test moved the clock
        market = market_clock.market_now(KrxCalendar())
        assert market.source == "sandbox"
        assert market.now.strftime("%H:%M") == hhmmss[:5]
        seen[hhmmss] = (market.session, market.phase(P.KRX).phase, market.phase(P.NXT).phase)
    assert seen == {
        "10:00:00": (CONTINUOUS, P.CONTINUOUS, P.CONTINUOUS),
        "15:25:00": (CLOSING_AUCTION, P.CLOSING_AUCTION, P.CLOSED),
        "16:30:00": (CLOSED, P.AFTER_HOURS_SINGLE, P.NXT_AFTER),
    }


def test_sandbox_clock_with_its_own_session_times():
    body = {"session_open": "10:00:00", "session_close": "16:30:00"}
    csat = date(2026, 11, 19)
    phases = market_clock._sandbox_phases(at(16, 25, day=csat), csat, body, None)
    assert phases[P.KRX].phase == P.CLOSING_AUCTION
    iso = {"session_open": at(10, 0, day=csat).isoformat(), "session_close": at(16, 30, day=csat).isoformat()}
    assert market_clock._sandbox_phases(at(9, 50, day=csat), csat, iso, None)[P.KRX].phase == P.OPENING_AUCTION
    # without times and without a calendar: a regular day
    assert market_clock._sandbox_phases(at(16, 25, day=csat), csat, {}, None)[P.KRX].phase == P.AFTER_HOURS_SINGLE


def test_the_sandbox_reported_phase_wins_when_it_differs():
    body = {"day": {"phases": {"KRX": P.OPENING_AUCTION, "NXT": P.CLOSED}, "also": [P.PRE_CLOSE_PRICE]}}
    # 09:05 on a regular day is continuous by the schedule; a sandbox that still runs its opening call wins
    phases = market_clock._sandbox_phases(at(9, 5), DAY, body, None)
    krx = phases[P.KRX]
    assert (krx.phase, krx.also, krx.until, krx.matching, krx.indicative) == (
        P.OPENING_AUCTION,
        (P.PRE_CLOSE_PRICE,),
        None,
        False,
        True,
    )
    assert phases[P.NXT].phase == P.CLOSED
    # agreeing names keep the schedule's countdown; unknown names are ignored
    same = market_clock._sandbox_phases(
        at(10, 0), DAY, {"day": {"phases": {"KRX": P.CONTINUOUS, "NXT": "bogus"}}}, None
    )
    assert (same[P.KRX].until, same[P.NXT].phase) == (at(15, 20), P.CONTINUOUS)
