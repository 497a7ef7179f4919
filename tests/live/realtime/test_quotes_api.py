"""GET /api/marketdata/quotes: live snapshot, then newest minute bar, then last daily close; never invented."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from apps.brokers.base import KST
from apps.live.realtime import keys
from apps.live.realtime.snapshots import quote_snapshot
from apps.marketdata.market_clock import MarketClockUnavailable, MarketNow

from .conftest import make_tick

URL = "/api/marketdata/quotes"
pytestmark = pytest.mark.django_db


@pytest.fixture
def stocks(db):
    from apps.marketdata.models import Stock

    return {
        code: Stock.objects.create(code=code, name=name, market="KOSPI", rank=rank)
        for rank, (code, name) in enumerate(
            [("005930", "삼성전자"), ("000660", "SK하이닉스"), ("035420", "NAVER"), ("0126Z0", "신규상장")], start=1
        )
    }


@pytest.fixture
def clock(monkeypatch):
    """The sandbox clock as the API sees it: ``clock.synthetic = True|False|None`` (None: unreachable)."""
    from apps.live import apis as quote_apis

    class Clock:
        synthetic: bool | None = False

    state = Clock()

    def fake_now(timeout: float = 3.0) -> MarketNow:
        if state.synthetic is None:
            raise MarketClockUnavailable("sandbox clock at http://127.0.0.1:1 unavailable")
        return MarketNow(
            now=dt.datetime(2026, 2, 20, 10, 0, tzinfo=KST),
            trading_date=dt.date(2026, 2, 20),
            session="continuous",
            source="sandbox",
            synthetic=state.synthetic,
        )

    monkeypatch.setattr(quote_apis, "sandbox_now", fake_now)
    return state


@pytest.fixture
def bars(stocks):
    from apps.marketdata.models import DailyBar, MinuteBar

    hynix, naver = stocks["000660"], stocks["035420"]
    for minute, close, source in [(31, 201_000, "kis"), (32, 201_500, "ws"), (30, 199_000, "kis")]:
        MinuteBar.objects.create(
            stock=hynix,
            ts=dt.datetime(2026, 2, 20, 9, minute, tzinfo=KST),
            open=200_000,
            high=202_000,
            low=199_500,
            close=close,
            volume=1_234,
            source=source,
        )
    for day, close in [(19, 214_000), (18, 212_500)]:
        DailyBar.objects.create(
            stock=naver, date=dt.date(2026, 2, day), open=210_000, high=216_000, low=209_000, close=close,
            volume=456_789, source="kis",
        )  # fmt: skip
    DailyBar.objects.create(
        stock=hynix, date=dt.date(2026, 2, 19), open=1, high=1, low=1, close=1, volume=1, source="kis"
    )


def test_each_fallback_level_states_its_source_and_as_of(api_client, clean_redis, bars, clock):
    snapshot = quote_snapshot(make_tick("005930", 3))
    clean_redis.hset(keys.QUOTES_HASH, "005930", json.dumps(snapshot))
    clean_redis.set(keys.FEED_STATUS_KEY, "connected")

    response = api_client.get(URL, {"codes": "005930,000660,035420,0126Z0"})

    assert response.status_code == 200
    body = response.json()
    assert body["feed_status"] == "connected" and body["synthetic"] is False
    assert body["missing"] == ["0126Z0"]
    live, minute, daily = body["quotes"]
    assert live == {**snapshot, "source": "ws", "as_of": "2026-02-20T09:30:00+09:00"}
    assert minute == {
        "code": "000660", "price": 201_500, "open": 200_000, "high": 202_000, "low": 199_500, "volume": 1_234,
        "source": "minute_bar:ws", "as_of": "2026-02-20T09:32:00+09:00",
    }  # fmt: skip
    assert daily == {
        "code": "035420", "price": 214_000, "open": 210_000, "high": 216_000, "low": 209_000, "volume": 456_789,
        "source": "daily_bar:kis", "as_of": "2026-02-19",
    }  # fmt: skip


def test_nothing_anywhere_is_missing_not_invented(api_client, clean_redis, stocks, clock):
    clock.synthetic = True

    body = api_client.get(URL, {"codes": "005930"}).json()

    assert body == {"quotes": [], "missing": ["005930"], "feed_status": "unknown", "synthetic": True}


def test_unreachable_sandbox_clock_says_so(api_client, clean_redis, stocks, clock):
    clock.synthetic = None

    body = api_client.get(URL, {"codes": "005930"}).json()

    assert body["synthetic"] is None and "unreachable" in body["warning"]


def test_real_broker_has_no_synthetic_field(api_client, clean_redis, stocks, settings):
    settings.MARKET_BROKER = "kis"

    body = api_client.get(URL, {"codes": "005930"}).json()

    assert "synthetic" not in body and "warning" not in body


@pytest.mark.parametrize(
    ("codes", "error_code", "field_error"),
    [
        ("", "invalid_codes", "required"),
        (" , ,", "invalid_codes", "required"),
        ("005930,5930", "invalid_codes", "not a 6-character stock code: '5930'"),
        ("005930,삼성전자", "invalid_codes", "not a 6-character stock code: '삼성전자'"),
        ("005930,999999", "unknown_codes", "unknown stock code '999999'"),
        (",".join(f"{i:06d}" for i in range(101)), "invalid_codes", "at most 100 codes"),
    ],
)
def test_bad_codes_are_a_400_with_field_errors_and_nothing_else(
    api_client, clean_redis, stocks, clock, codes, error_code, field_error
):
    response = api_client.get(URL, {"codes": codes})

    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["error"]
    assert body["error"]["code"] == error_code and body["error"]["fields"] == {"codes": [field_error]}


def test_authentication_required(clean_redis, stocks):
    from rest_framework.test import APIClient

    response = APIClient().get(URL, {"codes": "005930"})

    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] == "not_authenticated"
