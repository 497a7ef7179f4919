"""The fundamentals panels: the stock page's flows chart and table (with intraday estimates labelled) and
compact fundamentals, and the dashboard's top net buyers; empty states when nothing is collected."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from apps.fundamentals.models import FinancialStatement, InvestorFlow, InvestorFlowEstimate

from .conftest import PREVIOUS_DAY, TRADING_DATE

pytestmark = pytest.mark.django_db


def _flow(stock, day, foreign, institution, individual=None, close=70_000):
    individual = -(foreign + institution) if individual is None else individual
    return InvestorFlow.objects.create(
        stock=stock, date=day, close=close, foreign_net_qty=foreign, institution_net_qty=institution,
        individual_net_qty=individual, other_corp_net_qty=0, foreign_net_value=foreign * close,
        institution_net_value=institution * close, individual_net_value=individual * close,
    )  # fmt: skip


def _statement(stock, kind, period_type, period, **values):
    month = int(period[4:])
    end = dt.date(int(period[:4]), month, 30 if month in (6, 9) else 31)
    FinancialStatement.objects.create(stock=stock, kind=kind, period_type=period_type, period=period, period_end=end,
                                      values={k: str(v) for k, v in values.items()})  # fmt: skip


def test_stock_page_shows_flows_aligned_with_the_close_and_labelled_estimates(web, samsung, market):
    _flow(samsung, PREVIOUS_DAY - dt.timedelta(days=1), 1_000, -400, close=69_000)
    _flow(samsung, PREVIOUS_DAY, -300, 200, close=70_000)
    InvestorFlowEstimate.objects.create(
        stock=samsung, date=TRADING_DATE, slot=1, slot_time=dt.time(9, 30), foreign_qty=5_000
    )

    html = web.get("/stocks/005930/").content.decode()

    panel = re.search(r'<section class="card flows-card".*?</section>', html, re.S).group(0)
    assert '<svg id="flows-chart"' in panel
    assert panel.count('<rect class="net foreign"') == 2
    assert panel.count('<polyline class="cum ') == 3
    assert "2026-02-18 ~ 2026-02-19" in panel
    rows = re.findall(r'<tr data-date="([^"]+)">(.*?)</tr>', panel, re.S)
    assert [d for d, _ in rows] == ["2026-02-19", "2026-02-18"]
    assert "-300" in rows[0][1] and "+200" in rows[0][1]
    estimates = re.search(r'<div id="flow-estimates".*?</div>', panel, re.S).group(0)
    assert "장중 추정" in estimates and "확정치가 아닙니다" in estimates
    assert "09:30" in estimates and "+5,000" in estimates


def test_stock_page_shows_the_fundamentals_with_their_periods(web, samsung, market):
    _statement(samsung, "income", "quarter", "202509", sale_account="1234.50", bsop_prti="150.25", thtr_ntin="100")
    _statement(samsung, "income", "annual", "202412", sale_account="1500", bsop_prti="170", thtr_ntin="120")
    _statement(samsung, "ratio", "quarter", "202509", roe_val="8.50", lblt_rate="45.10", eps="1000", bps="35000")
    _statement(samsung, "ratio", "quarter", "202409", eps="900", bps="33000")
    _statement(samsung, "ratio", "annual", "202412", eps="1300", bps="34000")

    html = web.get("/stocks/005930/").content.decode()

    panel = re.search(r'<section class="card fundamentals-card".*?</section>', html, re.S).group(0)

    def item(name: str) -> str:
        row = re.search(rf'<tr data-item="{name}">(.*?)</tr>', panel, re.S).group(1)
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()

    assert item("revenue") == "매출액 1,235억 202509 누적"
    assert item("roe") == "ROE 8.50% 202509"
    assert item("debt_ratio") == "부채비율 45.10% 202509"
    # PER over TTM EPS 1000 + 1300 - 900 = 1400 at the latest close 70,000 (conftest's previous-day bar): 50.00.
    assert item("per") == "PER 50.00배 EPS TTM to 202509"
    assert item("pbr") == "PBR 2.00배 BPS 202509"


def test_stock_page_says_when_nothing_is_collected(web, samsung, market):
    html = web.get("/stocks/005930/").content.decode()
    assert "수급 자료가 아직 없습니다" in html
    assert "재무제표가 아직 없습니다" in html


def test_dashboard_lists_top_net_buyers_by_foreigners_and_institutions(web, stocks, market):
    samsung, hynix = stocks
    _flow(samsung, PREVIOUS_DAY, 1_000, -500)
    _flow(hynix, PREVIOUS_DAY, 3_000, 200, close=150_000)

    html = web.get("/").content.decode()

    foreign = re.search(r'<table id="top-foreign".*?</table>', html, re.S).group(0)
    institution = re.search(r'<table id="top-institution".*?</table>', html, re.S).group(0)
    assert re.findall(r'<tr data-code="(\d+)">', foreign) == ["000660", "005930"]
    assert re.findall(r'<tr data-code="(\d+)">', institution) == ["000660"]  # 005930: net seller
    assert "2026-02-19" in foreign
    assert "+4.5" in foreign  # 3,000 shares x 150,000 KRW = 4.5억


def test_data_quality_page_reports_that_flows_have_no_second_source(web, samsung, market):
    from apps.fundamentals.services import flows_validate

    assert "수급 검증 기록이 없습니다" in web.get("/data-quality/").content.decode()
    _flow(samsung, PREVIOUS_DAY, 10, -10)
    flows_validate(date_from=PREVIOUS_DAY, date_to=TRADING_DATE)

    html = web.get("/data-quality/").content.decode()

    panel = re.search(r'<section class="card" id="flow-validation".*?</section>', html, re.S).group(0)
    assert "두 번째 출처 없음" in panel and "only kis is stored for 2026-02-19..2026-02-20" in panel
