"""A first start against the sandbox broker over real HTTP: the start-up fill (daily history, base prices, the
session's minutes so far; later starts only close gaps), the broker calendar sync (the sandbox calls a day
closed -> Hoga treats it as closed; an override still wins), and the paper listener refusing the holiday query."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import date, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from apps.core.krx.calendar import KST, KrxCalendar
from apps.marketdata.market_clock import CONTINUOUS, MarketNow
from apps.marketdata.models import (
    BarSource,
    BrokerCalendarDay,
    CollectionRun,
    DailyBar,
    MinuteBar,
    ReferencePrice,
    Stock,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ADMIN = "first-start-admin"
DATA = Path(settings.HOGA_DATA_DIR) if settings.HOGA_DATA_DIR else None
REPLAY_DAY = date(2026, 2, 20)
SANDBOX_CLOSED = date(2026, 3, 10)  # a Tuesday the package layer opens; the sandbox's calendar closes it
RATE = 400.0


def _credential(mode: str):
    from apps.sandbox.config import AppCredential

    return AppCredential(f"PSFIRST{mode}{uuid.uuid4().hex}"[:36], mode[0] * 180, mode)


@pytest.fixture(scope="module")
def sandbox():
    from apps.sandbox.config import SandboxConfig
    from apps.sandbox.server import SandboxThread

    creds = {"real": _credential("real"), "paper": _credential("paper")}
    cfg = SandboxConfig(
        data_dir=DATA if DATA and (DATA / "daily/krx_marcap").is_dir() else None,
        replay_date=REPLAY_DAY,
        universe_size=5,
        real_rest_port=0,
        paper_rest_port=0,
        real_ws_port=0,
        paper_ws_port=0,
        speed=1.0,
        admin_token=ADMIN,
        app_credentials=tuple(creds.values()),
        real_rate_limit=RATE,
        paper_rate_limit=RATE,
        token_issue_interval_s=1.0,
        closed_days=(SANDBOX_CLOSED,),
    )
    with SandboxThread(cfg) as running:
        running.credentials = creds
        yield running


@pytest.fixture(autouse=True)
def _close_worker_thread_connections():
    yield
    from channels.db import database_sync_to_async
    from django.db import connections

    asyncio.run(database_sync_to_async(connections.close_all)())


@pytest.fixture
def kis(sandbox, redis_client):
    """``kis(mode)`` -> (an AsyncKisClient factory, a function reading its call counters)."""
    from apps.brokers.kis.client import AsyncKisClient
    from apps.brokers.kis.config import KisConfig
    from apps.brokers.metrics import read_metrics
    from apps.marketdata.broker_services import DatabaseTokenStore

    prefix = f"hoga:test:first:{uuid.uuid4().hex[:10]}"

    def make(mode: str = "real"):
        cred = sandbox.credentials[mode]
        port = sandbox.ports.real_rest if mode == "real" else sandbox.ports.paper_rest
        config = KisConfig.for_sandbox(
            env=mode, rest_port=port, app_key=cred.appkey, app_secret=cred.appsecret, rate_limit=RATE * 0.9,
            backoff_base=0.01, backoff_max=0.05, token_issue_interval=1.0, redis_prefix=prefix,
        )  # fmt: skip

        def client():
            return AsyncKisClient(config, token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL)

        def counters() -> dict:
            return read_metrics(redis_client, prefix=prefix, scope=config.scope)

        return client, counters

    yield make
    keys = list(redis_client.scan_iter(f"{prefix}:*"))
    if keys:
        redis_client.delete(*keys)


def _jump(sandbox, hhmmss: str) -> None:
    url = f"http://127.0.0.1:{sandbox.ports.paper_rest}/sandbox/clock"
    response = httpx.post(url, json={"time": hhmmss, "speed": 0.0001}, headers={"X-Sandbox-Admin": ADMIN}, timeout=10)
    assert response.status_code == 200, response.text


def _universe(codes):
    for rank, code in enumerate(codes, start=1):
        Stock.objects.update_or_create(code=code, defaults={"name": code, "market": "KOSPI", "rank": rank})


def _bootstrap(client_factory, market, codes, progress=None, wrap=None):
    from apps.marketdata.bootstrap import market_data_bootstrap

    async def go():
        async with client_factory() as client:
            return await market_data_bootstrap(
                client=wrap(client) if wrap else client, market=market, calendar=KrxCalendar(), codes=codes,
                progress=progress,
            )  # fmt: skip

    return asyncio.run(go())


def _at(moment: time) -> MarketNow:
    return MarketNow(
        now=datetime.combine(REPLAY_DAY, moment, tzinfo=KST), trading_date=REPLAY_DAY, session=CONTINUOUS,
        source="sandbox",
    )  # fmt: skip


def test_first_start_fills_history_and_the_sessions_minutes_then_later_starts_only_close_gaps(sandbox, kis):
    from apps.marketdata.bootstrap import bootstrap_ready
    from apps.marketdata.health import check_market_data

    core = sandbox.server.core
    codes = list(core.market.tapes)
    _universe(codes)
    _jump(sandbox, "10:00:30")
    client_factory, counters = kis("real")
    assert check_market_data()["status"] == "down"
    seen = []

    run = _bootstrap(client_factory, _at(time(10, 0, 30)), codes, progress=lambda *p: seen.append(p))

    # 90 trading days up to the last completed session (the replay day's session is still open).
    target = date(2026, 2, 19)
    first_day = KrxCalendar().trading_days_back(target, 90)[0]
    assert (run.job, run.status, run.requested, run.failed) == ("bootstrap", "succeeded", len(codes), 0)
    for code in codes:
        expected = [(b.date, b.close) for b in core.market.history[code] if first_day <= b.date <= target]
        stored = list(
            DailyBar.objects.filter(stock__code=code, source=BarSource.KIS)
            .order_by("date")
            .values_list("date", "close")
        )
        assert stored == expected and stored[-1][0] == target, code
        # The session's minutes so far: every minute the sandbox has a bar for, 09:00..09:59.
        tape = core.market.tapes[code]
        want = {b.minute_s for b in tape.minute_bars(10 * 3600 * 1000) if b.minute_s < 10 * 3600}
        got = {
            (ts.astimezone(KST).hour * 3600 + ts.astimezone(KST).minute * 60)
            for ts in MinuteBar.objects.filter(stock__code=code).values_list("ts", flat=True)
        }
        assert got == want and min(got) == 9 * 3600, code
    assert ("daily", len(codes), len(codes)) in seen and seen[0] == ("daily", 0, len(codes))
    assert any(phase == "minute bars" for phase, _, _ in seen)
    assert bootstrap_ready() and check_market_data()["status"] == "ok"
    daily_calls = counters()["calls_by_tr_id"]["FHKST03010100"]
    assert daily_calls >= len(codes)

    again = _bootstrap(client_factory, _at(time(10, 0, 30)), codes)

    assert (again.status, again.stored, again.failed) == ("succeeded", 0, 0)
    assert counters()["calls_by_tr_id"]["FHKST03010100"] == daily_calls  # no daily call: nothing was missing
    assert "daily: 0 of" in again.note


def test_a_stock_the_broker_has_no_daily_bars_for_gets_its_base_price(sandbox, kis):
    from apps.brokers.base import BrokerBusinessError

    core = sandbox.server.core
    codes = list(core.market.tapes)[:3]
    _universe(codes)
    _jump(sandbox, "09:00:10")
    client_factory, _ = kis("real")
    missing = codes[1]

    class DailyFailsFor:
        """The broker refusing one stock's daily chart (every other call goes through untouched)."""

        def __init__(self, client):
            self._client = client

        def __getattr__(self, name):
            return getattr(self._client, name)

        async def daily_bars(self, code, *args, **kwargs):
            if code == missing:
                raise BrokerBusinessError("broker refused: no chart", msg_cd="OPSQ9999")
            return await self._client.daily_bars(code, *args, **kwargs)

    run = _bootstrap(client_factory, _at(time(9, 0, 10)), codes, wrap=DailyFailsFor)

    assert (run.status, run.failed, sorted(run.error_summary)) == ("partial", 1, [missing])
    base = ReferencePrice.objects.get(stock__code=missing, trading_date=REPLAY_DAY)
    assert (base.price, base.source) == (core.market.tapes[missing].prev_close, "broker_quote")
    # The dashboard's quote falls back to it: the stock the broker knows is never shown without a price.
    from apps.live.quotes import quotes_latest

    quote = quotes_latest(codes=[missing])["quotes"][0]
    assert (quote["price"], quote["source"]) == (base.price, "reference:broker_quote")


