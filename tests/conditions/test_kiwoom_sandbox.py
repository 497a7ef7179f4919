"""The conditions services against the Kiwoom sandbox over real sockets: the condition list, normal searches
(reconciliation) and real-time REAL 02 alerts, with the stream muted (``kiwoom_mute_conditions``) so that
entries and exits it misses are recorded once by the search, marked ``poll``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from apps.conditions import feed
from apps.conditions.models import Condition, ConditionEvent, ConditionMember, ConditionRun
from apps.conditions.services import condition_reconcile, conditions_sync

pytestmark = pytest.mark.django_db(transaction=True)

RULES = {
    "evaluation_interval": 5,
    "conditions": [
        {"seq": "0", "name": "등락률 1% 이상", "rule": "change_rate", "min_rate": 1.0},
        {"seq": "2", "name": "시가 돌파", "rule": "above_open"},
    ],
}


@pytest.fixture(scope="module")
def kiwoom_sandbox(tmp_path_factory):
    from django.conf import settings

    from apps.sandbox.config import LIGHT_TAPE, SandboxConfig
    from apps.sandbox.server import SandboxThread

    rules = Path(tmp_path_factory.mktemp("kiwoom")) / "conditions.json"
    rules.write_text(json.dumps(RULES, ensure_ascii=False))
    data_dir = Path(settings.HOGA_DATA_DIR) if settings.HOGA_DATA_DIR else None
    if data_dir is not None and not (data_dir / "daily/krx_marcap").is_dir():
        data_dir = None
    config = SandboxConfig(
        data_dir=data_dir, universe_size=8, speed=120.0, admin_token="cond-admin",
        real_rest_port=0, paper_rest_port=0, real_ws_port=0, paper_ws_port=0,
        kiwoom_rest_port=0, kiwoom_ws_port=0, kiwoom_rate_limit=50.0, kiwoom_conditions=rules,
        tape_density=LIGHT_TAPE,
    )  # fmt: skip
    with SandboxThread(config) as running:
        yield running


@pytest.fixture
def kiwoom_config(kiwoom_sandbox, clean_redis):
    from apps.brokers.kiwoom.config import KiwoomConfig

    ports = kiwoom_sandbox.ports
    return KiwoomConfig.for_sandbox(rest_port=ports.kiwoom_rest, ws_port=ports.kiwoom_ws, rate_limit=20.0)


def _members(condition) -> set[str]:
    return set(ConditionMember.objects.filter(condition=condition).values_list("code", flat=True))


def _alternate(condition) -> None:
    """Exactly once: per stock, the events alternate IN, OUT, IN, ... (never the same kind twice)."""
    kinds: dict[str, list[str]] = {}
    for code, kind in ConditionEvent.objects.filter(condition=condition).order_by("id").values_list("code", "kind"):
        kinds.setdefault(code, []).append(kind)
    for code, sequence in kinds.items():
        assert sequence == ["IN", "OUT"] * (len(sequence) // 2) + ["IN"] * (len(sequence) % 2), (code, sequence)


def test_list_search_and_realtime_alerts_with_a_muted_stream(owner, kiwoom_sandbox, kiwoom_config):
    from apps.brokers.kiwoom.conditions import condition_list_sync, condition_search_sync
    from apps.marketdata.broker_services import kiwoom_client_async

    result = conditions_sync(owner=owner, infos=condition_list_sync(kiwoom_config, clients=kiwoom_client_async))
    assert (result.created, result.total) == (["0", "2"], 2)
    assert feed.enabled_condition_seqs() == ["0", "2"]
    condition = Condition.objects.get(owner=owner, seq="2")

    def search(seq):
        return condition_search_sync(seq, kiwoom_config, clients=kiwoom_client_async)

    # The first search brings the members in, found by polling.
    first = condition_reconcile(seq="2", search=search)[0]
    assert first.status == "ok" and first.entered == first.hits == len(_members(condition))
    assert set(ConditionEvent.objects.filter(condition=condition).values_list("source", flat=True)) <= {"poll"}

    def record(event) -> None:
        from django.db import connection

        try:
            feed.condition_alert_record(event)
        finally:
            connection.close()  # the worker threads of this test must not keep the test database open

    async def stream(seconds: float, conn) -> int:
        """Record the REAL 02 alerts arriving within ``seconds`` through the feed hook (in a thread)."""
        count, deadline = 0, time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = await conn.get(timeout=left)
            except TimeoutError:
                break
            await asyncio.to_thread(record, event)
            count += 1
        return count

    async def scenario() -> tuple[int, int]:
        from apps.brokers.kiwoom.ws import KiwoomConnection
        from apps.marketdata.broker_services import kiwoom_client_async

        client = kiwoom_client_async(kiwoom_config)
        try:
            token = await client.ws_token()
        finally:
            await client.aclose()
        conn = KiwoomConnection(kiwoom_config.ws_url)
        await conn.connect()
        try:
            await conn.login(token)
            await conn.condition_list()
            await conn.condition_subscribe("2")
            live = await stream(4.0, conn)
            # Mute the stream; changes during the mute are never pushed.
            kiwoom_sandbox.call(
                kiwoom_sandbox.server.core.faults.apply, {"name": "kiwoom_mute_conditions", "seconds": 4}
            )
            live += await stream(0.5, conn)  # pushed before the mute began, still in the socket's queue
            muted = await stream(3.5, conn)
            return live, muted
        finally:
            await conn.close()
            from asgiref.sync import sync_to_async
            from django.db import connections

            await sync_to_async(connections.close_all)()

    before_reconcile, live_total = None, 0
    for _attempt in range(3):  # until the replayed market moved a stock across its open during a mute
        live, muted = asyncio.run(scenario())
        assert muted == 0
        live_total += live
        before_reconcile = _members(condition)
        runs = condition_reconcile(seq="2", search=search)
        if runs[0].entered or runs[0].exited:
            break
    run = ConditionRun.objects.get(pk=runs[0].pk)
    assert run.status == "ok"
    assert run.entered + run.exited > 0, "the replayed market never crossed an open during the mutes"
    # Every live alert was recorded at most once (a repeated IN or an OUT of a non-member changes nothing).
    assert ConditionEvent.objects.filter(condition=condition, source="realtime").count() <= live_total
    found = _members(condition)
    poll = ConditionEvent.objects.filter(condition=condition, run=run)
    assert set(poll.values_list("source", flat=True)) == {"poll"}
    assert {c for c, k in poll.values_list("code", "kind") if k == "IN"} == found - before_reconcile
    assert {c for c, k in poll.values_list("code", "kind") if k == "OUT"} == before_reconcile - found
    assert run.hits == len(found)
    _alternate(condition)
