"""Browser WebSocket for live quotes: ``/ws/market/``.

Protocol (JSON text frames)::

    client -> server
        {"type": "subscribe", "codes": ["005930", ...]}     join those stocks (at most MAX_CODES per connection)
        {"type": "unsubscribe", "codes": ["005930", ...]}   leave them
        {"type": "ping", "id": <any>}                       liveness; answered with pong

    server -> client
        {"type": "status", "status": "connected|reconnecting|stale|closed|stopped|unknown"}
        {"type": "subscribed", "codes": [...]} / {"type": "unsubscribed", "codes": [...]}   the full current set
        {"type": "batch", "seq": n, "quotes": {code: {...full snapshot...}}, "books": {code: {...}}}
                                                              see realtime/snapshots.py and realtime/hub.py
        {"type": "pong", "id": <the ping's id>}
        {"type": "error", "code": "...", "message": "...", ["codes": [...]]}   the connection stays open
        {"type": "session_ended"}                             then close 4401: the login session ended

Invariants:
- Only an authenticated session connects (anonymous: close code 4401); it closes when the session ends.
- Limits (settings): ``MARKET_WS_MAX_CODES`` stocks per connection, ``MARKET_WS_MAX_CODES_PER_USER`` different
  stocks per user across connections, ``MARKET_WS_MAX_CONNECTIONS_PER_USER`` connections per user (one more is
  answered ``too_many_connections`` and closed with 4429), ``WS_MESSAGE_RATE`` messages per second per
  connection and ``MARKET_WS_USER_MESSAGES_PER_MINUTE`` per user. Every refusal is an error frame.
- Only active stocks of the universe table count as demand: a well-formed but unknown code
  (``ZZZZ00``) is refused with ``unknown_codes``, a code with whitespace (``"005930\n"``) with
  ``invalid_codes``. The known codes are cached per process; a miss is one indexed query.
- Interest is registered with the hub for validated codes only; group names (``apps.core.groups``) never come
  from raw client text.
- Fan-out (``realtime.hub``): the process's hub joins the quote bucket groups and the status group once; this
  consumer only registers its stocks with it. Each connection has an :class:`~.realtime.hub.Outbox`: the hub
  writes its frame at once when it is idle; snapshots arriving while a write is in flight, or within the frame
  interval of ``MARKET_WS_MAX_FPS``, are conflated into the next ``batch`` frame (the latest snapshot of
  every changed stock, ``seq`` counting the frames of this connection from 1). A slow browser holds at most
  one pending snapshot per stock and kind and never delays the hub or other browsers. Snapshots are full, so
  skipping intermediate ones loses nothing a page needs.
- Backpressure: the sender awaits ``send`` (servers that apply backpressure, e.g. uvicorn, make it wait)
  and, on Daphne, whose ``send`` never waits, it also pauses while the connection's Twisted write buffer
  is above ``WRITE_HIGH_WATER`` (see :func:`write_backlog`); meanwhile newer snapshots replace pending ones.
- Demand: every subscribed code is a member ``<code>|<user id>|<connection id>`` of ``keys.VIEWERS_ZSET`` scored
  with the wall time of the last heartbeat (refreshed every ``VIEWER_HEARTBEAT`` s); members are removed
  on unsubscribe and disconnect, and expire on their own after ``VIEWER_TTL`` if this process dies.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import redis.asyncio as aioredis
from channels.db import database_sync_to_async
from channels.sessions import InstanceSessionWrapper
from django.conf import settings

from apps.core import groups
from apps.core.consumers import ClientMessageError, SafeJsonConsumer
from apps.core.redis import async_redis
from apps.marketdata.models import Stock

from .quotes import feed_status_async, snapshot_texts_async
from .realtime import keys, metrics
from .realtime.hub import Outbox, get_hub

logger = logging.getLogger(__name__)

MAX_CODES = 50  # default of MARKET_WS_MAX_CODES: a watch list page plus a few charts
MAX_MESSAGE_CHARS = 8192  # a subscribe of MAX_CODES codes is ~500 characters
WRITE_HIGH_WATER = 256 * 1024  # bytes buffered for one browser before the sender stops writing (~500 snapshots)
WRITE_POLL = 0.005  # seconds between checks of a full write buffer
UNKNOWN_STATUS = "unknown"
CLOSE_TOO_MANY_CONNECTIONS = 4429
UNIVERSE_REFRESH = 300.0  # seconds a known stock code is trusted before the process re-reads the table

#: Known, active stock codes of this process (codes missing here are looked up before being refused).
_known_codes: set[str] = set()
_known_codes_at = 0.0


@database_sync_to_async
def _active_codes(codes: list[str] | None = None) -> set[str]:

    qs = Stock.objects.filter(active=True)
    if codes is not None:
        qs = qs.filter(code__in=codes)
    return set(qs.values_list("code", flat=True))


async def unknown_codes(codes: list[str]) -> list[str]:
    """The codes of ``codes`` that are not active stocks of the universe table, in order.

    Known codes are cached per process (re-read every ``UNIVERSE_REFRESH`` s); a miss is looked up (one
    indexed query of just those codes), so a stock added a moment ago is accepted at once. The callers are
    bounded by the message rate limits, so misses cannot flood the database.
    """
    global _known_codes, _known_codes_at
    if time.monotonic() - _known_codes_at > UNIVERSE_REFRESH:
        _known_codes, _known_codes_at = await _active_codes(), time.monotonic()
    missing = [c for c in codes if c not in _known_codes]
    if missing:
        found = await _active_codes(missing)
        _known_codes |= found
        missing = [c for c in missing if c not in found]
    return missing


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


def server_send(send: Any) -> Any:
    """The ASGI server's own ``send`` under Channels' session middleware, for frames that need none of it.

    ``SessionMiddleware`` wraps ``send`` (``InstanceSessionWrapper.send``) to save the session and set its
    cookie on an HTTP response start; for every other message it only reads the session's state and passes
    the message on. A WebSocket frame never saves a session, and with hundreds of browsers that pass-through
    was a tenth of a web process's CPU (bench/fanout.py), so the sender writes through the server's ``send``.
    Any other wrapper is kept as it is.
    """
    while getattr(send, "__func__", None) is InstanceSessionWrapper.send:
        send = send.__self__.real_send
    return send


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def user_connections_key(user_id: int) -> str:
    return f"hoga:rt:ws:user:{int(user_id)}:conns"


def user_codes_key(user_id: int) -> str:
    return f"hoga:rt:ws:user:{int(user_id)}:codes"


def user_messages_key(user_id: int, minute: int) -> str:
    return f"hoga:rt:ws:user:{int(user_id)}:msgs:{minute}"


class MarketConsumer(SafeJsonConsumer):
    """Live quotes and order books of the stocks a browser subscribed to, coalesced per connection."""

    max_message_chars = MAX_MESSAGE_CHARS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection_id = uuid.uuid4().hex[:16]
        self.user_id: int | None = None
        self.codes: set[str] = set()
        self.outbox: Outbox | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._accepted = False
        self._registered = False
        self._frame_send: Any = None

    # --- lifecycle ---------------------------------------------------------------------------------

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.user_id = user.pk
        await self.accept()
        if not await self._register_connection():
            limit = settings.MARKET_WS_MAX_CONNECTIONS_PER_USER
            await self.send_error("too_many_connections", f"at most {limit} live-quote connections per user")
            await self.close(code=CLOSE_TOO_MANY_CONNECTIONS)
            return
        self._accepted = True
        metrics.CONNECTED_CLIENTS.inc()
        self._frame_send = server_send(self.base_send)
        self.outbox = Outbox(
            self._send_text,
            max_fps=settings.MARKET_WS_MAX_FPS,
            # only a server whose write buffer can be seen (Daphne) needs the check; uvicorn's send waits itself
            wait_writable=self._wait_writable if write_backlog(self._frame_send) is not None else None,
            name=self.connection_id,
        )
        await get_hub(self.channel_layer).register(self.outbox)
        self._tasks = [
            asyncio.create_task(self._sender(), name=f"market-ws-sender-{self.connection_id}"),
            asyncio.create_task(self._heartbeat(), name=f"market-ws-heartbeat-{self.connection_id}"),
        ]
        await self.bind_session()
        self.outbox.offer_status(await feed_status_async() or UNKNOWN_STATUS)

    async def _register_connection(self) -> bool:
        """Count this connection among the user's (stale ones pruned); False above the per-user limit."""
        limit = settings.MARKET_WS_MAX_CONNECTIONS_PER_USER
        redis = async_redis()
        key = user_connections_key(self.user_id)
        now = time.time()
        pipe = redis.pipeline(transaction=True)
        pipe.zremrangebyscore(key, "-inf", f"({now - keys.VIEWER_TTL}")
        pipe.zadd(key, {self.connection_id: now})
        pipe.zcard(key)
        pipe.expire(key, int(keys.VIEWER_TTL * 4))
        _pruned, _added, count, _ttl = await pipe.execute()
        self._registered = True
        if limit and count > limit:
            await redis.zrem(key, self.connection_id)
            self._registered = False
            return False
        return True

    async def disconnect(self, code: int) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.outbox is not None:
            await self.outbox.close()
        await self.unbind_session()
        if self._registered and self.user_id is not None:
            try:
                await async_redis().zrem(user_connections_key(self.user_id), self.connection_id)
            except (OSError, aioredis.RedisError) as exc:  # the member expires after VIEWER_TTL anyway
                logger.warning("market ws %s: connection count cleanup failed: %s", self.connection_id, exc)
        if not self._accepted:
            return
        metrics.CONNECTED_CLIENTS.dec()
        codes, self.codes = sorted(self.codes), set()
        try:
            if self.outbox is not None:
                await get_hub(self.channel_layer).unregister(self.outbox)
            if codes:
                pipe = async_redis().pipeline(transaction=False)
                pipe.zrem(keys.VIEWERS_ZSET, *(self._member(c) for c in codes))
                pipe.zrem(user_codes_key(self.user_id), *(self._user_member(c) for c in codes))
                await pipe.execute()
        except (OSError, aioredis.RedisError) as exc:  # the members expire after VIEWER_TTL anyway
            logger.warning("market ws %s: cleanup failed: %s", self.connection_id, exc)
        if self.outbox is not None:
            logger.debug("market ws %s closed (%s): %d frames, %d conflated", self.connection_id, code,
                         self.outbox.frames, self.outbox.conflated)  # fmt: skip

    # --- client messages -----------------------------------------------------------------------------

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            raise ClientMessageError("bad_message", "expected a JSON object with a 'type'")
        await self._count_user_message()
        kind = content.get("type")
        if kind == "subscribe":
            await self._subscribe(await self._known(self._codes_of(content)))
        elif kind == "unsubscribe":
            await self._unsubscribe(self._codes_of(content))
        elif kind == "ping":
            await self.send_json({"type": "pong", "id": content.get("id")})
        else:
            raise ClientMessageError("unknown_type", "type must be one of 'subscribe', 'unsubscribe', 'ping'")

    async def _count_user_message(self) -> None:
        """Per-user message rate across all of the user's connections (a fixed one-minute window in Redis)."""
        limit = settings.MARKET_WS_USER_MESSAGES_PER_MINUTE
        if not limit or self.user_id is None:
            return
        key = user_messages_key(self.user_id, int(time.time() // 60))
        pipe = async_redis().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 120)
        count, _ = await pipe.execute()
        if count > limit:
            raise ClientMessageError("rate_limited", f"at most {limit} messages per minute per user")

    @staticmethod
    def _codes_of(content: dict[str, Any]) -> list[str]:
        codes = content.get("codes")
        limit = settings.MARKET_WS_MAX_CODES
        if not isinstance(codes, list) or not codes:
            raise ClientMessageError("invalid_codes", "'codes' must be a non-empty list of 6-character stock codes")
        if len(codes) > limit:
            raise ClientMessageError("too_many_codes", f"at most {limit} codes per connection")
        bad = [c if isinstance(c, str) else repr(c) for c in codes if not (isinstance(c, str) and groups.valid_code(c))]
        if bad:
            raise ClientMessageError("invalid_codes", "stock codes are 6 characters of 0-9 and A-Z", codes=bad[:10])
        return list(dict.fromkeys(codes))

    async def _known(self, codes: list[str]) -> list[str]:
        """Only stocks of the universe table count as demand: well-formed but unknown codes are refused."""
        unknown = await unknown_codes(codes)
        if unknown:
            raise ClientMessageError("unknown_codes", "not active stocks of the universe", codes=unknown[:10])
        return codes

    async def _subscribe(self, codes: list[str]) -> None:
        new = [c for c in codes if c not in self.codes]
        limit = settings.MARKET_WS_MAX_CODES
        if len(self.codes) + len(new) > limit:
            raise ClientMessageError("too_many_codes", f"at most {limit} codes per connection")
        redis = async_redis()
        if new:
            await self._check_user_codes(redis, new)
        assert self.outbox is not None
        get_hub(self.channel_layer).watch(self.outbox, new)
        self.codes.update(new)
        pipe = redis.pipeline(transaction=False)
        if new:
            now = time.time()
            pipe.zadd(keys.VIEWERS_ZSET, {self._member(c): now for c in new})
            pipe.zadd(user_codes_key(self.user_id), {self._user_member(c): now for c in new})
            pipe.expire(user_codes_key(self.user_id), int(keys.VIEWER_TTL * 4))
        if new:
            await pipe.execute()
        stored = await snapshot_texts_async(codes)
        await self.send_json({"type": "subscribed", "codes": sorted(self.codes)})
        # The stored snapshots were written before their group message was published, so they are at
        # least as new as anything received so far: they only fill keys without a pending live message.
        for stock_code, quote, book in stored:
            if quote:
                self.outbox.offer("quotes", stock_code, quote, None, replace=False)
            if book:
                self.outbox.offer("books", stock_code, book, None, replace=False)

    async def _check_user_codes(self, redis: Any, new: list[str]) -> None:
        """Distinct stocks watched by the user across all of their connections stay within the per-user cap."""
        limit = settings.MARKET_WS_MAX_CODES_PER_USER
        if not limit:
            return
        key = user_codes_key(self.user_id)
        now = time.time()
        pipe = redis.pipeline(transaction=False)
        pipe.zremrangebyscore(key, "-inf", f"({now - keys.VIEWER_TTL}")
        pipe.zrange(key, 0, -1)
        _pruned, members = await pipe.execute()
        watched = {_decode(m).partition("|")[0] for m in members}
        if len(watched | set(new)) > limit:
            raise ClientMessageError("too_many_codes", f"at most {limit} different stocks per user at once")

    async def _unsubscribe(self, codes: list[str]) -> None:
        gone = [c for c in codes if c in self.codes]
        self.codes.difference_update(gone)
        if gone and self.outbox is not None:
            get_hub(self.channel_layer).unwatch(self.outbox, gone)
        if gone:
            pipe = async_redis().pipeline(transaction=False)
            pipe.zrem(keys.VIEWERS_ZSET, *(self._member(c) for c in gone))
            pipe.zrem(user_codes_key(self.user_id), *(self._user_member(c) for c in gone))
            await pipe.execute()
        await self.send_json({"type": "unsubscribed", "codes": sorted(self.codes)})

    # --- the sender ----------------------------------------------------------------------------------

    async def _send_text(self, text: str) -> None:
        await self._frame_send({"type": "websocket.send", "text": text})  # what self.send(text_data=) sends

    async def _wait_writable(self) -> None:
        while (backlog := write_backlog(self._frame_send)) is not None and backlog > WRITE_HIGH_WATER:
            await asyncio.sleep(WRITE_POLL)

    async def _sender(self) -> None:
        """The only writer of snapshots and status frames (``Outbox.run``)."""
        assert self.outbox is not None
        try:
            await self.outbox.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the browser left mid-send (autobahn's Disconnected) or a dead transport
            if type(exc).__name__ == "Disconnected":  # a normal end: the disconnect handler cleans up
                logger.info("market ws %s: browser left while sending", self.connection_id)
            else:
                logger.exception("market ws %s: sender stopped", self.connection_id)

    async def _heartbeat(self) -> None:
        """Refreshes this connection's viewer scores (and its place among the user's connections) so the feed
        holder keeps its subscriptions and the per-user counts stay right."""
        while True:
            await asyncio.sleep(keys.VIEWER_HEARTBEAT)
            now = time.time()
            try:
                pipe = async_redis().pipeline(transaction=False)
                pipe.zadd(user_connections_key(self.user_id), {self.connection_id: now})
                if self.codes:
                    pipe.zadd(keys.VIEWERS_ZSET, {self._member(c): now for c in self.codes})
                    pipe.zadd(user_codes_key(self.user_id), {self._user_member(c): now for c in self.codes})
                await pipe.execute()
            except (OSError, aioredis.RedisError) as exc:
                logger.warning("market ws %s: viewer heartbeat failed: %s", self.connection_id, exc)

    def _member(self, code: str) -> str:
        """Viewer demand member: the code, the user (so one user counts once per stock) and this connection."""
        return f"{code}|{self.user_id}|{self.connection_id}"

    def _user_member(self, code: str) -> str:
        return f"{code}|{self.connection_id}"
