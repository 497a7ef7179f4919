"""The KRX calendar: every 2025-2026 special day as KRX and the government announced it (each case names its
source), where exchange_calendars 4.13.2 lags, the layers (package < broker < override), and shifted sessions
moving everything derived from them (minute labels, the closing auction, the session states, order hours)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pandas as pd
import pytest

from apps.core.krx.calendar import KST, BrokerDay, KrxCalendar, Override, _xkrx
from apps.marketdata.collection import completed_minutes
from apps.marketdata.market_clock import CLOSED, CLOSING_AUCTION, CONTINUOUS, PRE_OPEN, calendar_now

CLOSED_DAY = None

# (date, expected (open, close) or CLOSED_DAY). The source of each is the announcement quoted in the comment.
SPECIAL_DAYS_2025_2026 = [
    (date(2025, 1, 1), CLOSED_DAY),  # New Year's Day: hola0829.tistory.com 2025 KRX holiday list
    # kukinews.com kuk202412170092 (2024-12-17, KRX): the 2025 market opens 2025-01-02 at 10:00, closes 15:30
    (date(2025, 1, 2), (time(10, 0), time(15, 30))),
    (date(2025, 1, 27), CLOSED_DAY),  # temporary holiday: m.segye.com/ampView/20250117509139 (2025-01-17, KRX)
    (date(2025, 1, 28), CLOSED_DAY),  # Seollal: hola0829.tistory.com 2025 list
    (date(2025, 1, 29), CLOSED_DAY),  # Seollal: same list
    (date(2025, 1, 30), CLOSED_DAY),  # Seollal: same list
    (date(2025, 3, 3), CLOSED_DAY),  # substitute for March 1st: same list
    (date(2025, 5, 1), CLOSED_DAY),  # Workers' Day: same list; KRX rule (global.krx.co.kr)
    (date(2025, 5, 5), CLOSED_DAY),  # Children's Day and Buddha's Birthday: same list
    (date(2025, 5, 6), CLOSED_DAY),  # substitute holiday: same list
    (date(2025, 6, 3), CLOSED_DAY),  # presidential election: ajunews.com/view/20250520140948096 (2025-05-20, KRX)
    (date(2025, 6, 6), CLOSED_DAY),  # Memorial Day: hola0829.tistory.com 2025 list
    (date(2025, 8, 15), CLOSED_DAY),  # Liberation Day: same list
    (date(2025, 10, 3), CLOSED_DAY),  # National Foundation Day: same list
    (date(2025, 10, 6), CLOSED_DAY),  # Chuseok: same list
    (date(2025, 10, 7), CLOSED_DAY),  # Chuseok: same list
    (date(2025, 10, 8), CLOSED_DAY),  # Chuseok substitute holiday: fdn7500.tistory.com/4054
    (date(2025, 10, 9), CLOSED_DAY),  # Hangul Day: hola0829.tistory.com 2025 list
    # CSAT day, every time one hour later: edaily.co.kr newsId=05520246642365064 (2025-11-12, KRX) and
    # donga.com 20251113/132759579 (10:00-16:30)
    (date(2025, 11, 13), (time(10, 0), time(16, 30))),
    (date(2025, 12, 25), CLOSED_DAY),  # Christmas: hola0829.tistory.com 2025 list
    (date(2025, 12, 31), CLOSED_DAY),  # year-end closure: wowtv.co.kr articleId=2025121825891 (2025-12-18, KRX)
    (date(2026, 1, 1), CLOSED_DAY),  # New Year's Day: b83.nicesongtoyou.com/?p=10145 2026 KRX list
    # wowtv.co.kr articleId=2025121825891 (2025-12-18, KRX): the first 2026 session opens 10:00, close unchanged
    (date(2026, 1, 2), (time(10, 0), time(15, 30))),
    (date(2026, 2, 16), CLOSED_DAY),  # Seollal: 2026 KRX list (nicesongtoyou), fdn7500.tistory.com/4166
    (date(2026, 2, 17), CLOSED_DAY),  # Seollal: same
    (date(2026, 2, 18), CLOSED_DAY),  # Seollal: same
    (date(2026, 3, 2), CLOSED_DAY),  # substitute for March 1st (a Sunday): same
    (date(2026, 5, 1), CLOSED_DAY),  # Workers' Day: same
    (date(2026, 5, 5), CLOSED_DAY),  # Children's Day: same
    (date(2026, 5, 25), CLOSED_DAY),  # substitute for Buddha's Birthday (a Sunday): same
    (date(2026, 6, 3), CLOSED_DAY),  # 9th local elections: 2026 KRX list; fdn7500.tistory.com/4166 (2026-01-07)
    # Constitution Day is a public holiday again from 2026: m.segye.com/view/20260204501613 (2026-02-04, cabinet
    # approval of the amended Public Holidays Act), gndnews1.com no=1166215 (2026-02-05, 인사혁신처)
    (date(2026, 7, 17), CLOSED_DAY),
    (date(2026, 8, 17), CLOSED_DAY),  # substitute for Liberation Day (a Saturday): 2026 KRX list
    (date(2026, 9, 24), CLOSED_DAY),  # Chuseok: same
    (date(2026, 9, 25), CLOSED_DAY),  # Chuseok: same
    (date(2026, 10, 5), CLOSED_DAY),  # substitute for National Foundation Day (a Saturday): same
    (date(2026, 10, 9), CLOSED_DAY),  # Hangul Day: same
    # CSAT day: the 2027 CSAT is on 2026-11-19 (news1.kr society/education/5511338, the ministry's 2024-08-15 plan);
    # KRX shifts every CSAT day to 10:00-16:30 (yna 2019, businesspost 2021, khan 2022, etoday 2023, edaily 2025)
    (date(2026, 11, 19), (time(10, 0), time(16, 30))),
    (date(2026, 12, 25), CLOSED_DAY),  # Christmas: 2026 KRX list
    (date(2026, 12, 31), CLOSED_DAY),  # year-end closure: 2026 KRX list; KRX rule (global.krx.co.kr)
]

# The dates where exchange_calendars 4.13.2 (the pinned release) is wrong: it opens on the two 2026 closures
# and keeps 09:00-15:30 on both CSAT days.
XKRX_LAGS = {date(2025, 11, 13), date(2026, 6, 3), date(2026, 7, 17), date(2026, 11, 19)}


def _hours(session):
    return None if session is None else (session.open.time(), session.close.time())


@pytest.mark.parametrize(("day", "expected"), SPECIAL_DAYS_2025_2026, ids=[str(d) for d, _ in SPECIAL_DAYS_2025_2026])
def test_every_verified_special_day(day, expected):
    assert _hours(KrxCalendar().session(day)) == expected


def test_the_special_days_are_the_only_irregular_weekdays_of_2025_and_2026():
    notes = KrxCalendar().notes_between(date(2025, 1, 1), date(2026, 12, 31))

    assert {n.day: ((n.open, n.close) if not n.closed else None) for n in notes} == dict(SPECIAL_DAYS_2025_2026)


def test_exchange_calendars_lags_krx_announcements_exactly_on_four_days():
    """Checked against the pinned exchange_calendars: everywhere else in 2025-2026 the two agree."""
    import exchange_calendars

    xkrx = _xkrx()
    ours = KrxCalendar()
    differ = set()
    day = date(2025, 1, 1)
    while day <= date(2026, 12, 31):
        label = pd.Timestamp(day)
        theirs = None
        if xkrx.is_session(label):
            theirs = (
                xkrx.session_open(label).tz_convert(KST).time(),
                xkrx.session_close(label).tz_convert(KST).time(),
            )
        if theirs != _hours(ours.session(day)):
            differ.add(day)
        day += timedelta(days=1)

    assert exchange_calendars.__version__ == "4.13.2"
    assert differ == XKRX_LAGS


def test_csat_day_moves_every_derived_time():
    session = KrxCalendar().session(date(2026, 11, 19))
    labels = session.minute_labels()

    # 380 continuous minutes 10:00..16:19 plus the 16:30 closing print, as on a regular day one hour earlier.
    assert (len(labels), labels[0].time(), labels[-2].time(), labels[-1].time()) == (
        381, time(10, 0), time(16, 19), time(16, 30),
    )  # fmt: skip
    assert session.auction_start.time() == time(16, 20)
    at = {t: calendar_now(KrxCalendar(), datetime.combine(date(2026, 11, 19), t, tzinfo=KST)).session for t in (
        time(9, 30), time(10, 0), time(16, 19), time(16, 20), time(16, 29), time(16, 30))}  # fmt: skip
    assert at == {
        time(9, 30): PRE_OPEN, time(10, 0): CONTINUOUS, time(16, 19): CONTINUOUS, time(16, 20): CLOSING_AUCTION,
        time(16, 29): CLOSING_AUCTION, time(16, 30): CLOSED,
    }  # fmt: skip
    # At 16:31 every minute including the closing print is complete; at 09:59 none is.
    done = completed_minutes(session, datetime(2026, 11, 19, 16, 31, tzinfo=KST))
    assert len(done) == 381
    assert completed_minutes(session, datetime(2026, 11, 19, 9, 59, tzinfo=KST)) == []


def test_late_open_on_the_first_trading_day():
    session = KrxCalendar().session(date(2026, 1, 2))

    assert (len(session.minute_labels()), session.minute_labels()[0].time(), session.auction_start.time()) == (
        321, time(10, 0), time(15, 20),
    )  # fmt: skip
    assert calendar_now(KrxCalendar(), datetime(2026, 1, 2, 9, 30, tzinfo=KST)).session == PRE_OPEN


def test_broker_answer_wins_over_the_package_and_an_override_wins_over_both():
    tuesday = date(2026, 3, 10)  # a regular session in the package layer
    election = date(2026, 6, 3)  # closed in the package layer

    broker = KrxCalendar(broker_days={tuesday: BrokerDay(is_open=False), election: BrokerDay(is_open=True)})
    assert broker.session(tuesday) is None
    assert _hours(broker.session(election)) == (time(9, 0), time(15, 30))  # opened: the regular times
    assert broker.deciding_source(tuesday) == "broker"

    overridden = KrxCalendar(
        overrides={tuesday: Override(closed=False), election: Override(closed=True, note="선거일")},
        broker_days={tuesday: BrokerDay(is_open=False), election: BrokerDay(is_open=True)},
    )
    assert _hours(overridden.session(tuesday)) == (time(9, 0), time(15, 30))
    assert overridden.session(election) is None
    assert overridden.deciding_source(election) == "override"

    # The broker opening a CSAT day keeps the package's shifted times; an override's own times win.
    csat = date(2026, 11, 19)
    assert _hours(KrxCalendar(broker_days={csat: BrokerDay(True)}).session(csat)) == (time(10, 0), time(16, 30))
    late = KrxCalendar(
        overrides={csat: Override(closed=False, open_time=time(11, 0))}, broker_days={csat: BrokerDay(True)}
    )
    assert _hours(late.session(csat)) == (time(11, 0), time(16, 30))


def test_disagreements_name_each_source():
    tuesday, election, csat = date(2026, 3, 10), date(2026, 6, 3), date(2026, 11, 19)
    calendar = KrxCalendar(
        overrides={election: Override(closed=True)},
        broker_days={tuesday: BrokerDay(False), election: BrokerDay(True), csat: BrokerDay(True)},
    )

    found = {
        d.day: (d.package_open, d.broker_open, d.override_open, d.effective_open) for d in calendar.disagreements()
    }

    assert found == {tuesday: (True, False, None, False), election: (False, True, False, False)}


def test_notes_give_the_reason_and_the_deciding_source():
    calendar = KrxCalendar(
        overrides={date(2026, 5, 20): Override(closed=True, note="시스템 점검")},
        broker_days={date(2026, 5, 21): BrokerDay(False)},
    )

    notes = {
        n.day: (n.closed, n.open, n.reason, n.source)
        for n in calendar.notes_between(date(2026, 5, 18), date(2026, 6, 5))
    }

    assert notes == {
        date(2026, 5, 20): (True, None, "시스템 점검", "override"),
        date(2026, 5, 21): (True, None, "휴장 (broker: opnd_yn=N)", "broker"),
        date(2026, 5, 25): (True, None, "부처님오신날 대체공휴일 substitute holiday", "announced"),
        date(2026, 6, 3): (True, None, "제9회 전국동시지방선거 local elections", "announced"),
    }


def test_years_beyond_the_table_use_exchange_calendars_then_the_weekday_rule():
    calendar = KrxCalendar()

    assert calendar.deciding_source(date(2027, 1, 4)) == "exchange_calendars"
    assert _hours(calendar.session(date(2027, 1, 4))) == (time(10, 0), time(15, 30))  # XKRX: first session of 2027
    assert calendar.session(date(2027, 2, 8)) is None  # XKRX: Seollal 2027
    assert calendar.session(date(2027, 2, 10)) is not None
    assert _hours(calendar.session(date(2028, 3, 7))) == (time(9, 0), time(15, 30))  # beyond XKRX: a weekday
    assert calendar.session(date(2028, 3, 4)) is None  # a Saturday


@pytest.mark.django_db
def test_the_seeded_csat_override_is_gone_and_the_package_layer_has_the_day():
    from apps.marketdata.models import CalendarOverride
    from apps.marketdata.selectors import krx_calendar

    assert not CalendarOverride.objects.filter(date=date(2025, 11, 13)).exists()
    calendar = krx_calendar()
    assert _hours(calendar.session(date(2025, 11, 13))) == (time(10, 0), time(16, 30))
    assert calendar.deciding_source(date(2025, 11, 13)) == "announced"


@pytest.mark.django_db
def test_order_hours_in_the_refusal_follow_the_shifted_session(settings):
    from apps.marketdata.market_clock import MarketNow
    from apps.marketdata.selectors import krx_calendar
    from apps.trading.orders.exceptions import MarketClosed
    from apps.trading.orders.placement import _session_by_phase

    settings.PAPER_MARKET_CLOSED = "reject"
    kwargs = dict(calendar=krx_calendar(), order_type="LIMIT", route="KRX", nxt_eligible=False, snapshot=None)
    before_csat_auction = MarketNow(
        now=datetime(2026, 11, 19, 9, 20, tzinfo=KST), trading_date=date(2026, 11, 19), session=PRE_OPEN,
        source="calendar",
    )  # fmt: skip
    with pytest.raises(MarketClosed) as err:
        _session_by_phase(before_csat_auction, **kwargs)
    assert "LIMIT orders are accepted from 09:30 KST (regular session 10:00-16:30 KST)" in err.value.message

    after_the_day = MarketNow(
        now=datetime(2026, 6, 2, 20, 30, tzinfo=KST), trading_date=date(2026, 6, 2), session=CLOSED, source="calendar"
    )
    with pytest.raises(MarketClosed) as err:
        _session_by_phase(after_the_day, **kwargs)
    assert "accepted from 08:30 KST on 2026-06-04 (regular session 09:00-15:30 KST on 2026-06-04)" in err.value.message


@pytest.mark.django_db
def test_the_brokers_answers_and_derived_base_prices_are_read_only_in_the_admin(admin_client):
    from apps.marketdata.models import BrokerCalendarDay, ReferencePrice, Stock

    day = BrokerCalendarDay.objects.create(
        date=date(2026, 3, 10), is_open=False, business_day=False, trading_day=False, settlement_day=False
    )
    stock = Stock.objects.create(code="005930", name="삼성전자", market="KOSPI")
    base = ReferencePrice.objects.create(stock=stock, trading_date=date(2026, 3, 10), price=70_000, source="live_tick")

    for model, row in (("brokercalendarday", day), ("referenceprice", base)):
        assert admin_client.get(f"/admin/marketdata/{model}/").status_code == 200
        assert admin_client.get(f"/admin/marketdata/{model}/add/").status_code == 403
        changed = admin_client.post(f"/admin/marketdata/{model}/{row.pk}/change/", {"price": "1", "is_open": "on"})
        assert changed.status_code == 403
    day.refresh_from_db()
    base.refresh_from_db()
    assert (day.is_open, base.price) == (False, 70_000)
