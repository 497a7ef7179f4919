"""Personal watchlists over the API: several named lists per user, reorderable, private (another user's list is
a 404), bounded, and never a 5xx on bad input."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.marketdata.models import Stock
from apps.watchlists.models import Watchlist, WatchlistItem

pytestmark = pytest.mark.django_db

CODES = ["005930", "000660", "035420", "000250"]


@pytest.fixture
def stocks(db):
    names = ["삼성전자", "SK하이닉스", "NAVER", "삼천당제약"]
    made = [Stock.objects.create(code=c, name=n, market="KOSPI", in_universe=i < 3) for i, (c, n) in
            enumerate(zip(CODES, names, strict=True))]  # fmt: skip
    Stock.objects.create(code="123450", name="gone", market="KOSPI", active=False, in_universe=False)
    return made


@pytest.fixture
def other(django_user_model):
    user = django_user_model.objects.create_user(username="other", password="other-pass-123")
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_build_lists_add_reorder_and_choose(api_client, stocks):
    first = api_client.post("/api/watchlists/", {"name": "반도체"}, format="json")
    second = api_client.post("/api/watchlists/", {"name": "  플랫폼 "}, format="json")
    assert (first.status_code, second.status_code) == (201, 201)
    a, b = first.json()["id"], second.json()["id"]
    assert (first.json()["chosen"], second.json()["chosen"], second.json()["name"]) == (True, False, "플랫폼")

    for code in ["005930", "000660", "000250"]:
        assert api_client.post(f"/api/watchlists/{a}/items/", {"code": code}, format="json").status_code == 201
    again = api_client.post(f"/api/watchlists/{a}/items/", {"code": "005930"}, format="json")
    assert again.status_code == 200 and len(again.json()["items"]) == 3  # already there: nothing changes

    reordered = api_client.post(f"/api/watchlists/{a}/items/order", {"codes": ["000250", "005930", "000660"]},
                                format="json")  # fmt: skip
    assert [i["code"] for i in reordered.json()["items"]] == ["000250", "005930", "000660"]
    assert api_client.delete(f"/api/watchlists/{a}/items/005930/").status_code == 204
    assert [(i["code"], i["position"]) for i in api_client.get(f"/api/watchlists/{a}/").json()["items"]] == [
        ("000250", 0), ("000660", 1),
    ]  # fmt: skip

    assert api_client.post("/api/watchlists/order", {"ids": [b, a]}, format="json").status_code == 200
    chosen = api_client.patch(f"/api/watchlists/{b}/", {"chosen": True, "name": "플랫폼2"}, format="json").json()
    lists = api_client.get("/api/watchlists/").json()
    assert [(w["id"], w["name"], w["chosen"]) for w in lists] == [(b, "플랫폼2", True), (a, "반도체", False)]
    assert chosen["chosen"] is True
    assert api_client.delete(f"/api/watchlists/{b}/").status_code == 204
    assert [(w["id"], w["position"], w["chosen"]) for w in api_client.get("/api/watchlists/").json()] == [(a, 0, True)]


def test_default_creates_the_first_list(api_client, stocks):
    response = api_client.post("/api/watchlists/default/items/", {"code": "000250"}, format="json")

    assert response.status_code == 201
    assert (response.json()["name"], response.json()["chosen"]) == ("관심종목", True)
    assert [i["code"] for i in response.json()["items"]] == ["000250"]


def test_another_users_lists_do_not_exist(api_client, other, stocks):
    mine = api_client.post("/api/watchlists/", {"name": "mine"}, format="json").json()["id"]
    api_client.post(f"/api/watchlists/{mine}/items/", {"code": "005930"}, format="json")

    assert other.get("/api/watchlists/").json() == []
    for method, path, body in [
        ("get", f"/api/watchlists/{mine}/", None),
        ("patch", f"/api/watchlists/{mine}/", {"name": "stolen"}),
        ("patch", f"/api/watchlists/{mine}/", {"chosen": True}),
        ("delete", f"/api/watchlists/{mine}/", None),
        ("post", f"/api/watchlists/{mine}/items/", {"code": "000660"}),
        ("delete", f"/api/watchlists/{mine}/items/005930/", None),
        ("post", f"/api/watchlists/{mine}/items/order", {"codes": ["005930"]}),
    ]:
        response = getattr(other, method)(path, body, format="json")
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "watchlist_not_found"
    assert other.post("/api/watchlists/order", {"ids": [mine]}, format="json").status_code == 400
    watchlist = Watchlist.objects.get(pk=mine)
    assert (watchlist.name, watchlist.chosen, watchlist.items.count()) == ("mine", True, 1)


@pytest.mark.parametrize("path", ["0/", "-1/", "abc/", "99999999999999999999999/", "1e3/", "default2/"])
def test_malformed_ids_are_404s(api_client, stocks, path):
    response = api_client.get(f"/api/watchlists/{path}")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("", {}, "invalid_watchlist"),
        ("", {"name": ""}, "invalid_watchlist"),
        ("", {"name": "   "}, "invalid_watchlist"),
        ("", {"name": "가" * 41}, "invalid_watchlist"),
        ("", {"name": ["a"]}, "invalid_watchlist"),
        ("default/items/", {"code": "99999"}, "invalid_watchlist"),
        ("default/items/", {"code": "999999"}, "unknown_stock"),
        ("default/items/", {"code": "123450"}, "unknown_stock"),
        ("default/items/", {"code": "0059'0"}, "unknown_stock"),
        ("default/items/", {"code": None}, "invalid_watchlist"),
        ("order", {"ids": "1,2"}, "invalid_watchlist"),
        ("order", {"ids": [0]}, "invalid_watchlist"),
    ],
)
def test_bad_input_is_a_coded_400(api_client, stocks, path, body, code):
    response = api_client.post(f"/api/watchlists/{path}", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code


def test_reorders_must_name_everything_once(api_client, stocks):
    a = api_client.post("/api/watchlists/", {"name": "a"}, format="json").json()["id"]
    api_client.post("/api/watchlists/", {"name": "b"}, format="json")
    for code in ["005930", "000660"]:
        api_client.post(f"/api/watchlists/{a}/items/", {"code": code}, format="json")

    for codes in [["005930"], ["005930", "005930"], ["005930", "000660", "035420"], []]:
        response = api_client.post(f"/api/watchlists/{a}/items/order", {"codes": codes}, format="json")
        assert response.status_code == 400, codes
    for ids in [[a], [a, a], [a, a + 1000]]:
        assert api_client.post("/api/watchlists/order", {"ids": ids}, format="json").status_code == 400
    assert [i.stock.code for i in WatchlistItem.objects.filter(watchlist_id=a).order_by("position")] == [
        "005930", "000660",
    ]  # fmt: skip


def test_names_are_unique_per_user_only(api_client, other, stocks):
    assert api_client.post("/api/watchlists/", {"name": "same"}, format="json").status_code == 201
    taken = api_client.post("/api/watchlists/", {"name": "same"}, format="json")
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "watchlist_name_taken")
    assert other.post("/api/watchlists/", {"name": "same"}, format="json").status_code == 201
    b = api_client.post("/api/watchlists/", {"name": "other"}, format="json").json()["id"]
    assert api_client.patch(f"/api/watchlists/{b}/", {"name": "same"}, format="json").status_code == 409


def test_limits_on_lists_and_stocks(api_client, stocks, settings):
    settings.WATCHLISTS_MAX_PER_USER = 2
    settings.WATCHLIST_MAX_ITEMS = 3
    ids = [api_client.post("/api/watchlists/", {"name": n}, format="json").json()["id"] for n in ("a", "b")]
    full = api_client.post("/api/watchlists/", {"name": "c"}, format="json")
    assert (full.status_code, full.json()["error"]["code"]) == (409, "watchlist_limit")

    for code in CODES[:3]:
        assert api_client.post(f"/api/watchlists/{ids[0]}/items/", {"code": code}, format="json").status_code == 201
    over = api_client.post(f"/api/watchlists/{ids[0]}/items/", {"code": CODES[3]}, format="json")
    assert (over.status_code, over.json()["error"]["code"]) == (409, "watchlist_limit")
    assert Watchlist.objects.count() == 2 and WatchlistItem.objects.count() == 3


def test_lists_need_a_login(client):
    assert client.get("/api/watchlists/").status_code in (401, 403)
