"""Collection against the sandbox broker over real HTTP: a full replayed session of minute bars, gap
backfill after an outage, the daily job with an unreachable FinanceDataReader, and validation of the
recorded KRX daily bars (through the sandbox, as ``kis``) against the recorded Yahoo files."""

from __future__ import annotations

import asyncio
import csv
import uuid
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db.models import Count

from apps.core.krx.calendar import KST, KrxCalendar
from apps.marketdata.market_clock import CLOSED, CONTINUOUS, MarketNow
from apps.marketdata.models import BarSource, CollectionRun, DailyBar, MinuteBar, Stock

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ADMIN = "collection-test-admin"
DATA = Path(settings.HOGA_DATA_DIR) if settings.HOGA_DATA_DIR else None
needs_data = pytest.mark.skipif(
    DATA is None or not (DATA / "daily/krx_marcap").is_dir(), reason="recorded KRX data not available"
)
REPLAY_DAY = date(2026, 2, 20)
SANDBOX_RATE = 400.0  # the test sandbox's paper limit; the client runs below it, as in production
CLIENT_RATE = 360.0


@pytest.fixture(scope="module")
def sandbox():
    from apps.sandbox.config import LIGHT_TAPE, AppCredential, SandboxConfig
    from apps.sandbox.server import SandboxThread

    cred = AppCredential(f"PSCOLLECT{uuid.uuid4().hex}"[:36].ljust(36, "0"), "c" * 180, "paper")
    cfg = SandboxConfig(
        data_dir=DATA if DATA and (DATA / "daily/krx_marcap").is_dir() else None,
        real_rest_port=0,
        paper_rest_port=0,
        real_ws_port=0,
        paper_ws_port=0,
        speed=1.0,
        admin_token=ADMIN,
        app_credentials=(cred,),
        paper_rate_limit=SANDBOX_RATE,
        real_rate_limit=SANDBOX_RATE,
        token_issue_interval_s=1.0,
        tape_density=LIGHT_TAPE,
    )
    with SandboxThread(replace(cfg)) as running:
        running.credential = cred
        yield running


@pytest.fixture(autouse=True)
def _close_worker_thread_connections():
    """The services reach the database from asgiref's worker thread; close that connection afterwards."""
    yield
    from channels.db import database_sync_to_async
    from django.db import connections

    asyncio.run(database_sync_to_async(connections.close_all)())


@pytest.fixture
def admin(sandbox):
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{sandbox.ports.paper_rest}", headers={"X-Sandbox-Admin": ADMIN}, timeout=10
    )
    yield client
    client.delete("/sandbox/faults")
    client.close()


@pytest.fixture
def client_factory(sandbox, redis_client):
    from apps.brokers.kis.client import AsyncKisClient
    from apps.brokers.kis.config import KisConfig
    from apps.marketdata.broker_services import DatabaseTokenStore

    prefix = f"hoga:test:collect:{uuid.uuid4().hex[:10]}"
    config = KisConfig.for_sandbox(
        env="paper",
        rest_port=sandbox.ports.paper_rest,
        app_key=sandbox.credential.appkey,
        app_secret=sandbox.credential.appsecret,
        rate_limit=CLIENT_RATE,
        backoff_base=0.01,
        backoff_max=0.05,
        breaker_open_seconds=0.5,
        token_issue_interval=1.0,
        redis_prefix=prefix,
    )

    def make():
        return AsyncKisClient(config, token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL)

    yield make
    keys = list(redis_client.scan_iter(f"{prefix}:*"))
    if keys:
        redis_client.delete(*keys)


def _jump(admin, hhmmss: str) -> None:
    response = admin.post("/sandbox/clock", json={"time": hhmmss, "speed": 0.0001})
    assert response.status_code == 200, response.text


def _market(at: time) -> MarketNow:
    state = CLOSED if at >= time(15, 30) else CONTINUOUS
    return MarketNow(
        now=datetime.combine(REPLAY_DAY, at, tzinfo=KST), trading_date=REPLAY_DAY, session=state, source="test"
    )


def _universe(codes):
    for rank, code in enumerate(codes, start=1):
        Stock.objects.update_or_create(code=code, defaults={"name": code, "market": "KOSPI", "rank": rank})


def _collect(client_factory, market, codes):
    from apps.marketdata.collection import minute_collect

    async def go():
        async with client_factory() as client:
            return await minute_collect(client=client, market=market, calendar=KrxCalendar(), codes=codes)

    return asyncio.run(go())


