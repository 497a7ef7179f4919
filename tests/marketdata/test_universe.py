from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from apps.marketdata.models import Stock


@pytest.mark.django_db
def test_load_universe_from_listing_file(tmp_path, capsys):
    listing = tmp_path / "listing.csv"
    listing.write_text(
        "Date,Rank,Code,Name,Market,Close,Marcap,Stocks,Volume,Amount\n"
        "2026-02-20,2,000660,SK하이닉스,KOSPI,949000,690874244385000,728002365,5054333,4678702303000\n"
        "2026-02-20,1,5930,삼성전자,KOSPI,190100,1125323168972200,5919637922,24213880,4591033033030\n"
        "2026-02-20,3,196170,알테오젠,KOSDAQ GLOBAL,400000,21000000000000,53000000,100,100\n",
        encoding="utf-8",
    )

    call_command("load_universe", file=str(listing), size=2)

    assert list(Stock.objects.values_list("code", "name", "market", "rank")) == [
        ("005930", "삼성전자", "KOSPI", 1),
        ("000660", "SK하이닉스", "KOSPI", 2),
    ]
    assert "universe: 2 stocks" in capsys.readouterr().out


@pytest.mark.django_db
def test_refresh_drops_stocks_from_the_universe_and_keeps_them_listed(tmp_path):
    Stock.objects.create(code="035720", name="카카오", market="KOSPI", rank=9)
    listing = tmp_path / "listing.csv"
    listing.write_text(
        "Date,Rank,Code,Name,Market,Close,Marcap,Stocks,Volume,Amount\n2026-02-20,1,005930,삼성전자,KOSPI,1,1,1,1,1\n"
    )

    call_command("load_universe", file=str(listing))

    kakao = Stock.objects.get(code="035720")
    assert (kakao.active, kakao.in_universe, kakao.rank) == (True, False, None)
    assert Stock.objects.filter(in_universe=True).count() == 1


@pytest.mark.django_db
def test_malformed_listing_is_rejected_and_changes_nothing(tmp_path):
    Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    listing = tmp_path / "bad.csv"
    listing.write_text(
        "Date,Rank,Code,Name,Market,Close,Marcap,Stocks,Volume,Amount\n"
        "2026-02-20,1,000660,SK하이닉스,KOSPI,1,1,1,1,1\n"
        "2026-02-20,x,035420,NAVER,NYSE,1,1,1,1,1\n"
    )

    with pytest.raises(CommandError, match="bad code/market/name"):
        call_command("load_universe", file=str(listing))

    assert list(Stock.objects.values_list("code", "active")) == [("005930", True)]


@pytest.mark.django_db
def test_builtin_universe_without_data_dir(settings, capsys):
    settings.HOGA_DATA_DIR = ""

    call_command("load_universe", size=3)

    assert list(Stock.objects.values_list("code", flat=True)) == ["005930", "000660", "005380"]
    assert "built-in list" in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.skipif(not settings.HOGA_DATA_DIR, reason="HOGA_DATA_DIR is not available")
def test_recorded_listing_gives_the_top_50():
    call_command("load_universe")

    stocks = list(Stock.objects.filter(active=True))
    assert len(stocks) == 50
    assert (stocks[0].code, stocks[0].name, stocks[0].rank) == ("005930", "삼성전자", 1)
    assert {s.market for s in stocks} <= {"KOSPI", "KOSDAQ"}
    assert Path(settings.HOGA_DATA_DIR).is_dir()


@pytest.mark.django_db
def test_stock_api_filters_by_market(api_client):
    Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1)
    Stock.objects.create(code="247540", name="에코프로비엠", market="KOSDAQ", rank=30)

    response = api_client.get("/api/marketdata/stocks/", {"market": "KOSDAQ"})

    assert response.status_code == 200
    assert [s["code"] for s in response.json()] == ["247540"]
