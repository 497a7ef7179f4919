"""Equity snapshots rebuilt from executions and recorded after the close, the figures and benchmark over the
API and on the portfolio page, the CSV exports; owner checks and hostile parameters."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.marketdata.models import DailyBar, Stock
from apps.portfolio.models import EquitySnapshot
from apps.portfolio.selectors import account_analytics, equity_rebuild
from apps.portfolio.services import equity_snapshot_record, equity_snapshots_rebuild
from apps.trading.accounts.models import PaperAccount
from apps.trading.orders.fills import order_fill_apply
from apps.trading.orders.models import Execution

from ..trading.orders.conftest import open_market

pytestmark = pytest.mark.django_db

DAY1, DAY2, DAY3 = dt.date(2026, 3, 3), dt.date(2026, 3, 4), dt.date(2026, 3, 5)


def _bar(stock, day, close):
    DailyBar.objects.create(
        stock=stock, date=day, open=close, high=close, low=close, close=close, volume=1, source="kis"
    )


@pytest.fixture
def traded(account, stock, place, tick):
    """Bought 10 at 70,000 on DAY1 (close 71,000), sold 10 at 72,000 on DAY2 (close 72,500); DAY3 flat."""
    _bar(stock, DAY1, 71_000)
    _bar(stock, DAY2, 72_500)
    _bar(stock, DAY3, 73_000)
    place("BUY", 10, 70_000)
    order_fill_apply(tick=tick(70_000, 100))
    place("SELL", 10, 72_000, market=open_market(DAY2))
    order_fill_apply(tick=tick(72_000, 100, day=DAY2))
    return account


def test_the_series_is_rebuilt_from_executions_and_agrees_with_the_account(traded):
    sell = Execution.objects.get(side="SELL")
    states = equity_rebuild(account=traded, end=DAY3)
    assert [s.day for s in states] == [DAY1, DAY2, DAY3]
    day1, day2, day3 = states
    assert (day1.cash, day1.positions_value, day1.equity, day1.net_flow) == (9_299_895, 710_000, 10_009_895, 10_000_000)
    assert (day1.bought, day1.fees, day1.holdings) == (700_000, 105, {"005930": 10})
    cash2 = 9_299_895 + 720_000 - sell.commission - sell.tax
    assert (day2.cash, day2.positions_value, day2.equity, day2.net_flow) == (cash2, 0, cash2, 0)
    assert (day2.sold, day2.realized_pnl, day2.taxes) == (720_000, 20_000, sell.tax)
    assert (day3.equity, day3.bought, day3.sold) == (cash2, 0, 0)
    traded.refresh_from_db()
    assert day3.cash == traded.cash  # rebuilt = the account's own cash, to the won


def test_the_series_ends_at_the_last_session_however_far_the_end_asked(api_client, traded):
    from apps.portfolio.selectors import last_session_day

    states = equity_rebuild(account=traded, end=dt.date(2030, 1, 1))
    assert states[-1].day == last_session_day()
    far = api_client.get(f"/api/portfolio/accounts/{traded.pk}/analytics?start=2026-03-04&end=2099-12-31")
    assert far.status_code == 200 and far.json()["start"] == "2026-03-04"
    ancient = api_client.get(f"/api/portfolio/accounts/{traded.pk}/analytics?end=1999-01-01")
    assert ancient.status_code == 200 and ancient.json()["days"] == 0 and ancient.json()["series"] == []


def test_a_later_period_starts_from_the_right_holdings(traded):
    [day2] = equity_rebuild(account=traded, start=DAY2, end=DAY2)
    assert day2.net_flow == 0 and day2.sold == 720_000 and day2.bought == 0


def test_snapshots_recorded_after_the_close_and_rebuilt_on_demand(traded):
    recorded = equity_snapshot_record(account_id=traded.pk, day=DAY2)
    assert recorded.source == "close" and recorded.positions_value == 0
    assert equity_snapshots_rebuild(account_id=traded.pk, end=DAY3) == 2  # DAY1 and DAY3; DAY2 kept
    rows = list(EquitySnapshot.objects.order_by("date").values_list("date", "source", "equity"))
    assert rows == [(DAY1, "rebuild", 10_009_895), (DAY2, "close", recorded.equity), (DAY3, "rebuild", recorded.equity)]
    assert equity_snapshots_rebuild(account_id=traded.pk, end=DAY3) == 2  # idempotent: replaced, not added
    assert EquitySnapshot.objects.count() == 3


def test_the_after_close_task_skips_days_without_a_session(traded):
    from apps.portfolio.tasks import portfolio_snapshots_record

    assert portfolio_snapshots_record.apply(kwargs={"day": "2026-03-07"}).get() == 0  # a Saturday
    assert portfolio_snapshots_record.apply(kwargs={"day": DAY2.isoformat()}).get() == 1
    assert EquitySnapshot.objects.get().date == DAY2


def test_figures_and_benchmark(traded, stock, settings):
    settings.PORTFOLIO_BENCHMARK_CODE = "KOSPI"
    data = account_analytics(account=traded, end=DAY3)
    sell = Execution.objects.get(side="SELL")
    assert (data["start"], data["end"], data["days"]) == ("2026-03-03", "2026-03-05", 3)
    assert data["benchmark"] == {"code": "KOSPI", "available": False}  # no index bars stored
    figures = data["figures"]
    final = 9_299_895 + 720_000 - sell.commission - sell.tax
    assert figures["end_equity"] == final
    assert figures["total_return"] == pytest.approx(final / 10_000_000 - 1, abs=1e-6)
    assert (figures["trades"], figures["wins"], figures["win_rate"]) == (1, 1, 1.0)
    assert figures["avg_win"] == 20_000 - sell.commission - sell.tax
    assert (figures["fees"], figures["taxes"], figures["traded_amount"]) == (105 + sell.commission, sell.tax, 1_420_000)
    # a new high every day (the sell above the close bought at): no drawdown, so no Calmar
    assert (figures["max_drawdown"], figures["max_drawdown_trough"], figures["calmar"]) == (0.0, None, None)

    with_stock = account_analytics(account=traded, end=DAY3, benchmark="005930")
    assert with_stock["benchmark"] == {"code": "005930", "available": True}
    assert [p["benchmark"] for p in with_stock["series"]] == [
        100.0,
        pytest.approx(72_500 / 71_000 * 100, abs=1e-4),
        pytest.approx(73_000 / 71_000 * 100, abs=1e-4),
    ]


def test_analytics_api_is_owner_checked_and_validates_input(api_client, traded, django_user_model):
    from apps.trading.accounts.services import paper_account_create

    ok = api_client.get(f"/api/portfolio/accounts/{traded.pk}/analytics?end=2026-03-05&benchmark=005930")
    assert ok.status_code == 200 and ok.json()["figures"]["trades"] == 1 and len(ok.json()["series"]) == 3

    other = django_user_model.objects.create_user(username="other", password="pw-12345678")
    theirs = paper_account_create(user=other, name="x", initial_cash=1_000_000)
    for path in ("analytics", "executions.csv", "realized-pnl.csv?year=2026"):
        response = api_client.get(f"/api/portfolio/accounts/{theirs.pk}/{path}")
        assert (response.status_code, response.json()["error"]["code"]) == (404, "account_not_found")
    assert (
        api_client.post(f"/api/portfolio/accounts/{theirs.pk}/snapshots/rebuild", {}, format="json").status_code == 404
    )

    base = f"/api/portfolio/accounts/{traded.pk}"
    hostile = {
        f"{base}/analytics?start=2026-13-01": "invalid_date",
        f"{base}/analytics?start=20260301": "invalid_date",
        f"{base}/analytics?start=2026-03-05&end=2026-03-01": "invalid_period",
        f"{base}/analytics?benchmark=../../etc": "invalid_benchmark",
        f"{base}/analytics?benchmark=" + "A" * 200: "invalid_benchmark",
        f"{base}/executions.csv?year=20x6": "invalid_year",
        f"{base}/executions.csv?lang=fr": "invalid_lang",
        f"{base}/realized-pnl.csv": "invalid_year",
        f"{base}/realized-pnl.csv?year=99999": "invalid_year",
    }
    for url, code in hostile.items():
        response = api_client.get(url)
        assert (response.status_code, response.json()["error"]["code"]) == (400, code), url
    bad = api_client.post(f"{base}/snapshots/rebuild", {"start": "yesterday"}, format="json")
    assert bad.status_code == 400


def test_csv_exports_with_korean_and_english_headers(api_client, traded):
    sell = Execution.objects.get(side="SELL")
    korean = api_client.get(f"/api/portfolio/accounts/{traded.pk}/executions.csv")
    assert korean["Content-Type"] == "text/csv; charset=utf-8"
    text = korean.content.decode("utf-8")
    assert text.startswith(
        "\ufeff체결시각,주문번호,종목코드,종목명,매매구분,체결가,체결수량,체결금액,수수료,거래세,실현손익,체결근거\r\n"
    )
    lines = text.strip().split("\r\n")
    assert len(lines) == 3 and ",005930,Stock 005930,매수,70000,10,700000,105,0,," in lines[1]
    english = api_client.get(f"/api/portfolio/accounts/{traded.pk}/executions.csv?lang=en&year=2026").content.decode()
    assert english.split("\r\n")[0] == (
        "\ufeffExecuted at (KST),Order,Code,Name,Side,Price (KRW),Quantity,Amount (KRW),Commission (KRW),Tax (KRW),"
        "Realized P&L (KRW gross),Priced from".replace("KRW gross", "KRW, gross").replace(
            "Realized P&L (KRW, gross)", '"Realized P&L (KRW, gross)"'
        )
    )
    assert (
        api_client.get(f"/api/portfolio/accounts/{traded.pk}/executions.csv?year=2025").content.decode().count("\r\n")
        == 1
    )  # the header only

    statement = api_client.get(f"/api/portfolio/accounts/{traded.pk}/realized-pnl.csv?year=2026").content.decode()
    rows = statement.strip().split("\r\n")
    assert rows[0] == "\ufeff종목코드,종목명,매도수량,매도금액,매입원가,실현손익,수수료,거래세,순손익"
    net = 20_000 - 105 - sell.commission - sell.tax
    assert rows[1] == f"005930,Stock 005930,10,720000,700000,20000,{105 + sell.commission},{sell.tax},{net}"
    assert rows[2] == f"합계,2026,10,720000,700000,20000,{105 + sell.commission},{sell.tax},{net}"
    english = api_client.get(f"/api/portfolio/accounts/{traded.pk}/realized-pnl.csv?year=2026&lang=en").content.decode()
    assert english.split("\r\n")[2].startswith("Total,2026,")


def test_spreadsheet_formulas_in_names_are_neutralised(api_client, traded):
    Stock.objects.filter(code="005930").update(name='=HYPERLINK("http://x")')
    text = api_client.get(f"/api/portfolio/accounts/{traded.pk}/executions.csv").content.decode()
    assert ",\"'=HYPERLINK" in text and ",=HYPERLINK" not in text and ',"=HYPERLINK' not in text


def test_the_portfolio_page_shows_the_curve_figures_and_the_missing_index(client, user, traded):
    client.force_login(user)
    page = client.get(f"/portfolio/?account={traded.pk}").content.decode()
    assert 'id="equity-chart"' in page and 'id="drawdown-chart"' in page and 'id="analytics-series"' in page
    assert 'id="benchmark-missing"' in page
    assert 'data-figure="win_rate">+100.0% (1/1)' in page
    assert "js/portfolio_analytics.js" in page
    page = client.get(f"/portfolio/?account={traded.pk}&benchmark=005930").content.decode()
    assert 'id="benchmark-missing"' not in page
    assert client.get(f"/portfolio/?account={traded.pk}&benchmark=<script>").status_code == 200


def test_a_reset_starts_a_new_life(traded, user):
    from apps.trading.orders.release import paper_account_reset

    paper_account_reset(account_id=traded.pk, user=user)
    traded.refresh_from_db()
    assert PaperAccount.objects.get(pk=traded.pk).reset_at is not None
    states = equity_rebuild(account=traded)
    assert all(s.bought == 0 and s.sold == 0 for s in states)
    assert states == [] or states[0].net_flow == traded.initial_cash


def test_drawdown_and_its_dates_from_marked_positions(account, stock, place, tick):
    _bar(stock, DAY1, 71_000)
    _bar(stock, DAY2, 65_000)
    _bar(stock, DAY3, 72_000)
    place("BUY", 10, 70_000)
    order_fill_apply(tick=tick(70_000, 100))  # 700,000 + 105 commission

    data = account_analytics(account=account, end=DAY3)
    assert [p["equity"] for p in data["series"]] == [10_009_895, 9_949_895, 10_019_895]
    figures = data["figures"]
    assert figures["max_drawdown"] == pytest.approx(9_949_895 / 10_009_895 - 1, abs=1e-6)
    assert (figures["max_drawdown_peak"], figures["max_drawdown_trough"], figures["max_drawdown_recovery"]) == (
        "2026-03-03", "2026-03-04", "2026-03-05",
    )  # fmt: skip
    assert [p["drawdown"] for p in data["series"]] == [0, pytest.approx(figures["max_drawdown"], abs=1e-6), 0]
    assert figures["total_return"] == pytest.approx(0.0019895, abs=1e-6)  # rounded to 6 places
    assert (figures["trades"], figures["win_rate"], figures["profit_factor"]) == (0, None, None)
