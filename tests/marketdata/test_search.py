"""Stock search: code, Hangul name, 초성 and romanised name over the whole listing, from memory, ranked."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from django.conf import settings

from apps.marketdata.models import Stock
from apps.marketdata.search import SearchIndex, chosung, romanize, sound_key

LISTING = Path(settings.HOGA_DATA_DIR or "/nonexistent") / "listing/krx_all_listed_2026-02-20.csv"


def whole_listing() -> SearchIndex:
    if not LISTING.is_file():
        pytest.skip("the recorded all-listed file is not available")
    with LISTING.open(encoding="utf-8") as handle:
        rows = [
            (r["Code"], r["Name"], r["Market"], int(r["Rank"]) <= 50, int(r["Marcap"]), False, False, "")
            for r in csv.DictReader(handle)
        ]
    return SearchIndex(rows)


def codes(hits) -> list[str]:
    return [h.entry.code for h in hits]


def test_initial_consonants_and_romanisation():
    assert chosung("삼성전자") == "ㅅㅅㅈㅈ"
    assert chosung("SK하이닉스") == "skㅎㅇㄴㅅ"
    assert romanize("삼성전자") == "samseongjeonja"
    assert romanize("카카오") == "kakao" and romanize("셀트리온") == "selteurion"
    for english, korean in [("samsung", "삼성"), ("hyundai", "현대"), ("kakao", "카카오"), ("celltrion", "셀트리온"),
                            ("posco", "포스코"), ("kia", "기아"), ("hanwha", "한화")]:  # fmt: skip
        assert sound_key(english) == sound_key(romanize(korean)), english


@pytest.mark.parametrize(
    ("query", "first", "match"),
    [
        ("ㅅㅅㅈㅈ", "005930", "chosung"),
        ("삼성전자", "005930", "name"),
        ("005930", "005930", "code"),
        ("00593", "005930", "code"),
        ("samsung", "005930", "roman"),
        ("Samsung Electronics"[:7], "005930", "roman"),
        ("sk하이", "000660", "name"),
        ("naver", "035420", "name"),
        ("ㅋㅋㅇ", "035720", "chosung"),
        ("카카ㅇ", "035720", "chosung"),
        ("celltrion", "068270", "roman"),
        ("hyundai", "005380", "roman"),
        ("기아", "000270", "name"),
    ],
)
def test_the_whole_listing_answers(query, first, match):
    index = whole_listing()
    assert len(index) == 2882

    hits = index.search(query, limit=10)

    assert (hits[0].entry.code, hits[0].match) == (first, match)


def test_exact_before_prefix_before_anywhere_and_the_universe_first():
    index = SearchIndex([
        ("000001", "가나전자", "KOSPI", False, 10**12, False, False, ""),
        ("000002", "전자", "KOSDAQ", False, 10, False, False, ""),
        ("000003", "전자부품", "KOSDAQ", False, 10**9, False, False, ""),
        ("000004", "전자소재", "KOSDAQ", True, 10, False, False, ""),
    ])  # fmt: skip

    assert codes(index.search("전자")) == ["000002", "000004", "000003", "000001"]
    assert codes(index.search("전자", limit=2)) == ["000002", "000004"]
    assert index.search("   ") == [] and index.search("zzzz") == []


def test_regex_characters_are_literal():
    index = SearchIndex([("000001", "a.b(c)ㅅ", "KOSPI", False, 0, False, False, ""),
                         ("000002", "axb", "KOSPI", False, 0, False, False, "")])  # fmt: skip
    assert codes(index.search("a.b(ㅅ")) == [] and codes(index.search("a.b(c)")) == ["000001"]
    assert codes(index.search("a.b")) == ["000001"]


# --- the API ---------------------------------------------------------------------------------------------------


@pytest.fixture
def listed(db):
    Stock.objects.create(code="005930", name="삼성전자", market="KOSPI", rank=1, market_cap=10**15)
    Stock.objects.create(code="005935", name="삼성전자우", market="KOSPI", in_universe=False, market_cap=10**14)
    Stock.objects.create(code="263810", name="상신전자", market="KOSDAQ", in_universe=False, halted=True,
                         warning="caution")  # fmt: skip
    Stock.objects.create(code="123450", name="삼성폐지", market="KOSPI", active=False, in_universe=False)


def test_search_api_answers_with_flags_and_what_matched(api_client, listed):
    response = api_client.get("/api/marketdata/stocks/search", {"q": "ㅅㅅㅈㅈ"})

    assert response.status_code == 200
    assert response.json() == [
        {"code": "005930", "name": "삼성전자", "market": "KOSPI", "in_universe": True, "halted": False,
         "administrative": False, "warning": "", "match": "chosung"},
        {"code": "005935", "name": "삼성전자우", "market": "KOSPI", "in_universe": False, "halted": False,
         "administrative": False, "warning": "", "match": "chosung"},
        {"code": "263810", "name": "상신전자", "market": "KOSDAQ", "in_universe": False, "halted": True,
         "administrative": False, "warning": "caution", "match": "chosung"},
    ]  # fmt: skip
    assert [h["code"] for h in api_client.get("/api/marketdata/stocks/search", {"q": "삼성"}).json()] == [
        "005930",
        "005935",
    ]  # fmt: skip  (the delisted one is not listed)


def test_a_listing_change_is_searchable_at_once(api_client, listed):
    assert api_client.get("/api/marketdata/stocks/search", {"q": "새로상장"}).json() == []
    Stock.objects.create(code="999990", name="새로상장", market="KOSDAQ", in_universe=False)

    assert [h["code"] for h in api_client.get("/api/marketdata/stocks/search", {"q": "새로상장"}).json()] == ["999990"]


@pytest.mark.parametrize(
    "params",
    [{}, {"q": ""}, {"q": "   "}, {"q": "가" * 41}, {"q": "삼성\x00"}, {"q": "a\nb"}, {"q": "삼성", "limit": "0"},
     {"q": "삼성", "limit": "31"}, {"q": "삼성", "limit": "-1"}, {"q": "삼성", "limit": "1e3"}],
)  # fmt: skip
def test_bad_searches_are_coded_400s(api_client, listed, params):
    response = api_client.get("/api/marketdata/stocks/search", params)

    assert response.status_code == 400
    # control characters are refused by the middleware before the view (code invalid_characters)
    assert response.json()["error"]["code"] in ("invalid_search", "invalid_characters")


def test_search_needs_a_login(client, listed):
    assert client.get("/api/marketdata/stocks/search", {"q": "삼성"}).status_code in (401, 403)


def test_the_search_page_without_javascript_opens_the_best_match(client, user, listed):
    client.force_login(user)

    assert client.get("/stocks/", {"q": "ㅅㅅㅈㅈ"})["Location"] == "/stocks/005930/"
    assert client.get("/stocks/", {"q": "없는종목"})["Location"] == "/"
    assert client.get("/stocks/", {"q": "가" * 5000})["Location"] == "/"
    assert client.get("/stocks/", {"q": "\x00"}).status_code == 400
