"""Paper trading end to end, every part a real process: the sandbox broker replays a session, the feed
worker publishes the trade ticks of stocks with open orders to the fill stream, the fill engine (a
bootstep of the default-queue worker) crosses a resting limit order, and Daphne serves the REST API.

Covers: a LIMIT BUY just above the last trade is filled by the replay at or below its limit; its
executions, the position, the cash and the reservations are exactly right through the API; a LIMIT BUY
far below stays PENDING with its reservation held, and cancelling it releases every won.
"""

from __future__ import annotations

import asyncio
import os
from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pytest

from tests.integration.harness import ProcessStack, api_client, grid_floor, poll, stopped_after, ticks_up

ADMIN = "paper-e2e-admin"
CODE = "005930"
API = "/api/paper-trading"
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
        )


@pytest.fixture
def stack(tmp_path, clean_redis, request):
    with stopped_after(Stack(tmp_path), request) as running:
        running.start_sandbox()
        yield running


def _load_stock_and_closes(stack: Stack, replay_day: date) -> None:
    """The universe rows, then the previous daily closes of CODE through the real KIS client and the sandbox."""
    from channels.db import database_sync_to_async
    from django.core.management import call_command
    from django.db import connections

    from apps.brokers.kis.client import AsyncKisClient
    from apps.brokers.kis.config import KisConfig
    from apps.marketdata.broker_services import DatabaseTokenStore
    from apps.marketdata.collection import daily_backfill

    call_command("load_universe", stdout=open(os.devnull, "w"))  # noqa: SIM115
    config = KisConfig.for_sandbox(env="paper", rest_port=stack.ports["paper_rest"], rate_limit=40.0)

    async def go():
        from django.conf import settings

        async with AsyncKisClient(config, token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL) as client:
            return await daily_backfill(
                client=client, codes=[CODE], start=replay_day - timedelta(days=20), end=replay_day - timedelta(days=1)
            )

    try:
        run = asyncio.run(go())
    finally:
        asyncio.run(database_sync_to_async(connections.close_all)())  # the services' worker-thread connection
    assert (run.stored, run.failed) != (0, 0) and run.failed == 0, run.error_summary


def _commission(amount: int) -> int:
    return int((Decimal(amount) * Decimal("0.00015")).to_integral_value(rounding=ROUND_DOWN))


def test_replay_crosses_a_resting_limit_buy_and_the_books_show_it(stack):
    from apps.core.krx.rules import DEFAULT_TICKS
    from apps.marketdata.models import Stock
    from apps.trading.orders.pricing import reference_price

    replay_day = date.fromisoformat(stack.sandbox_clock()["replay_date"])
    _load_stock_and_closes(stack, replay_day)
    stock = Stock.objects.get(code=CODE)
    base = reference_price(stock_id=stock.pk, trading_date=replay_day)
    assert base, "no previous close loaded"
    stack.start_app()  # after the universe exists: the feed's watchlist includes CODE from its start
    api = api_client(stack, "e2e-trader")

    # The last trade price, live from the feed.
    quotes = poll(
        lambda: api.get("/api/marketdata/quotes", params={"codes": CODE}).json(),
        lambda body: any(q["source"] == "ws" for q in body.get("quotes", [])),
        timeout=30,
        what=f"no live quote for {CODE}",
        logs=stack.logs,
        interval=0.1,
    )
    last = next(q["price"] for q in quotes["quotes"] if q["source"] == "ws")
    upper, lower = DEFAULT_TICKS.price_limits(base, replay_day, stock.market)
    crossing_limit = min(ticks_up(last, 5, replay_day, stock.market), upper)
    resting_limit = max(grid_floor(int(last * 0.8), replay_day, stock.market), lower)

    account = api.get(f"{API}/accounts").json()[0]
    initial = account["initial_cash"]
    assert (account["cash"], account["reserved_cash"]) == (initial, 0)

    resting = api.post(
        f"{API}/orders", json={"code": CODE, "side": "BUY", "order_type": "LIMIT", "quantity": 5,
                               "limit_price": resting_limit}
    )  # fmt: skip
    assert resting.status_code == 201, resting.text
    resting = resting.json()
    crossing = api.post(
        f"{API}/orders", json={"code": CODE, "side": "BUY", "order_type": "LIMIT", "quantity": 10,
                               "limit_price": crossing_limit}
    )  # fmt: skip
    assert crossing.status_code == 201, crossing.text
    crossing = crossing.json()
    assert crossing["status"] == "PENDING"

    filled = poll(
        lambda: api.get(f"{API}/orders/{crossing['id']}").json(),
        lambda order: order["status"] == "FILLED",
        timeout=30,
        what=f"order {crossing['id']} (BUY 10 @ {crossing_limit}, last {last}) not FILLED",
        logs=stack.logs,
        interval=0.1,
    )
    assert filled["filled_quantity"] == 10 and filled["reserved_cash"] == 0

    # Executions: at or below the limit, summing to the order, commission truncated to the won.
    executions = [e for e in api.get(f"{API}/executions", params={"code": CODE}).json() if e["order"] == crossing["id"]]
    assert executions
    for execution in executions:
        assert execution["price"] <= crossing_limit
        assert execution["amount"] == execution["price"] * execution["quantity"]
        assert execution["commission"] == _commission(execution["amount"])
        assert (execution["side"], execution["tax"], execution["realized_pnl"]) == ("BUY", 0, 0)
    assert sum(e["quantity"] for e in executions) == 10
    spent = sum(e["amount"] for e in executions)
    fees = sum(e["commission"] for e in executions)
    assert filled["commission_total"] == fees

    # The position: the shares, at cost basis Σ amount, fees apart.
    positions = [p for p in api.get(f"{API}/positions").json() if p["code"] == CODE]
    assert len(positions) == 1
    position = positions[0]
    assert (position["quantity"], position["cost_basis"], position["fees_paid"]) == (10, spent, fees)
    assert position["reserved_quantity"] == 0

    # Cash: initial − Σ amount − Σ commission; reserved: exactly the resting order's reservation.
    resting_now = api.get(f"{API}/orders/{resting['id']}").json()
    assert resting_now["status"] == "PENDING" and resting_now["filled_quantity"] == 0
    reservation = resting_limit * 5 + _commission(resting_limit * 5)
    assert resting_now["reserved_cash"] == reservation
    balance = api.get(f"{API}/balance").json()
    assert balance["cash"] == initial - spent - fees
    assert balance["reserved_cash"] == reservation
    assert balance["free_cash"] == initial - spent - fees - reservation
    assert (balance["positions_cost"], balance["fees_paid"]) == (spent, fees)

    # Cancelling the resting order releases its reservation, every won.
    cancelled = api.delete(f"{API}/orders/{resting['id']}")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "CANCELLED"), cancelled.text
    balance = api.get(f"{API}/balance").json()
    assert (balance["cash"], balance["reserved_cash"]) == (initial - spent - fees, 0)
    api.close()
