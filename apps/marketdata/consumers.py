"""Browser WebSocket for live quotes: ``/ws/market/``.

Protocol (JSON text frames)::

    client -> server
        {"type": "subscribe", "codes": ["005930", ...]}     join those stocks (at most MAX_CODES per connection)
        {"type": "unsubscribe", "codes": ["005930", ...]}   leave them
        {"type": "ping", "id": <any>}                       liveness; answered with pong

    server -> client
        {"type": "status", "status": "connected|reconnecting|stale|closed|stopped|unknown"}
        {"type": "subscribed", "codes": [...]} / {"type": "unsubscribed", "codes": [...]}   the full current set
        {"type": "quote", "quote": {...full snapshot...}}    see realtime/snapshots.py
        {"type": "book", "book": {...full snapshot...}}
        {"type": "pong", "id": <the ping's id>}
        {"type": "error", "code": "...", "message": "...", ["codes": [...]]}   the connection stays open

Invariants:
- Only an authenticated session connects (anonymous: close code 4401); the consumer touches no ORM.
- Group names come from validated codes only (``keys.quote_group``), never from raw client text.
- Per-connection coalescing: the group-message handlers never send and never block, they only store the
  latest snapshot per (kind, code) in ``_pending``; one sender task writes them out. A slow browser
  therefore holds at most one pending snapshot per stock and kind (plus one status), however fast the
  feed is, and can never delay the channel layer or other browsers. Snapshots are full, so skipping
  intermediate ones loses nothing a page needs.
- Backpressure: the sender awaits ``send`` (servers that apply backpressure, e.g. uvicorn, make it wait)
  and, on Daphne, whose ``send`` never waits, it also pauses while the connection's Twisted write buffer
  is above ``WRITE_HIGH_WATER`` (see :func:`write_backlog`). While it waits, newer snapshots overwrite
  the pending ones (counted in ``coalesced``).
- Demand: every subscribed code is a member ``<code>|<connection id>`` of ``keys.VIEWERS_ZSET`` scored
  with the wall time of the last heartbeat (refreshed every ``VIEWER_HEARTBEAT`` s); members are removed
  on unsubscribe and disconnect, and expire on their own after ``VIEWER_TTL`` if this process dies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import weakref
from typing import Any

import redis.asyncio as aioredis
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from .realtime import keys

logger = logging.getLogger(__name__)

MAX_CODES = 50  # stocks per connection: a watch list page plus a few charts
MAX_MESSAGE_CHARS = 8192  # a subscribe of MAX_CODES codes is ~500 characters
WRITE_HIGH_WATER = 256 * 1024  # bytes buffered for one browser before the sender stops writing (~500 snapshots)
WRITE_POLL = 0.005  # seconds between checks of a full write buffer
UNKNOWN_STATUS = "unknown"

_QUOTE, _BOOK, _STATUS = "quote", "book", "status"

_redis_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def async_redis() -> aioredis.Redis:
    """The asyncio Redis client of the running event loop (one pool per loop: pools are loop-bound)."""
    loop = asyncio.get_running_loop()
    client = _redis_by_loop.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
        _redis_by_loop[loop] = client
    return client


def write_backlog(send: Any) -> int | None:
    """Bytes waiting in the ASGI server's own write buffer for this connection, when it can be seen.

    Daphne's ``send`` is ``functools.partial(Server.handle_reply, protocol)`` and writes synchronously
    into the protocol's Twisted transport, whose unsent bytes are ``dataBuffer[offset:]`` plus
    ``_tempDataLen``. Read-only; returns None for any other server (or a changed Daphne/Twisted), in
    which case the sender relies on ``send`` itself waiting.
    """
    args = getattr(send, "args", None)
    if not args:
        return None
    transport = getattr(args[0], "transport", None)
    buffered = getattr(transport, "dataBuffer", None)
    if not isinstance(buffered, bytes):
        return None
    return len(buffered) - int(getattr(transport, "offset", 0)) + int(getattr(transport, "_tempDataLen", 0))


class ClientMessageError(Exception):
    """A client message that is answered with an error frame."""

    def __init__(self, code: str, message: str, *, codes: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.codes = codes


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class MarketConsumer(AsyncJsonWebsocketConsumer):
    """Live quotes and order books of the stocks a browser subscribed to, coalesced per connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection_id = uuid.uuid4().hex[:16]
        self.codes: set[str] = set()
        self._pending: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, code) -> message to send
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._accepted = False
        self.sent = 0
        self.coalesced = 0

    # --- lifecycle ---------------------------------------------------------------------------------

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        await self.accept()
        self._accepted = True
        self._tasks = [
            asyncio.create_task(self._sender(), name=f"market-ws-sender-{self.connection_id}"),
            asyncio.create_task(self._heartbeat(), name=f"market-ws-heartbeat-{self.connection_id}"),
        ]
        await self.channel_layer.group_add(keys.STATUS_GROUP, self.channel_name)
        status = await async_redis().get(keys.FEED_STATUS_KEY)
        self._offer(_STATUS, "", {"type": "status", "status": _decode(status) if status else UNKNOWN_STATUS})

    async def disconnect(self, code: int) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if not self._accepted:
            return
        codes, self.codes = sorted(self.codes), set()
        try:
            await self.channel_layer.group_discard(keys.STATUS_GROUP, self.channel_name)
            for stock_code in codes:
                await self.channel_layer.group_discard(keys.quote_group(stock_code), self.channel_name)
            if codes:
                await async_redis().zrem(keys.VIEWERS_ZSET, *(self._member(c) for c in codes))
        except (OSError, aioredis.RedisError) as exc:  # the members expire after VIEWER_TTL anyway
            logger.warning("market ws %s: cleanup failed: %s", self.connection_id, exc)
        logger.debug(
            "market ws %s closed (%s): %d sent, %d coalesced", self.connection_id, code, self.sent, self.coalesced
        )

    # --- client messages -----------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        """Every client frame gets an answer or an effect; a bad one gets an error frame, never a crash."""
        try:
            if text_data is None:
                raise ClientMessageError("bad_message", "expected a JSON text frame")
            if len(text_data) > MAX_MESSAGE_CHARS:
                raise ClientMessageError("message_too_large", f"messages are limited to {MAX_MESSAGE_CHARS} characters")
            try:
                content = json.loads(text_data)
            except ValueError:
                raise ClientMessageError("bad_message", "not valid JSON") from None
            if not isinstance(content, dict):
                raise ClientMessageError("bad_message", "expected a JSON object with a 'type'")
            await self.receive_json(content)
        except ClientMessageError as exc:
            error: dict[str, Any] = {"type": "error", "code": exc.code, "message": exc.message}
            if exc.codes is not None:
                error["codes"] = exc.codes
            await self.send_json(error)

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        kind = content.get("type")
        if kind == "subscribe":
            await self._subscribe(self._codes_of(content))
        elif kind == "unsubscribe":
            await self._unsubscribe(self._codes_of(content))
        elif kind == "ping":
            await self.send_json({"type": "pong", "id": content.get("id")})
        else:
            raise ClientMessageError("unknown_type", "type must be one of 'subscribe', 'unsubscribe', 'ping'")

    @staticmethod
    def _codes_of(content: dict[str, Any]) -> list[str]:
        codes = content.get("codes")
        if not isinstance(codes, list) or not codes:
            raise ClientMessageError("invalid_codes", "'codes' must be a non-empty list of 6-character stock codes")
        if len(codes) > MAX_CODES:
            raise ClientMessageError("too_many_codes", f"at most {MAX_CODES} codes per connection")
        bad = [c if isinstance(c, str) else repr(c) for c in codes if not (isinstance(c, str) and keys.valid_code(c))]
        if bad:
            raise ClientMessageError("invalid_codes", "stock codes are 6 characters of 0-9 and A-Z", codes=bad[:10])
        return list(dict.fromkeys(codes))

    async def _subscribe(self, codes: list[str]) -> None:
        new = [c for c in codes if c not in self.codes]
        if len(self.codes) + len(new) > MAX_CODES:
            raise ClientMessageError("too_many_codes", f"at most {MAX_CODES} codes per connection")
        for stock_code in new:
            await self.channel_layer.group_add(keys.quote_group(stock_code), self.channel_name)
        self.codes.update(new)
        redis = async_redis()
        pipe = redis.pipeline(transaction=False)
        if new:
            now = time.time()
            pipe.zadd(keys.VIEWERS_ZSET, {self._member(c): now for c in new})
        pipe.hmget(keys.QUOTES_HASH, codes)
        pipe.hmget(keys.BOOKS_HASH, codes)
        *_, quotes, books = await pipe.execute()
        await self.send_json({"type": "subscribed", "codes": sorted(self.codes)})
        # The stored snapshots were written before their group message was published, so they are at
        # least as new as anything received so far: they only fill keys without a pending live message.
        for stock_code, quote, book in zip(codes, quotes, books, strict=True):
            if quote:
                self._offer(_QUOTE, stock_code, {"type": "quote", "quote": json.loads(quote)}, replace=False)
            if book:
                self._offer(_BOOK, stock_code, {"type": "book", "book": json.loads(book)}, replace=False)

    async def _unsubscribe(self, codes: list[str]) -> None:
        gone = [c for c in codes if c in self.codes]
        self.codes.difference_update(gone)
        for stock_code in gone:
            await self.channel_layer.group_discard(keys.quote_group(stock_code), self.channel_name)
            self._pending.pop((_QUOTE, stock_code), None)
            self._pending.pop((_BOOK, stock_code), None)
        if gone:
            await async_redis().zrem(keys.VIEWERS_ZSET, *(self._member(c) for c in gone))
        await self.send_json({"type": "unsubscribed", "codes": sorted(self.codes)})

    # --- group messages (never send, never block) --------------------------------------------------

    async def quote_tick(self, event: dict[str, Any]) -> None:
        quote = event.get("quote") or {}
        if quote.get("code") in self.codes:  # a message in flight when the browser unsubscribed is dropped
            self._offer(_QUOTE, quote["code"], {"type": "quote", "quote": quote})

    async def book_snapshot(self, event: dict[str, Any]) -> None:
        book = event.get("book") or {}
        if book.get("code") in self.codes:
            self._offer(_BOOK, book["code"], {"type": "book", "book": book})

    async def feed_status(self, event: dict[str, Any]) -> None:
        self._offer(_STATUS, "", {"type": "status", "status": str(event.get("status") or UNKNOWN_STATUS)})

    def _offer(self, kind: str, code: str, message: dict[str, Any], *, replace: bool = True) -> None:
        key = (kind, code)
        if key in self._pending:
            if not replace:
                return
            self.coalesced += 1
        self._pending[key] = message
        self._wakeup.set()

    # --- background tasks ------------------------------------------------------------------------------

    async def _sender(self) -> None:
        """The only writer of snapshots: oldest pending key first, each with its latest snapshot."""
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._pending:
                    while (backlog := write_backlog(self.base_send)) is not None and backlog > WRITE_HIGH_WATER:
                        await asyncio.sleep(WRITE_POLL)
                    if not self._pending:  # an unsubscribe emptied it while we waited
                        break
                    key = next(iter(self._pending))
                    message = self._pending.pop(key)
                    await self.send_json(message)
                    self.sent += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the browser left mid-send (autobahn's Disconnected) or a dead transport
            if type(exc).__name__ == "Disconnected":  # a normal end: the disconnect handler cleans up
                logger.info("market ws %s: browser left while sending", self.connection_id)
            else:
                logger.exception("market ws %s: sender stopped", self.connection_id)

    async def _heartbeat(self) -> None:
        """Refreshes this connection's viewer scores so the feed holder keeps its subscriptions."""
        while True:
            await asyncio.sleep(keys.VIEWER_HEARTBEAT)
            if not self.codes:
                continue
            try:
                await async_redis().zadd(keys.VIEWERS_ZSET, {self._member(c): time.time() for c in self.codes})
            except (OSError, aioredis.RedisError) as exc:
                logger.warning("market ws %s: viewer heartbeat failed: %s", self.connection_id, exc)

    def _member(self, code: str) -> str:
        return f"{code}|{self.connection_id}"