@needs_data
def test_full_replayed_session_collects_381_bars_for_each_of_50_stocks(sandbox, admin, client_factory):
    codes = sandbox.server.core.clock_status()["universe"]
    assert len(codes) == 50
    _universe(codes)
    _jump(admin, "15:31:00")

    run = _collect(client_factory, _market(time(15, 31)), codes)

    assert (run.status, run.requested, run.failed, run.success_rate) == ("succeeded", 50, 0, 100.0)
    assert run.stored == 50 * 381
    counts = dict(MinuteBar.objects.values_list("stock__code").annotate(n=Count("id")).values_list("stock__code", "n"))
    assert counts == dict.fromkeys(codes, 381)
    distinct = MinuteBar.objects.values("stock", "ts", "source").distinct().count()
    assert distinct == MinuteBar.objects.count() == 50 * 381
    first = MinuteBar.objects.filter(stock__code="005930").order_by("ts")
    assert first[0].ts.astimezone(KST).time() == time(9, 0)
    assert first.last().ts.astimezone(KST).time() == time(15, 30)
    # The closing print's bar is labelled as such; every other bar of the broker's chart is continuous.
    phases = dict(MinuteBar.objects.values_list("phase").annotate(n=Count("id")).values_list("phase", "n"))
    assert phases == {"continuous": 50 * 380, "closing_auction": 50}
    assert first.last().phase == "closing_auction"

    # A second run finds nothing new and stores nothing twice.
    again = _collect(client_factory, _market(time(15, 31)), codes)
    assert (again.stored, again.failed, MinuteBar.objects.count()) == (0, 0, 50 * 381)


@needs_data
def test_next_run_after_an_outage_backfills_every_missing_minute(sandbox, admin, client_factory):
    codes = sandbox.server.core.clock_status()["universe"][:5]
    _universe(codes)

    _jump(admin, "10:00:00")
    first = _collect(client_factory, _market(time(10, 0)), codes)
    assert (first.stored, first.failed) == (5 * 60, 0)

    # The broker fails for ten minutes (5xx on every call): that run fails, nothing is stored.
    assert admin.post("/sandbox/faults", json={"fault": "server_error", "count": 100000}).status_code == 200
    _jump(admin, "10:10:00")
    failed = _collect(client_factory, _market(time(10, 10)), codes)
    assert (failed.status, failed.failed, failed.stored) == ("failed", 5, 0)
    assert admin.delete("/sandbox/faults").status_code == 200

    import time as wall

    wall.sleep(0.6)  # the breaker (0.5 s in this test) lets a probe through again
    _jump(admin, "10:15:00")
    recovered = _collect(client_factory, _market(time(10, 15)), codes)

    assert (recovered.status, recovered.failed) == ("succeeded", 0)
    assert recovered.stored == 5 * 15  # 10:00..10:14, for each stock
    assert recovered.backfilled == 5 * 14  # all but the newest minute were gap fill
    for code in codes:
        minutes = [
            ts.astimezone(KST)
            for ts in MinuteBar.objects.filter(stock__code=code).order_by("ts").values_list("ts", flat=True)
        ]
        assert minutes == [
            datetime.combine(REPLAY_DAY, time(9, 0), tzinfo=KST) + timedelta(minutes=i) for i in range(75)
        ]


@needs_data
def test_daily_job_records_an_unreachable_fdr_and_uses_the_recorded_files(sandbox, admin, client_factory):
    from apps.marketdata.collection import daily_collect
    from apps.marketdata.sources.base import SourceUnavailable
    from apps.marketdata.sources.recorded import RecordedYahooSource

    class Unreachable:
        name = "fdr"

        def daily_bars(self, code, start, end):
            raise SourceUnavailable("FinanceDataReader could not fetch: NameResolutionError")

    _universe(["005930", "000660"])
    _jump(admin, "15:31:00")  # the daily job runs after the close

    async def go():
        async with client_factory() as client:
            return await daily_collect(
                client=client,
                trading_date=REPLAY_DAY,
                calendar=KrxCalendar(),
                codes=["005930", "000660"],
                second_sources=[Unreachable(), RecordedYahooSource(DATA)],
                backfill_days=10,
            )

    run = asyncio.run(go())

    assert (run.status, run.failed) == ("succeeded", 0)
    assert "second source fdr unavailable: FinanceDataReader could not fetch: NameResolutionError" in run.note
    kis = DailyBar.objects.filter(source=BarSource.KIS, stock__code="005930").order_by("date")
    recorded = _krx_rows("005930")
    # The broker's bars are the recorded KRX bars, exactly (10 trading days ending on the replay day).
    assert [(b.date, b.open, b.high, b.low, b.close, b.volume) for b in kis] == recorded[-10:]
    assert kis.last().adjusted is False