def test_calendar_sync_stores_the_brokers_answer_and_the_calendar_takes_its_word(sandbox, kis, caplog, client):
    from apps.marketdata.calendar_sync import calendar_sync
    from apps.marketdata.models import CalendarOverride
    from apps.marketdata.selectors import krx_calendar

    client_factory, counters = kis("real")

    async def go():
        async with client_factory() as c:
            return await calendar_sync(client=c, since=REPLAY_DAY, days=90)

    with caplog.at_level(logging.WARNING, logger="apps.marketdata.calendar_sync"):
        run = asyncio.run(go())

    assert (run.job, run.status) == ("calendar_sync", "succeeded")
    stored = list(BrokerCalendarDay.objects.order_by("date").values_list("date", flat=True))
    assert stored[0] == REPLAY_DAY and stored == [REPLAY_DAY + timedelta(days=i) for i in range(96)]
    assert counters()["calls_by_tr_id"] == {"CTCA0903R": 4}  # 4 pages of 24 dates cover 90 days
    day = BrokerCalendarDay.objects.get(date=SANDBOX_CLOSED)
    assert (day.is_open, day.weekday_code) == (False, "03")
    assert BrokerCalendarDay.objects.get(date=date(2026, 3, 2)).is_open is False  # substitute holiday
    assert BrokerCalendarDay.objects.get(date=date(2026, 3, 3)).is_open is True
    assert "weekdays closed: 2026-03-02, 2026-03-10, 2026-05-01, 2026-05-05" in run.note
    assert "sources disagree on 2026-03-10" in run.note

    # The sandbox says 2026-03-10 is closed, the package layer says open: Hoga treats it as closed.
    assert KrxCalendar().session(SANDBOX_CLOSED) is not None
    assert krx_calendar().session(SANDBOX_CLOSED) is None
    assert krx_calendar().deciding_source(SANDBOX_CLOSED) == "broker"
    warnings = [r for r in caplog.records if r.getMessage() == "calendar sources disagree"]
    assert [(r.day, r.package, r.broker, r.effective) for r in warnings] == [("2026-03-10", "open", "closed", "closed")]

    # The data-quality page lists the disagreement (the market's today is the sandbox's replay day).
    from django.contrib.auth import get_user_model

    from apps.marketdata.market_clock import MarketNow

    user = get_user_model().objects.create_user(username="quality", password="pw-123456789")
    client.force_login(user)
    pinned = MarketNow(now=datetime(2026, 2, 20, 10, 0, tzinfo=KST), trading_date=REPLAY_DAY, session=CONTINUOUS,
                       source="sandbox")  # fmt: skip
    import apps.marketdata.market_clock as clock

    original = clock.sandbox_now
    clock.sandbox_now = lambda timeout=3.0, calendar=None: pinned
    try:
        page = client.get("/data-quality/").content.decode()
        dashboard = client.get("/").content.decode()
    finally:
        clock.sandbox_now = original
    assert 'data-date="2026-03-10"' in page.split('id="calendar-disagreements"')[1].split("</table>")[0]
    notes = dashboard.split('id="calendar-notes"')[1].split("</ul>")[0]
    assert 'data-date="2026-03-02" data-closed="true" data-source="broker"' in notes
    assert 'data-date="2026-03-10" data-closed="true" data-source="broker"' in notes

    # An operator override wins over the broker's answer.
    CalendarOverride.objects.create(date=SANDBOX_CLOSED, closed=False, note="KRX opens after all")
    session = krx_calendar().session(SANDBOX_CLOSED)
    assert (session.open.time(), session.close.time()) == (time(9, 0), time(15, 30))
    assert krx_calendar().deciding_source(SANDBOX_CLOSED) == "override"

    # A second sync the same day is not sent (KIS asks for about one a day); the task says so.
    from apps.core.krx.calendar import now_kst
    from apps.marketdata.calendar_sync import calendar_synced_on

    assert calendar_synced_on(now_kst().date())


