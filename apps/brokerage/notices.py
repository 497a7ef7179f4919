"""The execution-notice listener of one broker link: a WebSocket to KIS subscribed to ``H0STCNI9`` (paper) or
``H0STCNI0`` (real) with the link's HTS ID (kis-api.md §6.1, §6.7), every frame decrypted with the key and iv of the
subscribe answer (§6.2, §6.4) and applied once (``broker_notice_apply``).

After every (re)connect and before subscribing, the link is reconciled from the broker's order inquiry and then its
balance (``inquire-balance``: cash and holdings, the broker's win), so fills whose notices were lost while the socket
was down are counted once (the inquiry's cumulative quantity is the
reconcile execution's key; KIS sends only new notices after a subscribe). A notice for an order whose number is
not stored yet (the order's REST answer still on its way) is retried for ``UNMATCHED_RETRY_S`` and then left to the
reconciliation. PINGPONG frames are echoed (§6.3).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable

import websockets
from channels.db import database_sync_to_async as sync_to_async  # closes stale connections around each call

from apps.brokers.base import BrokerError
from apps.brokers.kis.orders import OrderNotice, parse_notice_frame

from .models import BrokerEnv, BrokerLink
from .services import (
    ClientFactory,
    broker_balance_apply,
    broker_notice_apply,
    broker_reconcile_apply,
    link_client,
    market_day,
)

logger = logging.getLogger(__name__)

UNMATCHED_RETRY_S = 30.0
RECONNECT_MAX_S = 30.0


class NoticeListener:
    """Runs until ``stop`` is set; ``stats`` counts what it applied (for tests, logs and the command)."""

    def __init__(
        self,
        link: BrokerLink,
        *,
        client_factory: ClientFactory = link_client,
        day=None,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.link = link
        self.client_factory = client_factory
        self.day = day
        self.on_event = on_event
        self.stats: Counter[str] = Counter()
        self.connections = 0
        self._seen: Counter[str] = Counter()
        self._pending: list[tuple[float, OrderNotice, str]] = []
        self.socket = None

    def _event(self, name: str) -> None:
        self.stats[name] += 1
        if self.on_event:
            self.on_event(name)

    async def reconcile(self, client) -> dict[str, int]:
        day = self.day or await sync_to_async(market_day)()
        rows = await client.daily_orders(account=self.link.cano, product=self.link.product_code, day=day)
        counts = await sync_to_async(broker_reconcile_apply)(link=self.link, rows=rows, notices_restart=True)
        try:  # the balance is not needed for the notices: without it, the scheduled run reads it later
            balance = await client.balance(account=self.link.cano, product=self.link.product_code)
        except BrokerError as exc:
            logger.warning(
                "balance inquiry failed", extra={"account": self.link.account_id, "error": type(exc).__name__}
            )
        else:
            counts.update(await sync_to_async(broker_balance_apply)(link=self.link, balance=balance))
        self._event("reconciled")
        return counts

    async def run(self, stop: asyncio.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            try:
                await self._session(stop)
                delay = 1.0
            except (TimeoutError, OSError, websockets.ConnectionClosed, BrokerError) as exc:
                logger.warning(
                    "notice socket lost; reconnecting",
                    extra={"account": self.link.account_id, "error": type(exc).__name__, "retry_in_s": delay},
                )
                self._event("disconnected")
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def _session(self, stop: asyncio.Event) -> None:
        async with self.client_factory(self.link) as client:
            approval = await client.approval_key()
            tr_id = "H0STCNI9" if self.link.env == BrokerEnv.PAPER else "H0STCNI0"
            async with websockets.connect(f"{client.config.ws_url}/tryitout", open_timeout=10) as ws:
                self.socket = ws
                self.connections += 1
                self._seen.clear()  # KIS sends only new notices on a new connection
                await self.reconcile(client)
                self._pending.clear()  # whatever they held, the reconciliation has counted
                await ws.send(json.dumps({
                    "header": {"approval_key": approval, "custtype": "P", "tr_type": "1", "content-type": "utf-8"},
                    "body": {"input": {"tr_id": tr_id, "tr_key": self.link.hts_id}},
                }))  # fmt: skip
                key = iv = ""
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 1.0)
                    except TimeoutError:
                        await self._retry_pending()
                        continue
                    text = raw if isinstance(raw, str) else raw.decode()
                    if text[:1] in ("0", "1"):
                        if not key:
                            continue
                        _tr, notices = parse_notice_frame(text, key, iv)
                        for notice in notices:
                            await self._apply(notice)
                        await self._retry_pending()
                        continue
                    message = json.loads(text)
                    header = message.get("header", {})
                    if header.get("tr_id") == "PINGPONG":
                        await ws.send(text)
                        continue
                    body = message.get("body", {})
                    if header.get("tr_id") == tr_id and body.get("rt_cd") == "0" and body.get("output"):
                        key, iv = body["output"]["key"], body["output"]["iv"]
                        self._event("subscribed")
                    elif header.get("tr_id") == tr_id:
                        raise BrokerError(f"notice subscription refused: {body.get('msg_cd')} {body.get('msg1')}")

    def _key(self, notice: OrderNotice) -> str:
        digest = hashlib.sha256(notice.raw.encode()).hexdigest()[:24]
        self._seen[digest] += 1
        return f"notice:{self.connections}:{digest}:{self._seen[digest]}"

    async def _apply(self, notice: OrderNotice, key: str | None = None) -> None:
        key = key or self._key(notice)
        result = await sync_to_async(broker_notice_apply)(link_id=self.link.pk, notice=notice, dedupe_key=key)
        if result == "unmatched":
            self._pending.append((time.monotonic(), notice, key))
        self._event(result)

    async def _retry_pending(self) -> None:
        pending, self._pending = self._pending, []
        for first_seen, notice, key in pending:
            if time.monotonic() - first_seen > UNMATCHED_RETRY_S:
                self._event("left_to_reconciliation")
                continue
            result = await sync_to_async(broker_notice_apply)(link_id=self.link.pk, notice=notice, dedupe_key=key)
            if result == "unmatched":
                self._pending.append((first_seen, notice, key))
            else:
                self._event(result)