def _krx_rows(code: str) -> list[tuple]:
    rows = []
    with (DATA / "daily/krx_marcap/krx_daily_top100_2021-2026_janfeb_windows.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["Code"] == code:
                rows.append(
                    (
                        date.fromisoformat(row["Date"]),
                        *(int(row[k]) for k in ("Open", "High", "Low", "Close", "Volume")),
                    )
                )
    return sorted(rows)


def _yahoo_zero_volume_days(code: str) -> set[date]:
    days = set()
    for path in (DATA / "daily/yahoo").glob(f"{code}.KS_2000-01-04_2022-06-17.csv"):
        with path.open() as handle:
            days |= {date.fromisoformat(r["Date"]) for r in csv.DictReader(handle) if float(r["Volume"] or 0) == 0}
    return days


@needs_data
def test_validation_of_recorded_krx_against_recorded_yahoo_finds_only_yahoo_defects(
    sandbox, client_factory, tmp_path, settings
):
    from apps.marketdata.services import daily_bars_upsert, validation_run_execute
    from apps.marketdata.sources.recorded import RecordedYahooSource

    settings.REPORTS_DIR = str(tmp_path)
    codes = ["005930", "005380"]
    _universe(codes)
    start, end = date(2021, 1, 1), date(2022, 6, 17)
    from apps.marketdata.collection import daily_backfill

    progress = []

    async def go():
        async with client_factory() as client:
            return await daily_backfill(
                client=client, codes=codes, start=start, end=end, progress=lambda d, t: progress.append((d, t))
            )

    backfill = asyncio.run(go())
    assert (backfill.failed, backfill.progress, progress) == (0, 1.0, [(1, 2), (2, 2)])
    yahoo = RecordedYahooSource(DATA)
    for code in codes:
        daily_bars_upsert(source=BarSource.YAHOO, bars=yahoo.daily_bars(code, start, end))

    run = validation_run_execute(source_a="kis", source_b="yahoo", date_from=start, date_to=end, codes=codes)

    with open(run.report_path, newline="") as handle:
        report = list(csv.DictReader(handle))
    price_days = {
        (r["stock"], date.fromisoformat(r["date"])) for r in report if r["field"] in ("open", "high", "low", "close")
    }
    defects = {(code, day) for code in codes for day in _yahoo_zero_volume_days(code)}
    assert run.total_compared > 100
    assert price_days, "the recorded Yahoo stale rows must be found"
    assert price_days <= defects  # every price disagreement is a Yahoo zero-volume stale row
    volume_rows = [r for r in report if r["field"] == "volume"]
    for row in volume_rows:
        day = date.fromisoformat(row["date"])
        in_known_stretch = date(2021, 1, 25) <= day <= date(2021, 2, 22)
        assert (row["stock"], day) in defects or in_known_stretch, row
    # What the recorded files really contain: Yahoo's zero-volume rows that repeat an earlier price.
    assert sorted(price_days) == [
        ("005380", date(2022, 1, 26)),
        ("005380", date(2022, 1, 28)),
        ("005380", date(2022, 2, 8)),
        ("005380", date(2022, 2, 9)),
        ("005930", date(2022, 1, 26)),
        ("005930", date(2022, 2, 8)),
        ("005930", date(2022, 2, 9)),
    ]
    price_rows = sum(1 for r in report if r["field"] in ("open", "high", "low", "close"))
    assert run.disagreements == price_rows
    assert run.agreement_pct == round(100 * (run.values_compared - price_rows) / run.values_compared, 4)


def test_backfill_command_rejects_bad_input_and_changes_nothing():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="unknown stock codes: 123456"):
        call_command("backfill_daily", "--from", "2021-01-01", "--to", "2021-02-01", "--codes", "123456")
    with pytest.raises(CommandError, match="not a date"):
        call_command("backfill_daily", "--from", "2021-13-01", "--to", "2021-02-01")
    assert CollectionRun.objects.count() == 0
