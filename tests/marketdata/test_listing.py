"""The listing: every stock of the broker's stock master, refreshed from the sandbox's master files over real
HTTP, apart from the collection universe (which stays a configurable list)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from django.core.management import CommandError, call_command

from apps.brokers.kis.master import MasterRow
from apps.core.krx.calendar import KST
from apps.marketdata.listing import listing_refresh, listing_sync, listing_synced_on, master_base_url
from apps.marketdata.models import CollectionRun, Stock

pytestmark = pytest.mark.django_db

AS_OF = dt.date(2026, 2, 20)


def row(code: str, name: str = "", market: str = "KOSPI", **flags) -> MasterRow:
    values = {
        "code": code, "isin": f"KR7{code}000", "name": name or f"Stock {code}", "market": market,
        "security_group": "ST", "base_price": 10_000, "halted": False, "liquidation": False, "administrative": False,
        "warning": "", "industry_code": "0013", "sector": "", "listed_shares": 1_000_000, "prev_volume": 1,
        "market_cap": 10**10, "listed_on": None,
    }  # fmt: skip
    values.update(flags)
    return MasterRow(**values)


def test_new_stocks_join_outside_the_universe_and_the_universe_is_kept():
    Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)

    result = listing_refresh(
        rows=[row("005930", "삼성전자", sector="정보통신"), row("000250", "삼천당제약", "KOSDAQ", administrative=True,
              warning="warning"), row("496320", "본시스템즈", "KONEX", halted=True)],
        as_of=AS_OF,
    )  # fmt: skip

    assert result == {"created": 2, "updated": 1, "delisted": 0, "delist_skipped": 0}
    samsung = Stock.objects.get(code="005930")
    assert (samsung.in_universe, samsung.rank, samsung.sector, samsung.industry_code, samsung.isin) == (
        True, 1, "정보통신", "0013", "KR7005930000",
    )  # fmt: skip
    pharm = Stock.objects.get(code="000250")
    assert (pharm.active, pharm.in_universe, pharm.rank, pharm.market) == (True, False, None, "KOSDAQ")
    assert (pharm.administrative, pharm.warning, pharm.halted, pharm.listing_date) == (True, "warning", False, AS_OF)
    assert Stock.objects.get(code="496320").halted is True
    assert [s.code for s in Stock.objects.filter(active=True, in_universe=True)] == ["005930"]


def test_flags_are_cleared_when_the_master_clears_them():
    listing_refresh(rows=[row("000250", halted=True, warning="risk")], as_of=AS_OF)
    listing_refresh(rows=[row("000250")], as_of=AS_OF + dt.timedelta(days=3))

    stock = Stock.objects.get(code="000250")
    assert (stock.halted, stock.warning, stock.listing_date) == (False, "", dt.date(2026, 2, 23))


def test_a_stock_missing_from_the_master_is_delisted_but_kept():
    codes = [f"{i:06d}" for i in range(1, 41)]
    listing_refresh(rows=[row(c) for c in codes], as_of=AS_OF)
    Stock.objects.filter(code="000001").update(in_universe=True, rank=1)

    result = listing_refresh(rows=[row(c) for c in codes[1:]], as_of=AS_OF, max_delist_fraction=0.05)

    assert result["delisted"] == 1
    gone = Stock.objects.get(code="000001")
    assert (gone.active, gone.in_universe, gone.rank) == (False, False, None)


def test_a_truncated_master_delists_nobody():
    codes = [f"{i:06d}" for i in range(1, 41)]
    listing_refresh(rows=[row(c) for c in codes], as_of=AS_OF)

    result = listing_refresh(rows=[row(c) for c in codes[:10]], as_of=AS_OF, max_delist_fraction=0.05)

    assert (result["delisted"], result["delist_skipped"]) == (0, 30)
    assert Stock.objects.filter(active=True).count() == 40


def test_an_empty_master_changes_nothing():
    Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    with pytest.raises(ValueError, match="empty master"):
        listing_refresh(rows=[], as_of=AS_OF)
    assert list(Stock.objects.values_list("code", "active", "in_universe")) == [("005930", True, True)]


@pytest.fixture
def sandbox_broker(settings):
    from apps.sandbox.server import SandboxThread
    from tests.sandbox.conftest import base_config

    with SandboxThread(base_config(token_issue_interval_s=1.0)) as sandbox:
        settings.MARKET_BROKER = "sandbox"
        settings.KIS_ENV = "paper"
        settings.SANDBOX_CONNECT_HOST = "127.0.0.1"
        settings.SANDBOX_PAPER_REST_PORT = sandbox.ports.paper_rest
        settings.SANDBOX_REAL_REST_PORT = sandbox.ports.real_rest
        yield sandbox


@pytest.mark.django_db(transaction=True)
def test_the_listing_is_loaded_from_the_brokers_master_files(sandbox_broker, settings):
    from apps.marketdata.tasks import listing_sync_if_due

    settings.LISTING_SECURITY_GROUPS = ["ST"]
    assert master_base_url() == f"http://127.0.0.1:{sandbox_broker.ports.paper_rest}/common/master"
    Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)

    run = listing_sync_if_due()

    assert run.status == CollectionRun.Status.SUCCEEDED, run.error_summary
    tapes = sandbox_broker.server.core.market.tapes
    listed = Stock.objects.filter(active=True)
    if sandbox_broker.server.core.market.synthetic:
        assert set(listed.values_list("code", flat=True)) >= set(tapes)
    else:
        assert {m: listed.filter(market=m).count() for m in ("KOSPI", "KOSDAQ", "KONEX")} == {
            "KOSPI": 950, "KOSDAQ": 1821, "KONEX": 111,
        }  # fmt: skip
        assert listed.filter(halted=True).count() == 118
    assert list(Stock.objects.filter(in_universe=True).values_list("code", flat=True)) == ["005930"]
    assert "created" in run.note and listing_synced_on(run.started_at.astimezone(KST).date())  # the KST day
    assert listing_sync_if_due() is None  # once a day


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_master_is_a_failed_run_that_changes_nothing(settings):
    from apps.brokers.base import BrokerTransientError

    Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)

    async def down(url):
        raise BrokerTransientError(f"{url}: ConnectError")

    settings.MARKET_BROKER = "kis"
    run = asyncio.run(listing_sync(as_of=AS_OF, fetch=down))

    assert (run.status, run.failed) == (CollectionRun.Status.FAILED, 1)
    assert "ConnectError" in run.error_summary["master"]
    assert Stock.objects.get(code="005930").active is True


def test_the_universe_is_a_configurable_list_of_codes(settings):
    listing_refresh(rows=[row("005930", "삼성전자"), row("000660", "SK하이닉스"), row("000250", "삼천당제약")],
                    as_of=AS_OF)  # fmt: skip
    settings.UNIVERSE_CODES = ["000250", "005930"]

    call_command("load_universe")

    universe = Stock.objects.filter(in_universe=True).order_by("rank")
    assert [(s.code, s.rank) for s in universe] == [("000250", 1), ("005930", 2)]
    assert Stock.objects.get(code="000660").active is True


def test_an_unlisted_code_in_the_universe_list_changes_nothing(settings):
    Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    settings.HOGA_DATA_DIR = ""

    with pytest.raises(CommandError, match="not listed: 999999, ABCDEF"):
        call_command("load_universe", codes="005930,999999,abcdef")

    assert list(Stock.objects.values_list("code", "in_universe", "rank")) == [("005930", True, 1)]