def test_the_paper_listener_refuses_the_holiday_query_and_nothing_changes(sandbox, kis):
    from apps.marketdata.calendar_sync import calendar_sync

    client_factory, counters = kis("paper")

    async def go():
        async with client_factory() as c:
            return await calendar_sync(client=c, since=REPLAY_DAY, days=30)

    run = asyncio.run(go())

    assert (run.status, run.stored, run.failed) == ("failed", 0, 1)
    assert "EGW02006" in run.note and "keeps its stored broker answers" in run.note
    assert BrokerCalendarDay.objects.count() == 0
    metrics = counters()
    assert (metrics["calls"], metrics["retries"], metrics["breaker"]["state"]) == (1, 0, "closed")
    assert CollectionRun.objects.filter(job="calendar_sync").count() == 1


def test_a_replayed_csat_session_is_collected_at_its_own_times(kis, redis_client):
    """The sandbox replays CSAT day (10:00-16:30, synthetic market) and Hoga's calendar agrees: the minute job
    asks for and stores bars from 10:00, and the 16:30 closing print is its own bar."""
    from apps.brokers.kis.client import AsyncKisClient
    from apps.brokers.kis.config import KisConfig
    from apps.marketdata.broker_services import DatabaseTokenStore
    from apps.marketdata.collection import minute_collect
    from apps.marketdata.market_clock import CLOSED
    from apps.sandbox.config import SandboxConfig
    from apps.sandbox.server import SandboxThread

    csat = date(2026, 11, 19)
    cred = _credential("paper")
    cfg = SandboxConfig(
        data_dir=None, replay_date=csat, universe_size=2, real_rest_port=0, paper_rest_port=0, real_ws_port=0,
        paper_ws_port=0, speed=0.0001, admin_token=ADMIN, app_credentials=(cred,), paper_rate_limit=RATE,
    )  # fmt: skip
    prefix = f"hoga:test:csat:{uuid.uuid4().hex[:10]}"
    with SandboxThread(cfg) as sandbox:
        core = sandbox.server.core
        codes = list(core.market.tapes)
        _universe(codes)
        sandbox.call(core.jump_to, 16 * 3600 + 31 * 60)
        config = KisConfig.for_sandbox(
            env="paper", rest_port=sandbox.ports.paper_rest, app_key=cred.appkey, app_secret=cred.appsecret,
            rate_limit=RATE * 0.9, redis_prefix=prefix,
        )  # fmt: skip
        market = MarketNow(now=datetime(2026, 11, 19, 16, 31, tzinfo=KST), trading_date=csat, session=CLOSED,
                           source="sandbox")  # fmt: skip

        async def go():
            async with AsyncKisClient(config, token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL) as c:
                return await minute_collect(client=c, market=market, calendar=KrxCalendar(), codes=codes)

        run = asyncio.run(go())
        expected = {
            code: {b.minute_s for b in core.market.tapes[code].minute_bars(core.clock.now_ms())} for code in codes
        }
    keys = list(redis_client.scan_iter(f"{prefix}:*"))
    if keys:
        redis_client.delete(*keys)

    assert (run.status, run.failed) == ("succeeded", 0)
    for code in codes:
        stored = MinuteBar.objects.filter(stock__code=code).order_by("ts").values_list("ts", flat=True)
        seconds = [t.astimezone(KST).hour * 3600 + t.astimezone(KST).minute * 60 for t in stored]
        assert set(seconds) == expected[code]
        assert seconds[0] >= 10 * 3600 and seconds[-1] == 16 * 3600 + 30 * 60
        assert run.window_start.astimezone(KST).time() == time(10, 0)
