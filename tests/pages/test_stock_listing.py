"""The stock page of any listed stock: its market, sector and status flags, where its quotes come from (live slot,
REST polling, stored), and that it is outside the collection universe."""

from __future__ import annotations

import re

import pytest

from apps.marketdata.models import Stock

from .conftest import store_quote

pytestmark = pytest.mark.django_db


@pytest.fixture
def listed(db):
    return Stock.objects.create(
        code="000250", name="삼천당제약", market="KOSDAQ", in_universe=False, halted=True, administrative=True,
        warning="caution", sector="",
    )  # fmt: skip


def test_flags_and_universe_are_shown(web, market, listed, monkeypatch, clean_redis):
    calls = []
    monkeypatch.setattr("apps.pages.views.stock_bars_ensure", lambda code, user_id: calls.append(code))

    response = web.get("/stocks/000250/")

    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-flag="halted"' in page and "거래정지" in page
    assert "관리종목" in page and "투자주의" in page
    assert "수집 대상 외" in page
    assert "시세 없음" in page
    assert calls == ["000250"]  # the first open fetches its bars
    assert clean_redis.zscore("hoga:marketdata:on_demand", "000250") is not None


@pytest.mark.parametrize(
    ("source", "label"),
    [("ws", "실시간 시세"), ("poll", "REST 조회 시세")],
)
def test_the_page_says_where_the_quotes_come_from(web, market, samsung, clean_redis, source, label):
    store_quote(clean_redis, samsung.code, source=source)

    page = web.get(f"/stocks/{samsung.code}/").content.decode()

    assert f'data-source="{source}"' in page and label in page
    assert "outside the collection universe" not in page and 'data-flag="halted"' not in page


def test_the_quotes_api_says_polled(web, samsung, clean_redis):
    store_quote(clean_redis, samsung.code, source="poll")

    body = web.get("/api/marketdata/quotes", {"codes": samsung.code}).json()

    assert [(q["code"], q["source"]) for q in body["quotes"]] == [(samsung.code, "poll")]


def test_a_delisted_stock_is_shown_not_fetched(web, market, monkeypatch):
    Stock.objects.create(code="123450", name="gone", market="KOSPI", active=False, in_universe=False)
    monkeypatch.setattr(
        "apps.pages.views.stock_bars_ensure", lambda code, user_id: pytest.fail("fetched a delisted stock")
    )

    page = web.get("/stocks/123450/").content.decode()

    assert "상장폐지" in page


def test_the_chart_offers_the_studies_the_user_chose(web, market, samsung, trader):
    from apps.marketdata.services import chart_studies_set

    page = web.get(f"/stocks/{samsung.code}/").content.decode()
    checked = re.findall(r'name="study" value="(\w+)" checked', page)
    assert checked == ["ma5", "ma20", "ma60", "ma120"]  # the Korean defaults
    assert 'value="rsi"' in page and 'value="macd"' in page and 'value="bb"' in page

    chart_studies_set(user=trader, studies=["bb", "rsi"])
    page = web.get(f"/stocks/{samsung.code}/").content.decode()
    assert re.findall(r'name="study" value="(\w+)" checked', page) == ["bb", "rsi"]
