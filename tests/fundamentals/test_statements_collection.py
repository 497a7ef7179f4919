"""Financial-statement collection against the sandbox over real HTTP: every TR annual and quarterly, stored with
its period and fetch dates, internally consistent, and the stock page's summary agreeing with the broker's own
PER/PBR."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.fundamentals.collection import statements_collect
from apps.fundamentals.models import FinancialStatement
from apps.fundamentals.selectors import fundamentals_summary
from apps.marketdata.models import BarSource, DailyBar, Stock

from .conftest import REPLAY_DAY, jump, run, universe

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _values(code: str, kind: str, period_type: str) -> dict[str, dict[str, Decimal]]:
    rows = FinancialStatement.objects.filter(stock__code=code, kind=kind, period_type=period_type)
    return {r.period: {k: Decimal(v) for k, v in r.values.items()} for r in rows}


def test_statements_are_collected_with_periods_and_agree_with_each_other(sandbox, admin, client_factory):
    codes = sandbox.server.core.clock_status()["universe"][:2]
    universe(codes)
    jump(admin, "16:00:00")

    result = run(client_factory, statements_collect, codes=codes)

    assert (result.job, result.status, result.requested, result.failed) == ("statements", "succeeded", 2, 0)
    assert result.stored == FinancialStatement.objects.count() > 0
    assert result.note == f"{result.stored} statement periods new since the last run"
    code = codes[0]
    annual = _values(code, "income", "annual")
    quarterly = _values(code, "income", "quarter")
    # On 2026-02-20 the 2025 annual report is not published yet (90 days), 2025 Q3 is (45 days).
    assert max(annual) == "202412" and all(p.endswith("12") for p in annual)
    assert max(quarterly) == "202509"
    # Quarterly income statements are cumulative from January: Q4 (202412) equals the year.
    for key in ("sale_account", "bsop_prti", "thtr_ntin"):
        assert abs(quarterly["202412"][key] - annual["202412"][key]) <= Decimal("0.01")
    for values in _values(code, "balance", "quarter").values():
        assert abs(values["total_aset"] - values["total_lblt"] - values["total_cptl"]) <= Decimal("0.03")
    row = FinancialStatement.objects.get(stock__code=code, kind="balance", period_type="quarter", period="202506")
    assert str(row.period_end) == "2025-06-30"
    assert row.first_fetched_at <= row.fetched_at

    # A second run re-fetches (restatements overwrite) but adds no period and keeps the first fetch time.
    again = run(client_factory, statements_collect, codes=codes)
    assert again.note == "0 statement periods new since the last run"
    row2 = FinancialStatement.objects.get(pk=row.pk)
    assert (row2.first_fetched_at, row2.values) == (row.first_fetched_at, row.values)
    assert row2.fetched_at > row.fetched_at


def test_summary_per_and_pbr_from_the_latest_close_match_the_brokers_quote(sandbox, admin, client_factory):
    code = sandbox.server.core.clock_status()["universe"][0]
    universe([code])
    jump(admin, "16:00:00")
    run(client_factory, statements_collect, codes=[code])

    async def quote(client):
        return await client.current_price(code), (await client.get(
            "/uapi/domestic-stock/v1/quotations/inquire-price", "FHKST01010100",
            {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": code},
        )).body["output"]  # fmt: skip

    q, raw = run(client_factory, lambda client: quote(client))
    stock = Stock.objects.get(code=code)
    DailyBar.objects.create(stock=stock, date=REPLAY_DAY, open=q.open, high=q.high, low=q.low, close=q.price,
                            volume=q.volume, source=BarSource.KIS)  # fmt: skip

    summary = fundamentals_summary(code=code)

    assert summary is not None
    assert summary["close"] == {"value": q.price, "date": REPLAY_DAY}
    assert summary["per"]["period"] == "TTM to 202509"
    assert abs(summary["per"]["value"] - Decimal(raw["per"])) <= Decimal("0.05")
    assert summary["pbr"]["period"] == "202509"
    assert abs(summary["pbr"]["value"] - Decimal(raw["pbr"])) <= Decimal("0.01")
    assert summary["revenue"]["period"] == "202509" and summary["revenue"]["period_type"] == "quarter"
    assert summary["roe"]["value"] > 0 and summary["debt_ratio"]["value"] > 0
