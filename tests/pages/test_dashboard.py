"""The dashboard: the universe's latest quotes rendered from the Redis snapshots (or the newest stored bar),
the market clock, the session, the feed status and the synthetic-data banner."""

from __future__ import annotations

import datetime as dt
import re
import socket

import pytest

from apps.core.krx.calendar import KST
from apps.live.realtime import keys

from .conftest import TRADING_DATE, store_quote

pytestmark = pytest.mark.django_db


def _row(html: str, code: str) -> str:
    match = re.search(rf'<tr data-code="{code}"[^>]*>(.*?)</tr>', html, re.S)
    assert match, code
    return match.group(1)


def _cell(row: str, field: str) -> tuple[str, str]:
    """(class attribute, text) of the row's ``data-field`` cell."""
    match = re.search(rf'<td data-field="{field}"(?: class="([^"]*)")?>(.*?)</td>', row, re.S)
    assert match, field
    return (match.group(1) or "").strip(), re.sub(r"<[^>]+>", "", match.group(2)).strip()


def test_watchlist_renders_live_snapshots_and_bar_fallbacks(web, stocks, market, clean_redis):
    from apps.marketdata.models import MinuteBar

    store_quote(clean_redis, "005930", price=71_000, change=1_000, change_rate="1.43", cum_volume=1_234_567)
    MinuteBar.objects.create(
        stock=stocks[1], ts=dt.datetime.combine(TRADING_DATE, dt.time(9, 30), tzinfo=KST), open=150_000,
        high=151_000, low=149_000, close=148_500, volume=42, source="kis",
    )  # fmt: skip

    html = web.get("/").content.decode()

    assert '<table id="watchlist"' in html
    assert re.findall(r'<tr data-code="(\d{6})"', html) == ["005930", "000660"]
    samsung = _row(html, "005930")
    assert _cell(samsung, "name")[1].startswith("삼성전자")
    assert _cell(samsung, "price") == ("num up", "71,000")
    assert _cell(samsung, "change") == ("num up", "▲ 1,000")
    assert _cell(samsung, "change_rate") == ("num up", "+1.43%")
    assert _cell(samsung, "volume") == ("num", "1,234,567")
    assert 'href="/stocks/005930/"' in samsung
    # No live tick for 000660: the newest minute bar, compared with the previous close (150,000).
    hynix = _row(html, "000660")
    assert _cell(hynix, "price") == ("num down", "148,500")
    assert _cell(hynix, "change") == ("num down", "▼ 1,500")
    assert _cell(hynix, "change_rate") == ("num down", "-1.00%")
    for label in ("종목명", "현재가", "등락률"):
        assert label in html


def test_market_clock_session_and_feed_status(web, stocks, pin_market, clean_redis):
    pin_market("continuous")
    clean_redis.set(keys.FEED_STATUS_KEY, "stale")

    html = web.get("/").content.decode()

    assert re.search(
        r'<time id="market-clock" datetime="2026-02-20T10:00:00\+09:00">2026-02-20 10:00:00 KST</time>', html
    )
    assert re.search(r'<strong id="session-state" data-session="continuous">정규장', html)
    assert re.search(r'<strong id="feed-status" data-status="stale">지연</strong>', html)
    assert 'id="synthetic-banner"' not in html


def test_synthetic_banner_only_when_the_sandbox_replays_synthetic_data(web, stocks, pin_market):
    pin_market("closed", synthetic=True)

    html = web.get("/").content.decode()

    assert 'id="synthetic-banner"' in html
    assert re.search(r'data-session="closed">장 마감', html)
    assert re.search(r'id="feed-status" data-status="unknown"', html)  # nothing in Redis


def test_unreachable_market_clock_still_renders_the_snapshot(web, stocks, settings, clean_redis):
    """The sandbox clock is a real HTTP call; with nothing listening the page says unknown and still works."""
    from apps.marketdata import market_clock

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        settings.SANDBOX_PAPER_REST_PORT = probe.getsockname()[1]  # closed again when the block ends
    settings.SANDBOX_CONNECT_HOST, settings.KIS_ENV = "127.0.0.1", "paper"
    market_clock._sandbox_cache.clear()
    store_quote(clean_redis, "005930", price=69_900, change=-100, change_rate="-0.14")

    response = web.get("/")

    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'<strong id="session-state" data-session="unknown">', html)
    assert '<time id="market-clock">알 수 없음</time>' in html
    assert _cell(_row(html, "005930"), "price") == ("num down", "69,900")
    status = web.get("/market/status.json").json()
    assert (status["available"], status["session"], status["synthetic"]) == (False, "unknown", False)


def test_market_status_json(web, pin_market, clean_redis):
    pin_market("closing_auction", synthetic=True)
    clean_redis.set(keys.FEED_STATUS_KEY, "connected")

    data = web.get("/market/status.json").json()

    assert data["now"] == "2026-02-20T10:00:00+09:00"
    assert (data["session"], data["synthetic"], data["feed_status"], data["trading_date"]) == (
        "closing_auction",
        True,
        "connected",
        "2026-02-20",
    )


def test_next_closures_and_shifted_sessions(web, stocks, monkeypatch):
    from apps.marketdata.market_clock import MarketNow
    from apps.marketdata.models import CalendarOverride

    day = dt.date(2026, 10, 26)
    market = MarketNow(
        now=dt.datetime.combine(day, dt.time(10, 0), tzinfo=KST), trading_date=day, session="continuous",
        source="sandbox",
    )  # fmt: skip
    monkeypatch.setattr("apps.marketdata.market_clock.sandbox_now", lambda timeout=3.0, calendar=None: market)
    CalendarOverride.objects.create(date=dt.date(2026, 12, 1), closed=True, note="<b>시스템 점검</b>")

    html = web.get("/").content.decode()

    notes = re.findall(r'<li data-date="([\d-]+)" data-closed="(\w+)" data-source="(\w+)">(.*?)</li>', html, re.S)
    shown = [
        (d, closed, source, re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", text)).strip())
        for d, closed, source, text in notes
    ]
    assert shown == [
        (
            "2026-11-19",
            "false",
            "announced",
            "2026-11-19 (목요일) 10:00~16:30 · 수능 (announced)",
        ),
        (
            "2026-12-01",
            "true",
            "override",
            "2026-12-01 (화요일) 휴장 · &lt;b&gt;시스템 점검&lt;/b&gt; (override)",
        ),
        ("2026-12-25", "true", "announced", "2026-12-25 (금요일) 휴장 · 성탄절 (announced)"),
    ]
    assert "&lt;b&gt;시스템 점검&lt;/b&gt;" in html  # an operator's note is text, never markup


def test_a_stock_with_only_the_brokers_base_price_is_not_blank(web, market, clean_redis):
    from apps.marketdata.models import ReferencePrice, Stock

    stock = Stock.objects.create(code="373220", name="LG에너지솔루션", market="KOSPI", rank=1)
    ReferencePrice.objects.create(stock=stock, trading_date=TRADING_DATE, price=400_000, source="broker_quote")

    row = _row(web.get("/").content.decode(), "373220")
    page = web.get("/stocks/373220/").content.decode()

    assert _cell(row, "price")[1] == "400,000"
    assert _cell(row, "change")[1] in ("0", "—", "-")
    assert "기준가 400,000원" in page
    assert "the broker&#x27;s base price (stck_sdpr)" in page
