"""`MARKET_FEED=kiwoom` end to end, every part a real process: the sandbox broker (Kiwoom REST + WebSocket,
condition rules evaluated on the replay), Daphne, the feed worker (`-Q feed`) and a default worker, over
PostgreSQL and Redis, with browsers as plain WebSocket clients holding a session.

Covers, on one stack: ticks from the Kiwoom feed reach `/ws/market/` as quote and book snapshots; a condition
synced from the broker and subscribed in real time records IN/OUT events once each (source `realtime`) that
reach the page (`/ws/conditions/`), the toasts (`/ws/notifications/`) and the e-mail outbox; dropping every
broker connection restores the subscription (CNSRLST + CNSRREQ again) and events keep coming; with the alerts
muted, the reconciliation task (through Celery) records what the stream missed once each (source `poll`) and
a second run records nothing; per stock, IN and OUT alternate.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import time
import warnings
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import BrowserSocket, ProcessStack, api_client, poll, stopped_after

ADMIN = "kiwoom-e2e-admin"
CODES = ["005930", "000660", "035420", "005380"]
SEQ = "7"
CONDITION_NAME = "시가 돌파 (e2e)"
RECIPIENT = "alerts@example.com"
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class Stack(ProcessStack):
    def __init__(self, tmp_path: Path):
        rules = tmp_path / "conditions.json"
        # Above today's open, on four stocks, re-evaluated every 5 sim seconds (4 times a second at 20x).
        rules.write_text(
            json.dumps(
                {
                    "evaluation_interval": 5,
                    "conditions": [{"seq": SEQ, "name": CONDITION_NAME, "rule": "above_open", "codes": CODES}],
                }
            ),
            encoding="utf-8",
        )
        self.outbox = tmp_path / "outbox"
        self.outbox.mkdir()
        super().__init__(
            tmp_path,
            admin_token=ADMIN,
            MARKET_FEED="kiwoom",
            SANDBOX_SPEED="20",
            SANDBOX_KIWOOM_CONDITIONS=str(rules),
            SANDBOX_KIWOOM_PING_INTERVAL="1",
            SANDBOX_KIWOOM_RATE_LIMIT="50",
            KIWOOM_RATE_LIMIT="40",
            FEED_STALL_TIMEOUT="5",
            # django-environ keeps what follows "filemail:///" as the path: "/" + an absolute path.
            EMAIL_URL=f"filemail:///{self.outbox}",
        )


@pytest.fixture
def stack(tmp_path, clean_redis, request):
    with stopped_after(Stack(tmp_path), request, tail=6000) as running:
        running.start_sandbox()
        yield running


# --- helpers ---------------------------------------------------------------------------------------------


def _settle(fetch: Callable[[], Any], *, quiet: float, timeout: float, logs) -> Any:
    """Wait until ``fetch()`` has not changed for ``quiet`` seconds (nothing left in flight)."""
    deadline = time.monotonic() + timeout
    last, since = fetch(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = fetch()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    pytest.fail(f"still changing after {timeout}s: {last}\n{logs()}")


def _page_events(messages: list[dict]) -> list[dict]:
    return [m["event"] for m in messages if m.get("type") == "condition.event" and m.get("event")]


def _events(**filters) -> list[dict]:
    from apps.conditions.models import ConditionEvent

    return list(ConditionEvent.objects.filter(**filters).order_by("id").values("id", "code", "kind", "source", "at"))


def _members(condition_id: int) -> set[str]:
    from apps.conditions.models import ConditionMember

    return set(ConditionMember.objects.filter(condition_id=condition_id).values_list("code", flat=True))


def _assert_alternating(events: list[dict]) -> None:
    """Per stock, in id order: IN, OUT, IN, ... (the first may be an OUT only for a stock that was a member
    before the first event, which never happens here: membership starts empty)."""
    by_code: dict[str, list[str]] = {}
    for event in events:
        by_code.setdefault(event["code"], []).append(event["kind"])
    for code, kinds in by_code.items():
        expected = ["IN" if i % 2 == 0 else "OUT" for i in range(len(kinds))]
        assert kinds == expected, f"{code}: {kinds}"


def _outbox(stack: Stack) -> list[EmailMessage]:
    """Every message the file backend wrote (one file per connection, messages separated by a dash line)."""
    messages = []
    for path in sorted(stack.outbox.glob("*.log")):
        for chunk in path.read_text(encoding="utf-8").split("\n" + "-" * 79 + "\n"):
            if chunk.strip():
                messages.append(email.message_from_string(chunk.lstrip("\n"), policy=email.policy.default))
    return messages


def _emailed(stack: Stack) -> set[tuple[str, str]]:
    """(code, kind) of every condition e-mail (subject "[Hoga] [name] 편입: stock (code)")."""
    found = set()
    for message in _outbox(stack):
        subject = str(message["Subject"]).strip()
        if subject.startswith(f"[Hoga] [{CONDITION_NAME}] "):
            kind = "IN" if "편입:" in subject else "OUT" if "이탈:" in subject else subject
            found.add((subject.rsplit("(", 1)[-1].rstrip(")"), kind))
    return found


def _search_now(stack: Stack) -> set[str]:
    """The sandbox's members right now, by a normal search through the real Kiwoom client."""
    from channels.db import database_sync_to_async
    from django.db import connections

    from apps.brokers.kiwoom.conditions import condition_search
    from apps.brokers.kiwoom.config import KiwoomConfig
    from apps.marketdata.broker_services import kiwoom_client_async

    ports = stack.ports
    config = KiwoomConfig.for_sandbox(env="mock", rest_port=ports["kiwoom_rest"], ws_port=ports["kiwoom_ws"])

    async def go():
        try:
            return await condition_search(SEQ, config, clients=kiwoom_client_async)
        finally:
            await database_sync_to_async(connections.close_all)()

    return {hit.code for hit in asyncio.run(go())}


