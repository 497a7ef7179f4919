"""The market day on the pages: the phase bar of every signed-in page (each venue's phase and the countdown to the
next), the halted / VI badges wherever a stock is listed, the expected auction price on the stock page, the venue
and phase of every execution, and the order ticket's route and session order types (with hostile input).

Snapshots are hand-built as the feed stores them (``apps/live/realtime/snapshots.py`` plus ``phase``, ``venue``,
``halted``, ``vi`` and ``expected``); the clock is pinned to the replayed day at the time each test needs."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from apps.core.krx.calendar import KST
from apps.live.realtime.fillpath import FillTick
from apps.pages.market_day import countdown, stock_flags
from apps.trading.orders.fills import order_fill_apply
from apps.trading.orders.models import Execution, Order
from apps.trading.orders.placement import order_place

from .conftest import TRADING_DATE, store_quote

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
VI = {"kind": "dynamic", "reference": 71_000, "until": "2026-02-20T10:02:30+09:00"}


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)).strip()


def _phase_bar(html: str) -> dict[str, dict]:
    bar = re.search(r'<section class="phase-bar" id="phase-bar".*?</section>', html, re.S)
    assert bar, "no phase bar"
    lines = {}
    for match in re.finditer(
        r'<span class="phase-line" data-venue="(\w+)" data-phase="(\w+)" data-until="([^"]*)" '
        r'data-accepted="([^"]*)">(.*?)</span>\s*</span>',
        bar.group(0),
        re.S,
    ):
        venue, phase, until, accepted, body = match.groups()
        lines[venue] = {"phase": phase, "until": until, "accepted": accepted, "text": _text(body)}
    return lines


# --- the phase bar -------------------------------------------------------------------------------------------


def test_every_signed_in_page_shows_both_venues_phase_and_the_countdown(web, samsung, clock):
    clock(10, 0)

    for path in ("/", "/stocks/005930/", "/orders/", "/portfolio/", "/data-quality/", "/accounts/email/"):
        html = web.get(path).content.decode()
        lines = _phase_bar(html)
        assert set(lines) == {"KRX", "NXT"}, path
        assert lines["KRX"]["phase"] == "continuous" and lines["NXT"]["phase"] == "continuous", path
        assert lines["KRX"]["until"] == "2026-02-20T15:20:00+09:00"
        assert lines["KRX"]["text"] == ("KRX 정규장 → 장 마감 동시호가 까지 남은 시간 5:20:00")
        assert lines["NXT"]["text"].startswith("NXT 메인마켓 → 장 마감")
        assert lines["KRX"]["accepted"] == "limit,market"
        assert '<script type="module" src="/static/js/phases.js"></script>' in html


def test_phase_bar_before_the_open_names_the_opening_auction_and_nxts_pause(web, samsung, clock):
    clock(8, 59, 50)

    lines = _phase_bar(web.get("/stocks/005930/").content.decode())

    assert lines["KRX"]["phase"] == "opening_auction"
    assert lines["KRX"]["text"].endswith("장 시작 동시호가 → 정규장 까지 남은 시간 0:10")
    assert lines["NXT"]["phase"] == "closed"  # paused 08:50-09:00:30 while KRX runs its opening auction
    assert lines["NXT"]["until"] == "2026-02-20T09:00:30+09:00"
    assert lines["NXT"]["text"].endswith("→ 메인마켓 까지 남은 시간 0:40")


def test_pre_open_closing_price_session_runs_alongside_the_opening_auction(web, samsung, clock):
    clock(8, 35)

    lines = _phase_bar(web.get("/").content.decode())

    assert lines["KRX"]["text"].startswith("KRX 장 시작 동시호가 + 장전 시간외 종가")
    assert lines["KRX"]["accepted"] == "limit,market,pre_close_price"
    assert (lines["NXT"]["phase"], lines["NXT"]["accepted"]) == ("nxt_pre", "limit")


def test_after_the_regular_session_the_after_hours_phases_show(web, samsung, clock):
    clock(16, 5)

    lines = _phase_bar(web.get("/").content.decode())

    assert (lines["KRX"]["phase"], lines["KRX"]["accepted"]) == ("after_hours_single", "after_hours_single")
    assert lines["KRX"]["text"].startswith("KRX 시간외 단일가 → 장 마감")
    assert lines["KRX"]["text"].endswith("1:55:00")
    assert lines["NXT"]["text"].startswith("NXT 애프터마켓")


def test_status_json_carries_the_phases_for_the_live_bar(web, samsung, clock):
    clock(15, 19, 50)

    data = web.get("/market/status.json").json()

    krx, nxt = data["phases"]
    assert (krx["venue"], krx["phase"], krx["until"], krx["next_phase"]) == (
        "KRX", "continuous", "2026-02-20T15:20:00+09:00", "closing_auction",
    )  # fmt: skip
    assert krx["label"] == "정규장" and krx["next_label"] == "장 마감 동시호가"
    assert (nxt["venue"], nxt["label"], nxt["accepted"]) == ("NXT", "메인마켓", ["limit", "market"])


def test_no_phase_bar_for_anonymous_visitors_and_an_unknown_clock_says_so(client, web, samsung, settings, monkeypatch):
    from apps.marketdata import market_clock

    assert 'id="phase-bar"' not in client.get("/accounts/login/").content.decode()

    def down(timeout=3.0, calendar=None):
        raise market_clock.MarketClockUnavailable("sandbox down")

    monkeypatch.setattr("apps.marketdata.market_clock.sandbox_now", down)
    response = web.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "장 구분을 알 수 없습니다" in html
    assert 'data-available="false"' in html


def test_countdown_format():
    assert [countdown(s) for s in (None, 0, 9, 65, 3600, 3725, -5)] == [
        "—", "0:00", "0:09", "1:05", "1:00:00", "1:02:05", "0:00",
    ]  # fmt: skip


# --- per-stock flags and badges --------------------------------------------------------------------------------


def test_stock_flags_read_every_field_and_refuse_malformed_ones():
    good = stock_flags("005930", {"halted": True, "vi": VI, "expected": {"price": 70_500, "quantity": 12_345},
                                  "phase": "vi_auction", "venue": "KRX"})  # fmt: skip
    assert (good.halted, good.vi, good.vi_kind, good.vi_reference, good.expected_price, good.expected_quantity) == (
        True, True, "dynamic", 71_000, 70_500, 12_345,
    )  # fmt: skip
    assert good.vi_until == dt.datetime(2026, 2, 20, 10, 2, 30, tzinfo=KST)
    assert good.phase_label == "변동성완화장치 단일가"

    for bad in (
        {"halted": "true", "vi": "yes", "expected": {"price": "abc"}, "phase": "<script>", "venue": "XYZ"},
        {"halted": 1, "vi": [], "expected": {"price": -5, "quantity": 3}},
        {"expected": {"price": True, "quantity": 1}, "vi": None},
        {"expected": {"price": 10**15}},
        {"expected": {"price": "9" * 5000, "quantity": "²"}, "halted": None},
        None,
        [],
    ):
        flags = stock_flags("005930", bad)
        assert (flags.halted, flags.vi, flags.expected_price, flags.phase, flags.venue) == (
            False, False, None, None, None,
        ), bad  # fmt: skip
    # The VI phase alone is a VI of unknown kind.
    phase_only = stock_flags("005930", {"phase": "vi_auction", "vi": None})
    assert (phase_only.vi, phase_only.vi_kind, phase_only.vi_label) == (True, "", "VI 발동")
    # A VI of a kind the pages do not know is still a VI; a book that does not cross yet has a price and no volume.
    odd = stock_flags("005930", {"vi": {"kind": "other"}, "expected": {"price": "70500", "quantity": 0}})
    assert (odd.vi, odd.vi_kind, odd.vi_label, odd.expected_price, odd.expected_quantity) == (
        True, "", "VI 발동", 70_500, 0,
    )  # fmt: skip


def _badges(html: str, code: str) -> list[str]:
    return re.findall(rf'<span class="badges" data-badges data-code="{code}">(.*?)</span></span>|'
                      rf'<span class="badges" data-badges data-code="{code}"></span>', html, re.S)  # fmt: skip


def _badge_kinds(fragment: str) -> list[str]:
    return re.findall(r'data-badge="(\w+)"', fragment)


def test_dashboard_rows_carry_halted_and_vi_badges(web, stocks, clock, clean_redis):
    clock(10, 0)
    store_quote(clean_redis, "005930", vi=VI, phase="vi_auction")
    store_quote(clean_redis, "000660", halted=True)

    html = web.get("/").content.decode()

    samsung_row = re.search(r'<tr data-code="005930".*?</tr>', html, re.S).group(0)
    hynix_row = re.search(r'<tr data-code="000660".*?</tr>', html, re.S).group(0)
    assert _badge_kinds(samsung_row) == ["vi"]
    assert 'title="동적 VI: 2분 단일가 매매 · 기준가격 71,000원 · ~10:02:30"' in samsung_row
    assert _badge_kinds(hynix_row) == ["halted"]
    assert "거래정지" in hynix_row


def test_a_stock_without_flags_has_an_empty_badge_container(web, stocks, clock, clean_redis):
    clock(10, 0)
    store_quote(clean_redis, "005930")

    row = re.search(r'<tr data-code="005930".*?</tr>', web.get("/").content.decode(), re.S).group(0)

    assert '<span class="badges" data-badges data-code="005930"></span>' in row


def test_stock_page_shows_badges_and_the_expected_auction_price(web, samsung, clock, clean_redis):
    clock(8, 55)
    store_quote(clean_redis, "005930", price=70_000, change=0, expected={"price": 70_500, "quantity": 12_345},
                phase="opening_auction", halted=True, vi=VI)  # fmt: skip

    html = web.get("/stocks/005930/").content.decode()

    head = re.search(r'<header class="stock-head">.*?</header>', html, re.S).group(0)
    assert _badge_kinds(head) == ["halted", "vi"]
    expected = re.search(r'<p class="expected" id="expected".*?</p>', head, re.S).group(0)
    assert 'data-price="70500"' in expected and " hidden" not in expected
    assert _text(expected) == "예상체결가 70,500 원 · 예상체결량 12,345 주"
    assert re.search(r'<span class="phase-tag" id="last-phase" data-phase="opening_auction">장 시작 동시호가', head)


def test_stock_page_hides_the_expected_price_without_an_auction(web, samsung, clock, clean_redis):
    clock(10, 0)
    store_quote(clean_redis, "005930", expected=None, phase="continuous")

    html = web.get("/stocks/005930/").content.decode()

    assert re.search(r'<p class="expected" id="expected" role="status" data-price="" hidden>', html)
    assert _badge_kinds(re.search(r'<header class="stock-head">.*?</header>', html, re.S).group(0)) == []


def _fill(account, stock, market, *, price=70_000, quantity=2, stream_id="9000000000000-0") -> Order:
    order = order_place(
        account_id=account.pk, code=stock.code, side="BUY", order_type="LIMIT", quantity=quantity,
        limit_price=price, market=market,
    )  # fmt: skip
    tick = FillTick(
        stream_id=stream_id, code=stock.code, price=price, volume=quantity, cum_volume=quantity,
        at=dt.datetime.combine(TRADING_DATE, dt.time(10, 1), tzinfo=KST), ask=price, bid=price,
    )  # fmt: skip
    assert len(order_fill_apply(tick=tick)) == 1
    order.refresh_from_db()
    return order


def test_orders_and_portfolio_list_badges_and_the_venue_and_phase_of_every_execution(
    web, samsung, account, clock, clean_redis
):
    market = clock(10, 0)
    order = _fill(account, samsung, market)
    continuous = order.executions.get()
    # A second execution as an NXT after-market print would record it (hand-built: the row is what is shown).
    Execution.objects.filter(pk=continuous.pk).update(venue="KRX", phase="continuous")
    nxt = Execution.objects.create(
        order=order, account=account, stock=samsung, side="BUY", price=70_100, quantity=1, amount=70_100,
        tick_stream_id="9000000000001-0", executed_at=dt.datetime(2026, 2, 20, 16, 0, tzinfo=KST), venue="NXT",
        phase="nxt_after",
    )  # fmt: skip
    store_quote(clean_redis, "005930", vi=VI)

    orders = web.get("/orders/").content.decode()
    portfolio = web.get("/portfolio/").content.decode()
    stock = web.get("/stocks/005930/").content.decode()

    executions = re.search(r'<table id="executions">.*?</table>', orders, re.S).group(0)
    for html in (executions, portfolio, stock):
        row = re.search(rf'<tr data-execution-id="{continuous.pk}".*?</tr>', html, re.S).group(0)
        assert '<td data-field="venue">KRX</td>' in row
        assert '<td data-field="phase" data-value="continuous">정규장</td>' in row
        row = re.search(rf'<tr data-execution-id="{nxt.pk}".*?</tr>', html, re.S).group(0)
        assert '<td data-field="venue">NXT</td>' in row
        assert '<td data-field="phase" data-value="nxt_after">애프터마켓</td>' in row
    past = re.search(r'<table id="past-orders">.*?</table>', orders, re.S).group(0)
    assert _badge_kinds(re.search(rf'<tr data-order-id="{order.pk}".*?</tr>', past, re.S).group(0)) == ["vi"]
    assert '<td data-field="route">KRX</td>' in past
    position = re.search(r'<tr data-code="005930">.*?</tr>', portfolio, re.S).group(0)
    assert _badge_kinds(position) == ["vi"]
    # The live fragments render the same badges.
    assert _badge_kinds(web.get("/portfolio/live/").content.decode()).count("vi") == 1


# --- the order ticket: route and session order types --------------------------------------------------------------


def _ticket(**overrides) -> dict:
    body = {"side": "BUY", "order_type": "LIMIT", "quantity": "1", "price": "70000", "client_order_id": "",
            "route": "KRX"}  # fmt: skip
    body.update(overrides)
    return body


def _marks(html: str) -> dict[str, str]:
    form = re.search(r'<fieldset class="choices kinds" id="ticket-kinds">.*?</fieldset>', html, re.S).group(0)
    return dict(re.findall(r'value="(\w+)" data-kind="\w+"[^>]*>.*?<span data-accepted-mark class="([\w-]+)"', form,
                           re.S))  # fmt: skip


def test_ticket_marks_the_order_types_the_current_phase_takes(web, samsung, clock):
    clock(10, 0)
    assert _marks(web.get("/stocks/005930/").content.decode()) == {
        "LIMIT": "accepted-now", "MARKET": "accepted-now", "PRE_CLOSE_PRICE": "not-now",
        "POST_CLOSE_PRICE": "not-now", "AFTER_HOURS_SINGLE": "not-now",
    }  # fmt: skip

    clock(16, 5)
    after = web.get("/stocks/005930/").content.decode()
    assert _marks(after) == {
        "LIMIT": "not-now", "MARKET": "not-now", "PRE_CLOSE_PRICE": "not-now", "POST_CLOSE_PRICE": "not-now",
        "AFTER_HOURS_SINGLE": "accepted-now",
    }  # fmt: skip
    # With the SOR route NXT's after-market counts too: limit orders are taken there now.
    sor = web.post("/stocks/005930/", _ticket(route="SOR", quantity="abc"), **HX).content.decode()
    assert _marks(sor)["LIMIT"] == "accepted-now"
    assert 'name="route" value="SOR" checked' in sor


def test_ticket_places_an_after_hours_single_price_order_at_its_price(web, samsung, account, clock, clean_redis):
    clock(16, 5)
    store_quote(clean_redis, "005930", price=70_000, time="2026-02-20T15:30:00+09:00", phase="closing_auction")

    html = web.post("/stocks/005930/", _ticket(order_type="AFTER_HOURS_SINGLE", price="70000"), **HX).content.decode()

    order = Order.objects.get(account=account)
    assert (order.order_type, order.limit_price, order.route) == ("AFTER_HOURS_SINGLE", 70_000, "KRX")
    assert re.search(rf'data-order-id="{order.pk}"', html)
    assert 'name="order_type" value="AFTER_HOURS_SINGLE" data-kind="after_hours_single" checked' in html


def test_ticket_refuses_an_order_type_the_phase_does_not_take_with_the_engines_code(web, samsung, account, clock):
    clock(10, 0)

    html = web.post("/stocks/005930/", _ticket(order_type="AFTER_HOURS_SINGLE"), **HX).content.decode()

    errors = re.search(r'<div id="order-errors" class="errors" role="alert">(.*?)</div>', html, re.S)
    assert errors and "continuous" in _text(errors.group(1))
    assert not Order.objects.exists()


def test_ticket_sends_the_chosen_route(web, samsung, account, clock):
    clock(10, 0)

    web.post("/stocks/005930/", _ticket(route="SOR"), **HX)

    assert Order.objects.get(account=account).route == "SOR"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_ticket(route="XYZ"), "invalid_route"),
        (_ticket(route="krx"), "invalid_route"),
        (_ticket(route="K" * 5000), "invalid_route"),
        (_ticket(order_type="05"), "invalid_order_type"),
        (_ticket(order_type="after_hours_single"), "invalid_order_type"),
        (_ticket(order_type="AFTER_HOURS_SINGLE" * 300), "invalid_order_type"),
        (_ticket(order_type="<script>alert(1)</script>"), "invalid_order_type"),
    ],
)
def test_hostile_route_and_order_type_are_coded_errors_and_change_nothing(web, samsung, account, clock, body, code):
    clock(10, 0)

    htmx = web.post("/stocks/005930/", body, **HX)
    plain = web.post("/stocks/005930/", body)

    assert htmx.status_code == plain.status_code == 200
    html = htmx.content.decode()
    assert re.search(rf'<div id="order-errors" class="errors" role="alert">\s*<p><code>{code}</code>', html)
    assert "<script>alert(1)</script>" not in html
    assert f"<code>{code}</code>" in plain.content.decode()
    assert not Order.objects.exists()
    account.refresh_from_db()
    assert account.reserved_cash == 0


def test_a_control_character_in_the_route_is_refused_before_the_view(web, samsung, account, clock):
    clock(10, 0)

    response = web.post("/stocks/005930/", _ticket(route="KRX\x00"), **HX)

    assert response.status_code == 400
    assert not Order.objects.exists()


def test_a_route_given_twice_is_refused_or_takes_one_value_never_a_server_error(web, samsung, account, clock):
    clock(10, 0)

    response = web.post("/stocks/005930/", {**_ticket(), "route": ["NXT", "KRX"]}, **HX)

    assert response.status_code == 200
    orders = list(Order.objects.values_list("route", flat=True))
    assert orders in ([], ["KRX"], ["NXT"])


def test_status_json_is_for_signed_in_users_only(client, samsung, clock):
    clock(10, 0)

    response = client.get("/market/status.json")

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_stored_snapshot_that_is_not_json_shows_no_badge(web, samsung, clock, clean_redis):
    from apps.live.realtime import keys

    clock(10, 0)
    clean_redis.hset(keys.QUOTES_HASH, "005930", "{not json")
    clean_redis.hset(keys.QUOTES_HASH, "000660", json.dumps(["a", "list"]))

    html = web.get("/stocks/005930/").content.decode()

    assert _badge_kinds(re.search(r'<header class="stock-head">.*?</header>', html, re.S).group(0)) == []
    assert web.get("/orders/").status_code == 200


def test_the_clocks_own_phases_win_and_an_unknown_end_hides_the_countdown(web, samsung, monkeypatch):
    from apps.core.krx.phases import PhaseNow
    from apps.marketdata.market_clock import MarketNow

    now = dt.datetime.combine(TRADING_DATE, dt.time(11, 0), tzinfo=KST)
    market = MarketNow(
        now=now, trading_date=TRADING_DATE, session="continuous", source="sandbox",
        phases={"KRX": PhaseNow("KRX", "halted", None, None, None, matching=False)},
    )  # fmt: skip
    monkeypatch.setattr("apps.marketdata.market_clock.sandbox_now", lambda timeout=3.0, calendar=None: market)

    html = web.get("/").content.decode()

    lines = _phase_bar(html)
    assert list(lines) == ["KRX"]
    assert (lines["KRX"]["phase"], lines["KRX"]["until"], lines["KRX"]["accepted"]) == ("halted", "", "")
    assert lines["KRX"]["text"].startswith("KRX 거래정지")
    assert re.search(r'<span class="next" hidden>', html)


def test_data_quality_page_counts_minute_bars_against_the_days_calendar_and_phases(web, stocks, clock):
    from apps.marketdata.bars import expected_minute_bars
    from apps.marketdata.models import MinuteBar
    from apps.marketdata.selectors import krx_calendar

    clock(23, 0)
    samsung, hynix = stocks
    slots = expected_minute_bars(krx_calendar().session(TRADING_DATE))
    gap = dt.datetime.combine(TRADING_DATE, dt.time(10, 0), tzinfo=KST)

    def bar(stock, ts, phase):
        return MinuteBar(stock=stock, ts=ts, open=1, high=1, low=1, close=1, volume=1, source="kis", phase=phase)

    rows = [bar(samsung, s.ts, s.phase) for s in slots]
    rows += [bar(hynix, s.ts, s.phase) for s in slots if s.ts != gap]
    rows.append(bar(hynix, dt.datetime.combine(TRADING_DATE, dt.time(16, 10), tzinfo=KST), "after_hours_single"))
    MinuteBar.objects.bulk_create(rows)

    html = web.get("/data-quality/").content.decode()

    section = re.search(r'<section class="card" id="minute-completeness".*?</section>', html, re.S).group(0)
    assert 'data-day="2026-02-20" data-expected="381" data-complete="1" data-stocks="2"' in section
    assert "종목 1/2 완전" in section and "시간외 봉" in _text(section)
    gaps = re.findall(r'<tr data-code="(\w+)"><td>\w+</td><td class="num">([\d/]+)</td><td class="num">(\d+)</td>'
                      r"<td>([\d:]+) <small>(.*?)</small>", section)  # fmt: skip
    assert gaps == [("000660", "380/381", "1", "10:00:00", "정규장")]
