"""The dashboard shows the chosen watchlist (live: its rows are what the page subscribes), the universe while
there is none; the manage page shows only your lists; the stock page offers "+ 관심종목"."""

from __future__ import annotations

import re

import pytest

from apps.marketdata.models import Stock
from apps.watchlists.services import watchlist_create, watchlist_item_add

pytestmark = pytest.mark.django_db


def row_codes(page: str) -> list[str]:
    table = page[page.index('id="watchlist"') :]
    return re.findall(r'<tr data-code="(\w+)"', table)


def test_dashboard_shows_the_chosen_list_in_its_order(web, market, stocks, trader, django_user_model):
    Stock.objects.create(code="000250", name="삼천당제약", market="KOSDAQ", in_universe=False)
    assert row_codes(web.get("/").content.decode()) == ["005930", "000660"]  # no list yet: the universe

    first = watchlist_create(user=trader, name="바이오")
    second = watchlist_create(user=trader, name="반도체")
    for code in ["000250", "005930"]:
        watchlist_item_add(user=trader, watchlist_id=first.pk, code=code)
    watchlist_item_add(user=trader, watchlist_id=second.pk, code="000660")
    page = web.get("/").content.decode()
    assert row_codes(page) == ["000250", "005930"]
    assert "바이오: 실시간" in page and f'<option value="{first.pk}" selected>' in page

    someone = django_user_model.objects.create_user(username="someone", password="x-pass-12345")
    theirs = watchlist_create(user=someone, name="남의 목록")
    watchlist_item_add(user=someone, watchlist_id=theirs.pk, code="000660")
    assert "남의 목록" not in web.get("/").content.decode()
    assert "남의 목록" not in web.get("/watchlists/").content.decode()


def test_manage_page_and_stock_page_button(web, market, samsung, trader):
    watchlist = watchlist_create(user=trader, name="내 목록")
    watchlist_item_add(user=trader, watchlist_id=watchlist.pk, code=samsung.code)

    manage = web.get("/watchlists/").content.decode()
    assert f'data-watchlist-id="{watchlist.pk}"' in manage and 'data-code="005930"' in manage

    stock = web.get(f"/stocks/{samsung.code}/").content.decode()
    assert 'id="watchlist-add-button"' in stock and f'<option value="{watchlist.pk}" selected>내 목록</option>' in stock
