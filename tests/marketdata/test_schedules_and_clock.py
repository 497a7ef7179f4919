from datetime import date, datetime, time

import pytest
from django.core.management import call_command

from apps.core.krx.calendar import KST, KrxCalendar, Override
from apps.marketdata.market_clock import CLOSED, CLOSING_AUCTION, CONTINUOUS, PRE_OPEN, calendar_now


@pytest.mark.django_db
def test_schedule_is_defined_in_code_and_visible_in_the_admin_tables(settings, admin_client):
    from django_celery_beat.models import PeriodicTask

    settings.MARKET_BROKER = "kis"
    call_command("sync_schedules")
    call_command("sync_schedules")  # idempotent

    tasks = {t.name: t for t in PeriodicTask.objects.all()}
    minute = tasks["collect minute bars"]
    assert minute.task == "marketdata.collect_minute_bars"
    # Until 16:59: on CSAT day the session runs 10:00-16:30 (the task asks the calendar).
    assert (minute.crontab.minute, minute.crontab.hour, minute.crontab.day_of_week) == ("*", "9-16", "1-5")
    assert str(minute.crontab.timezone) == "Asia/Seoul"
    assert minute.expire_seconds == 55
    assert tasks["collect daily bars"].crontab.hour == "15-17"
    sync = tasks["sync the KRX calendar from the broker"]
    assert (sync.task, sync.crontab.minute, sync.crontab.hour, sync.crontab.day_of_week) == (
        "marketdata.sync_calendar", "30", "7", "*",
    )  # fmt: skip
    listing = tasks["refresh the listing from the broker's stock master"]
    assert (listing.task, listing.crontab.minute, listing.crontab.hour, listing.crontab.day_of_week) == (
        "marketdata.sync_listing", "40", "7", "1-5",
    )  # fmt: skip
    retry = tasks["retry the listing refresh"]
    assert (retry.task, retry.crontab.minute, retry.crontab.hour) == ("marketdata.sync_listing", "20", "8")
    assert PeriodicTask.objects.filter(task__startswith="marketdata.").count() == 5
    assert admin_client.get("/admin/django_celery_beat/periodictask/").status_code == 200


@pytest.mark.parametrize(
    ("at", "state"),
    [(time(8, 59), PRE_OPEN), (time(9, 0), CONTINUOUS), (time(15, 20), CLOSING_AUCTION), (time(15, 30), CLOSED)],
)
def test_calendar_clock_states(at, state):
    market = calendar_now(KrxCalendar(), datetime.combine(date(2026, 2, 20), at, tzinfo=KST))

    assert (market.session, market.trading_date) == (state, date(2026, 2, 20))


def test_closed_day_and_overrides():
    saturday = calendar_now(KrxCalendar(), datetime(2026, 2, 21, 10, 0, tzinfo=KST))
    closed = KrxCalendar({date(2026, 2, 20): Override(closed=True)})

    assert (saturday.trading_date, saturday.session) == (None, CLOSED)
    assert closed.session(date(2026, 2, 20)) is None
    # First trading day of the year opens at 10:00 (XKRX), so it has 60 fewer minute bars.
    assert len(KrxCalendar().session(date(2026, 1, 2)).minute_labels()) == 321


@pytest.mark.django_db
def test_csat_day_correction_is_seeded():
    from apps.marketdata.selectors import krx_calendar

    session = krx_calendar().session(date(2025, 11, 13))

    assert (session.open.time(), session.close.time()) == (time(10, 0), time(16, 30))
