"""The Kiwoom WebSocket session and the one-shot condition calls against the sandbox over real sockets
(kiwoom-api.md §A6, §A7): LOGIN, PING echo, REG, REAL 0B/0D/02, reconnect after ``ws_drop`` with every
registration and condition subscription restored, CNSRCLR, CNSRLST / CNSRREQ paging."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from django.conf import settings

from apps.brokers.base import ConditionAlert, ConditionInfo, OrderBook, Tick
from apps.brokers.kiwoom.client import AsyncKiwoomClient
from apps.brokers.kiwoom.conditions import (
    RequestRefused,
    condition_list,
    condition_search,
    condition_search_sync,
)
from apps.brokers.kiwoom.ws import KiwoomRealtimeSession
from apps.marketdata.broker_services import DatabaseTokenStore

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


async def eventually(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


def kiwoom_connections(box) -> list[tuple[int, int]]:
    """(registered pairs, condition subscriptions) of every open Kiwoom sandbox connection that logged in."""
    hub = box.server.core.kiwoom_hub
    return box.call(lambda: [(len(c.pairs()), len(c.cond_subs)) for c in hub.connections if c.token is not None])


@pytest.fixture
def codes(kbox) -> list[str]:
    return list(kbox.server.core.market.tapes)[:3]


@pytest.mark.asyncio
async def test_session_login_ping_reg_and_restore_after_ws_drop(
    kbox, kadmin, kiwoom_credential, kiwoom_config_factory, codes
) -> None:
    config = kiwoom_config_factory(kiwoom_credential("mock"))
    events: list[object] = []
    async with AsyncKiwoomClient(config, token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL) as client:
        session = KiwoomRealtimeSession(
            config, client.ws_token, on_event=events.append, stall_timeout=5.0, backoff_base=0.05, backoff_max=0.3
        )
        for code in codes:
            await session.subscribe(code)  # before start: only recorded
        await session.subscribe_condition("2")
        async with session:
            await session.wait_connected(10)
            assert session.status == "connected"
            assert session.active_registrations == session.registrations and len(session.registrations) == 6
            assert session.active_conditions == {"2"}
            assert kiwoom_connections(kbox) == [(6, 1)]
            await eventually(lambda: any(isinstance(e, Tick) for e in events), 10, "ticks")
            await eventually(lambda: any(isinstance(e, OrderBook) for e in events), 10, "books")
            await eventually(lambda: any(isinstance(e, ConditionAlert) for e in events), 20, "condition alerts")
            # PINGs come every 0.5 s and must be echoed within 3 s: still connected after more than that.
            await asyncio.sleep(3.5)
            assert session.status == "connected" and session.stats.pingpongs >= 4
            assert session.stats.reconnects == 0
            assert {e.code for e in events if isinstance(e, Tick | OrderBook)} <= set(codes)
            alert = next(e for e in events if isinstance(e, ConditionAlert))
            assert alert.seq == "2" and alert.kind in ("IN", "OUT") and len(alert.code) == 6

            resp = await asyncio.to_thread(kadmin.post, "/sandbox/faults", json={"fault": "ws_drop"})
            assert resp.status_code == 200 and resp.json()["kiwoom_dropped"] >= 1
            await eventually(
                lambda: session.stats.reconnects >= 1 and session.status == "connected"
                and session.active_registrations == session.registrations and session.active_conditions == {"2"},
                10,
                "reconnected with registrations and the condition restored",
            )  # fmt: skip
            assert kiwoom_connections(kbox) == [(6, 1)]
            seen = len(events)
            await eventually(lambda: any(isinstance(e, Tick) for e in events[seen:]), 10, "ticks resume")

            await session.unsubscribe(codes[0])
            await session.unsubscribe_condition("2")
            assert kiwoom_connections(kbox) == [(4, 0)]
            assert len(session.registrations) == 4 and session.active_conditions == frozenset()
        assert session.status == "stopped"
    assert kiwoom_connections(kbox) == []


@pytest.mark.asyncio
async def test_condition_list_and_paged_search(kbox, kiwoom_credential, kiwoom_config_factory) -> None:
    config = kiwoom_config_factory(kiwoom_credential("mock"))
    async with AsyncKiwoomClient(config, token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL) as client:
        conditions = await condition_list(config, token=client.ws_token)
        assert conditions == [
            ConditionInfo("0", "등락률 2% 이상"),
            ConditionInfo("1", "거래량 급증"),
            ConditionInfo("2", "시가 돌파"),
            ConditionInfo("9", "전 종목"),
        ]
        hits = await condition_search("9", config, token=client.ws_token)
        with pytest.raises(RequestRefused):
            await condition_search("77", config, token=client.ws_token)
    codes = list(kbox.server.core.market.tapes)  # type: ignore[union-attr]
    assert [h.code for h in hits] == codes  # every page (1 row each), in universe order
    assert all(h.price > 0 and h.volume > 0 and h.name for h in hits)
    assert kiwoom_connections(kbox) == []  # one-shot connections are closed


def test_condition_search_sync_wrapper(kbox, kiwoom_config_factory, kiwoom_credential) -> None:
    config = kiwoom_config_factory(kiwoom_credential("mock"))

    async def token(rejected: str | None) -> str:
        async with AsyncKiwoomClient(config, token_store=DatabaseTokenStore(), redis_url=settings.REDIS_URL) as c:
            return await c.ws_token(rejected)

    hits = condition_search_sync("0", config, token=token)
    assert all(h.change_rate >= 2 for h in hits)
