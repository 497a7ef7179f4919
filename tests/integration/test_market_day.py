"""The market day's phases end to end, every part a real process: the sandbox replays the day, the feed worker
publishes the prints of stocks with open orders to the fill stream with their venue and phase, the fill engine
matches each phase by its rule, and Daphne serves the REST API.

Covers: orders entered during the opening call auction (08:30-09:00) fill at the single opening print, every
crossing order at the same price, while an order below it rests; orders entered during the closing auction
(15:20-15:30) fill at the single closing print; the orders record the phase they were accepted in and the
executions the venue and phase of their print.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest

from tests.integration.harness import ProcessStack, api_client, poll, price_limits, stopped_after
from tests.integration.test_paper_trading_e2e import _load_stock_and_closes

ADMIN = "market-day-admin"
CODE = "005930"
API = "/api/paper-trading"
FROZEN = 0.001  # replay speed while orders are placed: the phase cannot change under the test
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class Stack(ProcessStack):
    def __init__(self, tmp_path: Path):
        super().__init__(
            tmp_path,
            admin_token=ADMIN,
            SANDBOX_SPEED="20",
            SANDBOX_PAPER_RATE_LIMIT="50",
            KIS_PAPER_RATE_LIMIT="40",
            PAPER_FILL_BLOCK_MS="200",
            # NXT trades on the paper connection (KIS paper has none; the sandbox serves them behind a setting)
            SANDBOX_PAPER_NXT="true",
            FEED_NXT_IN_PAPER="true",
        )


@pytest.fixture
def stack(tmp_path, clean_redis, request):
    with stopped_after(Stack(tmp_path), request) as running:
        running.start_sandbox()
        yield running


def _place(api, **body) -> dict:
    response = api.post(f"{API}/orders", json={"code": CODE, "side": "BUY", "quantity": 5, **body})
    assert response.status_code == 201, response.text
    return response.json()


def _executions(api, order_id: int) -> list[dict]:
    return [e for e in api.get(f"{API}/executions", params={"code": CODE}).json() if e["order"] == order_id]


def _call_fills_at_one_price(stack: Stack, api, *, entry: str, print_at: str, phase: str, base: int, day: date):
    """Orders entered at ``entry`` (frozen replay) in ``phase``; the replay runs through the call's print at
    ``print_at``: the crossing orders fill in one execution each at the single price, the low one rests."""
    upper, lower = price_limits(base, day)
    _jump(stack, entry)
    top = _place(api, order_type="LIMIT", limit_price=upper)
    second = _place(api, order_type="LIMIT", limit_price=upper)
    low = _place(api, order_type="LIMIT", limit_price=lower)
    for order in (top, second, low):
        assert (order["route"], order["phase"], order["status"]) == ("KRX", phase, "PENDING"), order
    stack.set_clock({"speed": 20})

    for order in (top, second):
        poll(
            lambda order=order: api.get(f"{API}/orders/{order['id']}").json(),
            lambda got: got["status"] == "FILLED",
            timeout=60,
            what=f"order {order['id']} entered in the {phase} not FILLED at its print ({print_at})",
            logs=stack.logs,
            interval=0.2,
        )
    fills = [_executions(api, top["id"]), _executions(api, second["id"])]
    assert [len(f) for f in fills] == [1, 1], fills  # one print, one execution each
    prices = {f[0]["price"] for f in fills}
    assert len(prices) == 1, fills  # the call's single price for every crossing order
    for execution in (f[0] for f in fills):
        assert execution["venue"] == "KRX"
        # the call's print (the closing call ends at a random moment of its first 30 s), not a later trade
        assert print_at <= execution["executed_at"][11:19] <= print_at[:6] + "30", execution
        assert execution["phase"] == phase, execution  # the feed labels the call print
    (price,) = prices
    assert lower < price <= upper
    rested = api.get(f"{API}/orders/{low['id']}").json()
    assert (rested["status"], rested["filled_quantity"]) == ("PENDING", 0)
    return price


def test_opening_auction_orders_fill_at_the_single_opening_price(stack):
    day, base, api = _ready(stack, at="08:50:00")
    opening = _call_fills_at_one_price(
        stack, api, entry="08:55:00", print_at="09:00:00", phase="opening_auction", base=base, day=day
    )
    quote = api.get("/api/marketdata/quotes", params={"codes": CODE}).json()["quotes"][0]
    assert quote.get("open") in (None, opening), quote  # the single opening price is the day's open
    api.close()


def test_closing_auction_orders_fill_at_the_single_closing_price(stack):
    day, base, api = _ready(stack, at="15:24:00")  # the replay moves there before the feed connects
    _call_fills_at_one_price(
        stack, api, entry="15:25:00", print_at="15:30:00", phase="closing_auction", base=base, day=day
    )
    api.close()


# --- the phases the sandbox synthesizes around the regular session (closing-price and after-hours sessions,
# NXT, VI episodes): only a sandbox that replays the whole day has them --------------------------------------


def _whole_day(stack: Stack) -> dict:
    status = stack.sandbox_clock()
    if "day" not in status:
        pytest.skip("this sandbox replays the regular session only (no whole-day model in its clock status)")
    return status


def _ready(stack: Stack, *, at: str) -> tuple[date, int, object]:
    """The stock and its closes loaded, the replay frozen at ``at``, the app started; (day, base, api). CODE is
    NXT-eligible by default (NXT_ELIGIBLE_CODES)."""
    from apps.marketdata.models import Stock
    from apps.trading.orders.pricing import reference_price

    replay_day = date.fromisoformat(stack.sandbox_clock()["replay_date"])
    _load_stock_and_closes(stack, replay_day)
    stock = Stock.objects.get(code=CODE)
    base = reference_price(stock_id=stock.pk, trading_date=replay_day)
    assert base, "no previous close loaded"
    _jump(stack, at)
    stack.start_app()
    _feed_connected(stack)
    return replay_day, base, api_client(stack, f"trader-{at.replace(':', '')}")


def _feed_connected(stack: Stack) -> None:
    """The feed holder reports its broker connection up with its subscriptions registered (its status detail):
    prints from now on reach the fill stream. Its headline status says "closed" outside the regular session."""
    import json

    from apps.core.redis import get_redis
    from apps.live.realtime import keys

    def detail() -> dict:
        raw = get_redis().get(keys.FEED_STATUS_DETAIL_KEY)
        return json.loads(raw) if raw else {}

    poll(
        detail,
        lambda got: got.get("session") == "connected" and got.get("active_registrations", 0) > 0,
        timeout=60,
        what="feed not connected",
        logs=stack.logs,
    )


def _filled(stack: Stack, api, order: dict, what: str, timeout: float = 90) -> list[dict]:
    poll(
        lambda: api.get(f"{API}/orders/{order['id']}").json(),
        lambda got: got["status"] == "FILLED",
        timeout=timeout,
        what=what,
        logs=stack.logs,
        interval=0.2,
    )
    return sorted(_executions(api, order["id"]), key=lambda e: e["id"])


def _jump(stack: Stack, at: str, speed: float = FROZEN) -> None:
    """Move the replay to ``at`` and wait until the web process sees it: the sandbox answers its clock again (a
    jump may keep it busy for seconds on a loaded machine) and the web's cached clock has expired."""
    import httpx

    from apps.marketdata.market_clock import SANDBOX_CLOCK_TTL

    response = httpx.post(  # a long jump replays the VI model over the skipped tape: allow it time
        stack._admin_url("/sandbox/clock"), json={"time": at, "speed": speed},
        headers={"X-Sandbox-Admin": ADMIN}, timeout=120,
    )  # fmt: skip
    assert response.status_code == 200, response.text

    def clock() -> dict:
        try:
            return stack.sandbox_clock()
        except httpx.HTTPError:
            return {}

    poll(clock, lambda got: str(got.get("now", ""))[11:19] == at, timeout=60, what=f"replay not at {at}")
    time.sleep(SANDBOX_CLOCK_TTL + 0.3)
    # A connected feed makes the sandbox generate the tape up to the new time before it sends again (tens of
    # seconds on a loaded machine): the prints the test waits for must not fall into that wait.
    poll(clock, lambda got: got.get("catching_up") is False, timeout=120, what=f"replayed tape not ready at {at}")


