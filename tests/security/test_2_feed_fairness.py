"""Finding 2: the live feed could be starved. Attacks: subscribe 50 well-formed but nonexistent codes and a
code with a trailing newline; open many sockets and flood them; watch many stocks from several sockets to
outvote real viewers; park 1-share LIMIT orders on many stocks to take every live slot. All must fail, and a
stock that gets no live slot must still get prices and fill its orders (at the fidelity polling allows)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace

import httpx
import pytest
from channels.testing import WebsocketCommunicator

from apps.live.feed.demand import overflow, plan, read_demand
from apps.live.realtime import keys

from .conftest import make_stock

PER_CONNECTION = 20  # stocks of one KIS connection (41 registrations)


async def _socket(user) -> WebsocketCommunicator:
    from apps.live.consumers import MarketConsumer

    communicator = WebsocketCommunicator(MarketConsumer.as_asgi(), "/ws/market/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _sockets_of(user, count: int) -> list[WebsocketCommunicator]:
    sockets = [await _socket(user) for _ in range(count)]
    for socket in sockets:
        assert (await socket.receive_json_from())["type"] == "status"
    return sockets


async def _ask(socket: WebsocketCommunicator, message: dict) -> dict:
    await socket.send_json_to(message)
    return await socket.receive_json_from()


def _users_and_universe(count: int = 60):
    from django.contrib.auth import get_user_model

    from apps.marketdata.models import Stock

    Stock.objects.bulk_create([Stock(code=f"{i:06d}", name=f"S{i}", market="KOSPI", rank=i + 1) for i in range(count)])
    users = get_user_model().objects
    return (
        users.create_user(username=f"attacker-{uuid.uuid4().hex[:6]}", password="pw-12345678"),
        users.create_user(username=f"victim-{uuid.uuid4().hex[:6]}", password="pw-12345678"),
    )


@pytest.fixture
def ws_users(transactional_db, clean_redis):
    from channels.db import database_sync_to_async

    return database_sync_to_async(_users_and_universe)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_unknown_and_malformed_codes_never_count_as_demand(ws_users, clean_redis, async_db_cleanup):
    attacker, _victim = await ws_users()
    socket = (await _sockets_of(attacker, 1))[0]

    ghosts = await _ask(socket, {"type": "subscribe", "codes": [f"ZZZZ{i:02d}" for i in range(50)]})
    newline = await _ask(socket, {"type": "subscribe", "codes": ["000001\n"]})
    spaced = await _ask(socket, {"type": "subscribe", "codes": [" 000001"]})

    assert (ghosts["code"], ghosts["codes"][:2]) == ("unknown_codes", ["ZZZZ00", "ZZZZ01"])
    assert newline["code"] == spaced["code"] == "invalid_codes"
    assert clean_redis.zcard(keys.VIEWERS_ZSET) == 0
    assert await _ask(socket, {"type": "subscribe", "codes": ["000001"]}) == {"type": "subscribed", "codes": ["000001"]}
    await socket.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_connections_stocks_and_messages_are_capped_per_connection_and_per_user(
    ws_users, clean_redis, settings, async_db_cleanup
):
    settings.MARKET_WS_MAX_CONNECTIONS_PER_USER = 2
    settings.MARKET_WS_MAX_CODES_PER_USER = 3
    settings.MARKET_WS_USER_MESSAGES_PER_MINUTE = 6
    attacker, _victim = await ws_users()
    first, second = await _sockets_of(attacker, 2)

    third = await _socket(attacker)
    refused = await third.receive_json_from()
    assert refused["code"] == "too_many_connections"
    assert (await third.receive_output())["type"] == "websocket.close"

    assert (await _ask(first, {"type": "subscribe", "codes": ["000001", "000002"]}))["type"] == "subscribed"
    across = await _ask(second, {"type": "subscribe", "codes": ["000003", "000004"]})
    assert across["code"] == "too_many_codes"  # 4 different stocks for one user, over two sockets
    # 6 messages per user per minute over both sockets (12 sent: beyond it even if a minute boundary falls inside)
    answers = [await _ask((first, second)[i % 2], {"type": "ping", "id": i}) for i in range(12)]
    assert "rate_limited" in {a.get("code") for a in answers}
    assert sorted(m.decode().split("|")[0] for m in clean_redis.zrange(keys.VIEWERS_ZSET, 0, -1)) == [
        "000001",
        "000002",
    ]
    for socket in (first, second):
        await socket.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_connection_flooding_frames_is_answered_rate_limited(ws_users, settings, async_db_cleanup):
    settings.WS_MESSAGE_BURST = 3
    settings.WS_MESSAGE_RATE = 0.01
    attacker, _victim = await ws_users()
    socket = (await _sockets_of(attacker, 1))[0]

    answers = [await _ask(socket, {"type": "ping", "id": i}) for i in range(5)]

    assert [a["type"] for a in answers] == ["pong", "pong", "pong", "error", "error"]
    assert answers[-1]["code"] == "rate_limited"
    await socket.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_sockets_watching_many_stocks_do_not_push_a_real_viewer_off_the_feed(
    ws_users, clean_redis, async_db_cleanup
):
    import redis.asyncio as aioredis
    from django.conf import settings

    attacker, victim = await ws_users()
    flood = await _sockets_of(attacker, 3)
    for socket in flood:  # the same 50 stocks from three sockets: one user, one vote
        assert (await _ask(socket, {"type": "subscribe", "codes": [f"{i:06d}" for i in range(50)]}))[
            "type"
        ] == "subscribed"
    viewer = (await _sockets_of(victim, 1))[0]
    await _ask(viewer, {"type": "subscribe", "codes": ["000055"]})

    client = aioredis.Redis.from_url(settings.REDIS_URL)
    demand = await read_demand(client, now=time.time(), watchlist=[], grace=30)
    await client.aclose()
    live = plan(demand, now=time.time(), grace=30, per_connection=PER_CONNECTION)

    assert live[0] == "000055"
    assert demand.viewers["000001"] == 1  # three sockets of one user count once
    for socket in (*flood, viewer):
        await socket.disconnect()


@pytest.mark.django_db
def test_parked_orders_of_one_user_leave_another_users_order_a_live_slot(attacker, victim, open_clock, clean_redis):
    from apps.trading.accounts.services import paper_account_ensure
    from apps.trading.orders.demand import order_demand_sync
    from apps.trading.orders.placement import order_place

    parked = [make_stock(f"{i:06d}") for i in range(30)]
    wanted = make_stock("000099")
    attacker_account = paper_account_ensure(user=attacker)
    for stock in parked:
        order_place(account=attacker_account, user=attacker, code=stock.code, side="BUY", order_type="LIMIT",
                    quantity=1, limit_price=49_000)  # fmt: skip
    order_place(account=paper_account_ensure(user=victim), user=victim, code=wanted.code, side="BUY",
                order_type="LIMIT", quantity=1, limit_price=69_000)  # fmt: skip
    order_demand_sync()

    demand = asyncio.run(_read(clean_redis))
    live = plan(demand, now=time.time(), grace=30, per_connection=PER_CONNECTION)

    assert "000099" in live
    assert len([c for c in live if c != "000099"]) == PER_CONNECTION - 1  # the attacker gets the rest, no more
    assert set(overflow(demand, now=time.time(), grace=30, per_connection=PER_CONNECTION)) == (
        {s.code for s in parked} - set(live)
    )  # the parked stocks beyond the slots are polled over REST, not dropped


async def _read(redis):
    import redis.asyncio as aioredis
    from django.conf import settings

    client = aioredis.Redis.from_url(settings.REDIS_URL)
    try:
        return await read_demand(client, now=time.time(), watchlist=[], grace=30)
    finally:
        await client.aclose()


# --- a stock without a live slot: prices by REST polling, fills marked source=poll --------------------------


@pytest.fixture(scope="module")
def sandbox():
    from apps.sandbox.config import AppCredential, SandboxConfig
    from apps.sandbox.server import SandboxThread

    cred = AppCredential(f"PSPOLL{uuid.uuid4().hex}"[:36].ljust(36, "0"), "p" * 180, "paper")
    cfg = SandboxConfig(
        data_dir=None, real_rest_port=0, paper_rest_port=0, real_ws_port=0, paper_ws_port=0, speed=60.0,
        admin_token="poll-admin", app_credentials=(cred,), paper_rate_limit=50.0, real_rate_limit=50.0,
        token_issue_interval_s=1.0,
    )  # fmt: skip
    with SandboxThread(replace(cfg)) as running:
        running.credential = cred
        yield running


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_stock_without_a_live_slot_is_polled_and_its_order_fills_marked_poll(sandbox, victim, clean_redis):
    from channels.layers import get_channel_layer
    from django.conf import settings

    from apps.brokers.kis.client import AsyncKisClient
    from apps.brokers.kis.config import KisConfig
    from apps.core.krx.rules import DEFAULT_TICKS
    from apps.live.feed.poller import RestPoller
    from apps.live.realtime.fillpath import FillTickReader, order_demand_add
    from apps.live.realtime.publisher import QuotePublisher
    from apps.marketdata.broker_services import DatabaseTokenStore
    from apps.trading.accounts.services import paper_account_ensure
    from apps.trading.orders.fills import order_fills_apply
    from apps.trading.orders.models import Execution
    from apps.trading.orders.placement import order_place
    from tests.trading.orders.conftest import TRADING_DATE, open_market

    port = sandbox.ports.paper_rest
    code = httpx.get(f"http://127.0.0.1:{port}/sandbox/clock", timeout=10).json()["universe"][0]
    config = KisConfig.for_sandbox(
        env="paper", rest_port=port, app_key=sandbox.credential.appkey, app_secret=sandbox.credential.appsecret,
        rate_limit=20.0, token_issue_interval=1.0, redis_prefix=f"hoga:test:poll:{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    reader = FillTickReader(clean_redis, group="fills", consumer="security-test")
    reader.ensure_group(start="0")

    async def poll_until_traded(order_after) -> list:
        import redis.asyncio as aioredis

        redis = aioredis.Redis.from_url(settings.REDIS_URL)
        client = AsyncKisClient(config, token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL)
        publisher = QuotePublisher(redis=redis, channel_layer=get_channel_layer(), fill_codes_refresh=0.0)
        poller = RestPoller(
            fetch=client.current_price, idle=client.limiter.idle, rate=5.0, min_interval=0.2,
            publish=lambda tick: publisher.publish_tick(tick, now=time.monotonic(), source="poll"),
        )  # fmt: skip
        poller.set_codes([code])
        try:
            first = await client.current_price(code)
            await order_after(first.price)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                await poller.poll_once()
                ticks = reader.read(count=10, block_ms=10)
                if ticks:
                    return ticks
                await asyncio.sleep(0.25)
            return []
        finally:
            await client.aclose()
            await redis.aclose()

    placed = {}

    async def order_after(price: int) -> None:
        from channels.db import database_sync_to_async

        def place() -> None:
            import datetime as dt

            from apps.marketdata.models import DailyBar, Stock

            stock = Stock.objects.create(code=code, name="polled", market="KOSPI")
            DailyBar.objects.create(stock=stock, date=TRADING_DATE - dt.timedelta(days=1), open=price, high=price,
                                    low=price, close=price, volume=1, source="kis")  # fmt: skip
            upper, _lower = DEFAULT_TICKS.price_limits(price, TRADING_DATE, "KOSPI")
            account = paper_account_ensure(user=victim)
            placed["order"] = order_place(account=account, user=victim, code=code, side="BUY", order_type="LIMIT",
                                          quantity=1, limit_price=upper, market=open_market())  # fmt: skip
            order_demand_add(clean_redis, code, user_id=victim.pk)

        await database_sync_to_async(place)()

    ticks = asyncio.run(poll_until_traded(order_after))

    assert ticks and all(t.source == "poll" and t.volume > 0 for t in ticks)
    executions = order_fills_apply(ticks=ticks)
    assert executions and {e.source for e in Execution.objects.filter(order=placed["order"])} == {"poll"}
    quote = clean_redis.hget(keys.QUOTES_HASH, code)
    assert b'"source": "poll"' in quote
