"""Investor-flow collection against the sandbox over real HTTP: the universe's flows with a run record, the TR
cross-check, gap backfill after lost rows, nothing for today before the close, and the intraday estimates the
sandbox does not offer."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.core.krx.calendar import KrxCalendar
from apps.fundamentals.collection import estimates_collect, flows_collect
from apps.fundamentals.models import InvestorFlow
from apps.marketdata.models import CollectionRun

from .conftest import REPLAY_DAY, jump, run, universe

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DAYS = 40


def _codes(sandbox) -> list[str]:
    return sandbox.server.core.clock_status()["universe"]


def test_flows_of_the_universe_are_collected_with_a_run_record_and_agree_across_both_trs(
    sandbox, admin, client_factory
):
    codes = _codes(sandbox)
    assert len(codes) == 6
    universe(codes)
    jump(admin, "16:00:00")

    result = run(client_factory, flows_collect, trading_date=REPLAY_DAY, calendar=KrxCalendar(), codes=codes,
                 backfill_days=DAYS)  # fmt: skip

    assert (result.job, result.status, result.requested, result.failed) == ("flows", "succeeded", 6, 0)
    assert result.stored == 6 * DAYS
    assert result.backfilled == 6 * (DAYS - 1)
    assert result.note.startswith("TR cross-check: 0 disagreements over ")
    expected_days = KrxCalendar().trading_days_back(REPLAY_DAY, DAYS)
    for code in codes:
        days = list(InvestorFlow.objects.filter(stock__code=code).order_by("date").values_list("date", flat=True))
        assert days == expected_days
    for row in InvestorFlow.objects.all():
        nets = [row.individual_net_qty, row.foreign_net_qty, row.institution_net_qty, row.other_corp_net_qty]
        assert None not in nets
        assert sum(nets) == 0  # the sandbox splits each day's volume among the four types
        assert sum(row.institution_detail.values()) == row.institution_net_qty
        assert len(row.institution_detail) == 8
        assert row.foreign_net_value % 1_000_000 == 0
    # FHKST01010900 (buys and sells) covers the sandbox's newest 30 rows (weekdays: Seollal 2026-02-16..18 is one
    # of them, closed by the KRX calendar, so not stored); older rows have nets only.
    recent = InvestorFlow.objects.filter(stock__code=codes[0]).order_by("-date")
    with_buys = [r for r in recent if r.foreign_buy_qty is not None]
    weekdays = [d for d in (REPLAY_DAY - timedelta(days=n) for n in range(60)) if d.weekday() < 5][:30]
    assert [r.date for r in with_buys] == [d for d in expected_days[::-1] if d >= weekdays[-1]]
    assert len(with_buys) == 27
    for r in with_buys:
        assert r.foreign_buy_qty - r.foreign_sell_qty == r.foreign_net_qty
        assert r.individual_buy_qty - r.individual_sell_qty == r.individual_net_qty
    assert recent.last().foreign_buy_qty is None

    # The same run again finds nothing missing and stores nothing.
    again = run(client_factory, flows_collect, trading_date=REPLAY_DAY, calendar=KrxCalendar(), codes=codes,
                backfill_days=DAYS)  # fmt: skip
    assert (again.status, again.stored, again.backfilled) == ("succeeded", 0, 0)
    assert InvestorFlow.objects.count() == 6 * DAYS


def test_lost_days_are_backfilled_by_the_next_run_with_the_same_figures(sandbox, admin, client_factory):
    codes = _codes(sandbox)[:3]
    universe(codes)
    jump(admin, "16:00:00")
    run(client_factory, flows_collect, trading_date=REPLAY_DAY, calendar=KrxCalendar(), codes=codes, backfill_days=DAYS)
    lost_days = KrxCalendar().trading_days_back(REPLAY_DAY, DAYS)[5:9]
    lost = InvestorFlow.objects.filter(stock__code=codes[1], date__in=lost_days)
    before = {r.date: (r.foreign_net_qty, r.institution_net_value, r.institution_detail) for r in lost}
    assert len(before) == 4
    lost.delete()

    result = run(client_factory, flows_collect, trading_date=REPLAY_DAY, calendar=KrxCalendar(), codes=codes,
                 backfill_days=DAYS)  # fmt: skip

    assert (result.status, result.stored, result.backfilled) == ("succeeded", 4, 4)
    after = {
        r.date: (r.foreign_net_qty, r.institution_net_value, r.institution_detail)
        for r in InvestorFlow.objects.filter(stock__code=codes[1], date__in=lost_days)
    }
    assert after == before


def test_today_is_not_stored_before_the_close_and_a_failing_broker_is_recorded(sandbox, admin, client_factory):
    codes = _codes(sandbox)[:2]
    universe(codes)
    jump(admin, "11:00:00")

    result = run(client_factory, flows_collect, trading_date=REPLAY_DAY, calendar=KrxCalendar(), codes=codes,
                 backfill_days=10)  # fmt: skip

    assert (result.status, result.stored) == ("succeeded", 2 * 9)
    assert not InvestorFlow.objects.filter(date=REPLAY_DAY).exists()
    assert "broker had no flows for 2 stock-days" in result.note

    assert admin.post("/sandbox/faults", json={"fault": "server_error", "count": 100000}).status_code == 200
    failed = run(client_factory, flows_collect, trading_date=REPLAY_DAY, calendar=KrxCalendar(), codes=codes,
                 backfill_days=10)  # fmt: skip
    assert (failed.status, failed.failed, failed.stored) == ("failed", 2, 0)
    assert set(failed.error_summary) == set(codes)


def test_intraday_estimates_the_broker_does_not_offer_are_recorded_as_skipped(sandbox, admin, client_factory):
    codes = _codes(sandbox)[:2]
    universe(codes)
    jump(admin, "11:30:00")

    result = run(client_factory, estimates_collect, trading_date=REPLAY_DAY, codes=codes)

    assert (result.job, result.status, result.requested, result.stored) == ("flow_estimates", "skipped", 2, 0)
    assert result.note.startswith("the broker does not offer intraday estimates (HHPTJ04160200)")
    assert CollectionRun.objects.filter(job="flow_estimates").count() == 1


class _WithoutByTypeTr:
    """The sandbox client, except that FHPTJ04160001 is refused as an environment that does not offer it."""

    def __init__(self, client) -> None:
        self.client = client

    async def investor_flows_by_type(self, *args, **kwargs):
        from apps.brokers.base import BrokerBusinessError

        raise BrokerBusinessError("not offered here: EGW02006 모의투자 TR 이 아닙니다.", msg_cd="EGW02006")

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_without_the_by_type_tr_the_investor_tr_alone_is_stored_and_the_note_says_so(sandbox, admin, client_factory):
    codes = _codes(sandbox)[:2]
    universe(codes)
    jump(admin, "16:00:00")

    result = run(
        client_factory,
        lambda client, **kw: flows_collect(client=_WithoutByTypeTr(client), **kw),
        trading_date=REPLAY_DAY, calendar=KrxCalendar(), codes=codes, backfill_days=DAYS,
    )  # fmt: skip

    assert (result.status, result.failed) == ("succeeded", 0)
    assert "FHPTJ04160001 refused" in result.note and "FHKST01010900 only" in result.note
    assert result.stored == 2 * 27  # FHKST01010900's 30 weekday rows, 27 of them KRX trading days
    row = InvestorFlow.objects.filter(stock__code=codes[0]).latest("date")
    assert row.other_corp_net_qty is None and row.institution_detail == {}
    assert row.foreign_buy_qty - row.foreign_sell_qty == row.foreign_net_qty