def test_after_hours_single_order_fills_only_at_a_ten_minute_call_within_ten_percent(stack):
    from tests.integration.harness import grid_floor

    _whole_day(stack)
    day, base, api = _ready(stack, at="15:29:00")
    stack.set_clock({"speed": 20})
    quote = poll(
        lambda: api.get("/api/marketdata/quotes", params={"codes": CODE}).json()["quotes"],
        lambda quotes: bool(quotes) and str(quotes[0].get("time", ""))[11:16] >= "15:30",
        timeout=60,
        what="no quote of the closing print",
        logs=stack.logs,
    )[0]
    close = quote["price"]
    upper, _ = price_limits(base, day)
    highest = min(grid_floor(close * 110 // 100, day), upper)  # the top of the after-hours range
    _jump(stack, "16:03:00")

    refused = api.post(f"{API}/orders", json={"code": CODE, "side": "BUY", "quantity": 5, "order_type": "LIMIT",
                                              "limit_price": close})  # fmt: skip
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "phase_rejects_order_type"
    assert "after hours single" in refused.json()["error"]["message"]
    order = _place(api, order_type="AFTER_HOURS_SINGLE", limit_price=highest)
    assert order["phase"] == "after_hours_single"
    stack.set_clock({"speed": 20})

    executions = _filled(stack, api, order, "after-hours single-price order not filled at the 16:10 call")
    assert len(executions) == 1, executions
    (execution,) = executions
    assert (execution["venue"], execution["phase"]) == ("KRX", "after_hours_single")
    assert execution["executed_at"][11:19] == "16:10:00"  # the first 10-minute call after the order
    assert abs(execution["price"] - close) * 10 <= close
    api.close()


def test_nxt_after_market_order_fills_at_nxt_prints_from_1540(stack):
    _whole_day(stack)
    day, base, api = _ready(stack, at="15:33:00")
    upper, _ = price_limits(base, day)
    _jump(stack, "15:33:00")
    refused = api.post(f"{API}/orders", json={"code": CODE, "side": "BUY", "quantity": 5, "order_type": "MARKET",
                                              "route": "NXT"})  # fmt: skip
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "phase_rejects_order_type")
    order = _place(api, order_type="LIMIT", limit_price=upper, route="NXT")
    assert (order["route"], order["phase"]) == ("NXT", "nxt_after")
    stack.set_clock({"speed": 20})

    executions = _filled(stack, api, order, "NXT after-market order not filled")
    for execution in executions:
        assert (execution["venue"], execution["phase"]) == ("NXT", "nxt_after")
        assert execution["executed_at"][11:19] >= "15:40:00"  # orders from 15:30, matching from 15:40
    api.close()


def test_a_dynamic_vi_pauses_continuous_fills_for_two_minutes(stack):
    import httpx

    _whole_day(stack)
    response = httpx.post(
        stack._admin_url("/sandbox/vi"),
        json={"code": CODE, "time": "10:00:00", "kind": "dynamic"},
        headers={"X-Sandbox-Admin": ADMIN},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    episode = next(e for e in response.json()["episodes"] if e["forced"])
    start_s, end_s = episode["start_ms"] // 1000, episode["end_ms"] // 1000
    assert end_s - start_s >= 120
    during = f"{(start_s + 5) // 3600:02d}:{(start_s + 5) % 3600 // 60:02d}:{(start_s + 5) % 60:02d}"
    day, base, api = _ready(stack, at=during)
    upper, _ = price_limits(base, day)
    _jump(stack, during)
    order = _place(api, order_type="LIMIT", limit_price=upper)  # crosses any print: only the VI holds it
    stack.set_clock({"speed": 20})

    executions = _filled(stack, api, order, "order entered during a VI not filled at the VI's single price")
    first = executions[0]
    seen = [(e["executed_at"], e["venue"], e["phase"], e["price"], e["quantity"]) for e in executions]
    assert first["phase"] == "vi_auction", f"order {order['phase']} {order['accepted_at']}; {episode}; {seen}"
    executed = first["executed_at"][11:19]
    executed_s = int(executed[:2]) * 3600 + int(executed[3:5]) * 60 + int(executed[6:8])
    assert executed_s >= start_s + 120  # nothing filled it for the VI's two minutes
    assert first["price"] == episode["price"]
    api.close()


def test_sor_fills_at_the_better_venue_of_the_moment(stack):
    import datetime as dt

    from apps.core.redis import get_redis
    from apps.live.realtime import keys

    _whole_day(stack)
    day, base, api = _ready(stack, at="10:30:00")
    upper, lower = price_limits(base, day)
    _jump(stack, "10:30:00")

    def prints() -> list[tuple[dt.datetime, str, int]]:
        found = []
        for _id, fields in get_redis().xrange(keys.FILL_TICKS_STREAM):
            data = {k.decode(): v.decode() for k, v in fields.items()}
            if data["code"] == CODE:
                found.append((dt.datetime.fromisoformat(data["at"]), data.get("venue") or "KRX", int(data["price"])))
        return found

    # An open NXT order makes the feed subscribe the stock's NXT trades; run until both venues reach the stream.
    _place(api, order_type="LIMIT", limit_price=lower, route="NXT")
    stack.set_clock({"speed": 5})
    poll(prints, lambda found: {v for _, v, _ in found} == {"KRX", "NXT"}, timeout=90,
         what="prints of both venues in the fill stream", logs=stack.logs)  # fmt: skip
    order = _place(api, order_type="LIMIT", limit_price=upper, route="SOR", quantity=20)

    executions = _filled(stack, api, order, "SOR order not filled")
    seen = prints()
    for execution in executions:
        at = dt.datetime.fromisoformat(execution["executed_at"])
        others = [p for t, v, p in seen if v != execution["venue"] and abs((t - at).total_seconds()) <= 1]
        assert all(price >= execution["price"] for price in others), (execution, others)  # no cheaper venue then
    api.close()