def _freeze_diverged(stack: Stack, condition_id: int, timeout: float = 60) -> tuple[set[str], int, set[str]]:
    """Freeze the replay at a moment where the sandbox's membership differs from the recorded one.

    Returns (recorded members, last event id, the sandbox's members) with no alert left in flight.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.set_clock({"speed": 0.001})  # practically frozen: every search sees one membership
        _settle(lambda: len(_events(condition_id=condition_id)), quiet=1.0, timeout=20, logs=stack.logs)
        members, truth = _members(condition_id), _search_now(stack)
        if truth != members:
            return members, max(e["id"] for e in _events(condition_id=condition_id)), truth
        stack.set_clock({"speed": 20})
        poll(
            lambda: _search_now(stack),
            lambda now, before=members: now != before,
            timeout=30,
            what="a change",
            logs=stack.logs,
            interval=0.1,
        )
    pytest.fail(f"no frozen moment with a membership change within {timeout}s\n{stack.logs()}")


def _reconcile_through_celery(stack: Stack, condition_id: int) -> dict:
    """Queue `conditions.reconcile` to the default worker (send_task: never eager) and wait for its run."""
    from celery import current_app
    from celery.exceptions import AlwaysEagerIgnored

    from apps.conditions.models import ConditionRun

    before = ConditionRun.objects.filter(condition_id=condition_id).count()
    with warnings.catch_warnings():  # this process runs tasks eagerly; send_task always goes to the broker
        warnings.simplefilter("ignore", AlwaysEagerIgnored)
        current_app.send_task("conditions.reconcile", queue="default")
    return poll(
        lambda: list(ConditionRun.objects.filter(condition_id=condition_id).order_by("id").values())[before:],
        lambda runs: bool(runs) and runs[0]["status"] != "running",
        timeout=40,
        what="no finished reconciliation run",
        logs=stack.logs,
        interval=0.1,
    )[0]


# --- the test --------------------------------------------------------------------------------------------


def test_kiwoom_feed_and_condition_search_end_to_end(stack, clean_redis):
    from django.core.management import call_command

    from apps.conditions.models import Condition

    call_command("load_universe", stdout=open(os.devnull, "w"))  # noqa: SIM115
    stack.set_clock({"time": "09:05:00"})
    stack.start_app()
    api = api_client(stack, "kiwoom-e2e", timeout=30)
    cookie = api.cookies["sessionid"]
    # The operator links this deployment's Kiwoom key to the user; the user verified their alert address.
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from apps.conditions.services import broker_connection_link
    from apps.trading.accounts.models import VerifiedEmail

    user = get_user_model().objects.get(username="kiwoom-e2e")
    broker_connection_link(user=user)
    VerifiedEmail.objects.create(user=user, email=RECIPIENT, verified_at=timezone.now())

    # The condition list comes from the broker (CNSRLST) through the page's API; e-mail turned on.
    synced = api.post("/api/conditions/sync")
    assert synced.status_code == 200, synced.text
    assert synced.json()["created"] == [SEQ], synced.text
    condition = Condition.objects.get(seq=SEQ)
    patched = api.patch(f"/api/conditions/{condition.pk}", json={"notify_email": True})
    assert patched.status_code == 200, patched.text

    sockets: list[BrowserSocket] = []
    try:
        _scenario(stack, api, condition, cookie, clean_redis, sockets)
    finally:
        for socket in sockets:
            socket.close()
        api.close()


def _scenario(stack, api, condition, cookie, redis, sockets) -> None:
    from apps.live.realtime.keys import FEED_STATUS_DETAIL_KEY

    web = stack.ports["web"]
    market = BrowserSocket(web, "/ws/market/", cookie).open({"type": "subscribe", "codes": CODES})
    page = BrowserSocket(web, "/ws/conditions/", cookie).open()
    toasts = BrowserSocket(web, "/ws/notifications/", cookie).open()
    sockets.extend([market, page, toasts])

    # 1. Ticks: quote and book snapshots of every subscribed stock, from the Kiwoom feed.
    def snapshots(field: str) -> Callable[[list[dict]], bool]:
        return lambda ms: {code for m in ms if m.get("type") == "batch" for code in m[field]} >= set(CODES)

    market.wait_for(snapshots("quotes"), timeout=40, what="quotes of every code", logs=stack.logs)
    market.wait_for(snapshots("books"), timeout=20, what="books of every code", logs=stack.logs)
    quotes = [q for m in market.messages if m.get("type") == "batch" for q in m["quotes"].values()]
    assert all(q["source"] == "ws" and q["price"] > 0 for q in quotes)
    detail = poll(
        lambda: json.loads(redis.get(FEED_STATUS_DETAIL_KEY) or "{}"),
        lambda d: d.get("session") == "connected",
        timeout=15,
        what="the feed status (written every 3 s) saying connected",
        logs=stack.logs,
        interval=0.1,
    )
    assert detail["source"] == "kiwoom" and detail["ticks"] > 0 and detail["books"] > 0, detail
    sandbox_log = stack.log("sandbox")
    assert "kiwoom ws #2 LOGIN ok" in sandbox_log and 'msg="ws connect #' not in sandbox_log  # no KIS socket

    # 2. Real-time IN and OUT events reach the page and the toasts; recorded once each as `realtime`.
    page.wait_for(
        lambda ms: {"IN", "OUT"} <= {e["kind"] for e in _page_events(ms)},
        timeout=40,
        what="an IN and an OUT on the conditions page",
        logs=stack.logs,
    )
    assert "realtime condition" in stack.log("sandbox")  # the feed's CNSRREQ search_type 1
    toasts.wait_for(
        lambda ms: any(m.get("type") == "notification" for m in ms), timeout=20, what="a toast", logs=stack.logs
    )
    seen = _page_events(page.messages)
    assert {e["source"] for e in seen} == {"realtime"}
    recorded = {e["id"]: e for e in _events(condition_id=condition.pk)}
    for event in seen:
        assert recorded[event["id"]]["kind"] == event["kind"] and recorded[event["id"]]["code"] == event["code"]
    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids))  # each event pushed to the page once
    toast = next(m["notification"] for m in toasts.messages if m.get("type") == "notification")
    assert CONDITION_NAME in toast["title"] and toast["event"]["id"] in recorded

    # ... and the e-mail outbox: one e-mail per stock and kind (the dedupe window is 5 minutes).
    realtime_pairs = lambda: {(e["code"], e["kind"]) for e in _events(condition_id=condition.pk)}  # noqa: E731
    poll(
        lambda: (_emailed(stack), realtime_pairs()),
        lambda got: got[0] and got[0] == got[1],
        timeout=30,
        what="an e-mail per (stock, IN/OUT) recorded",
        logs=stack.logs,
        interval=0.1,
    )
    assert all(message["To"] == RECIPIENT for message in _outbox(stack))

    # 3. Every broker connection dropped: the condition is subscribed again and events keep arriving.
    feed_log = stack.log("feed")
    lists_before = feed_log.count("CNSRLST")
    assert lists_before >= 1, feed_log[-3000:]
    stack.fault({"fault": "ws_drop"})
    poll(
        lambda: stack.log("feed"),
        lambda log: log.count("CNSRLST") > lists_before,
        timeout=30,
        what="CNSRLST + CNSRREQ again after the drop",
        logs=stack.logs,
        interval=0.1,
    )
    restored = stack.log("feed")[len(feed_log) :]
    assert "CNSRREQ" in restored and "realtime connected" in restored, restored[-3000:]
    top = max(e["id"] for e in _events(condition_id=condition.pk))
    page.wait_for(
        lambda ms: any(e["id"] > top for e in _page_events(ms)),
        timeout=30,
        what="a condition event after the reconnect",
        logs=stack.logs,
    )

    # 4. Alerts muted: membership changes unheard; the reconciliation search records it once as `poll`.
    stack.fault({"fault": "kiwoom_mute_conditions", "seconds": 300})
    muted_log = len(stack.log("sandbox"))
    poll(
        lambda: stack.log("sandbox")[muted_log:],
        lambda log: "alerts held back" in log,
        timeout=30,
        what="membership changes while muted",
        logs=stack.logs,
        interval=0.1,
    )
    before_members, before_top, truth = _freeze_diverged(stack, condition.pk)

    first = _reconcile_through_celery(stack, condition.pk)
    assert first["status"] == "ok", first
    polled = _events(condition_id=condition.pk, id__gt=before_top)
    assert {e["source"] for e in polled} == {"poll"}
    assert {(e["code"], e["kind"]) for e in polled} == {(c, "IN") for c in truth - before_members} | {
        (c, "OUT") for c in before_members - truth
    }
    assert len(polled) == len(truth ^ before_members)  # once each
    assert (first["entered"], first["exited"]) == (len(truth - before_members), len(before_members - truth))
    assert _members(condition.pk) == truth

    second = _reconcile_through_celery(stack, condition.pk)
    assert (second["status"], second["entered"], second["exited"]) == ("ok", 0, 0), second
    assert _events(condition_id=condition.pk, id__gt=before_top) == polled  # nothing new

    # The page heard the poll events too; over the whole run IN and OUT alternate per stock.
    page.wait_for(
        lambda ms: {e["id"] for e in _page_events(ms)} >= {e["id"] for e in polled},
        timeout=20,
        what="the poll events on the page",
        logs=stack.logs,
    )
    everything = _events(condition_id=condition.pk)
    _assert_alternating(everything)
    assert {e["source"] for e in everything if e["id"] <= before_top} == {"realtime"}
    detail = json.loads(redis.get(FEED_STATUS_DETAIL_KEY))
    assert detail["alerts_recorded"] > 0 and (detail["alert_errors"], detail["alerts_dropped"]) == (0, 0), detail
