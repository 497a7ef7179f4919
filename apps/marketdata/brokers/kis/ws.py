"""The KIS real-time WebSocket client (kis-api.md §6): one connection, and a self-healing session.

:class:`KisRealtimeConnection` is one WebSocket (``websockets`` asyncio client). It sends §6.1
subscribe/unsubscribe requests one at a time and waits for each ack, answers every PINGPONG (the text
is sent back as a text frame, as python-kis/mojito do, and also as a pong control frame, as the official
samples do), parses data frames (:mod:`.realtime`) and hands every :class:`Tick` / :class:`OrderBook`
to a non-blocking sink. It never reconnects.

:class:`KisRealtimeSession` is the long-running loop around it: a desired set of registrations that can
change at any time, reconnection with exponential back-off and jitter, a new approval key when the broker
refuses the current one, restoration of every registration after a reconnect, and stall detection.

Invariants:

- every wait is bounded (open, send, ack, close, approval key, back-off; the stall check bounds silence);
- neither class ever blocks on the consumer: events go to a synchronous callback (which must not block)
  or, without a callback, to a bounded :class:`DropOldestQueue` that evicts the OLDEST event when full and
  counts each eviction in ``stats.dropped``;
- only events of registrations acknowledged on the current connection are delivered;
- the approval key and the AES iv/key of acks are never logged (logs carry the app key's ``key_id`` only);
- the local registration cap (default 41, §6.8) is checked before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.protocol import State

from ..base import KST, BrokerError, BrokerProtocolError, BrokerTransientError, OrderBook, Tick
from .client import backoff_delay
from .config import KisConfig
from .realtime import (
    MAX_REGISTRATIONS,
    TR_BOOK,
    TR_TRADES,
    Ack,
    AckTimeout,
    ApprovalKeyInUse,
    ApprovalKeyRejected,
    EncryptedFrame,
    PingPong,
    RealtimeConnectionLost,
    RealtimeEvent,
    Registration,
    SubscriptionLimitExceeded,
    SubscriptionRefused,
    ack_error,
    is_data_frame,
    parse_control,
    parse_frame,
    subscription_message,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: A synchronous, non-blocking consumer of parsed events.
EventSink = Callable[[RealtimeEvent], None]
#: ``await provider()`` → a fresh approval key (e.g. ``AsyncKisClient.approval_key``).
ApprovalKeyProvider = Callable[[], Awaitable[str]]
SessionStatus = Literal["connecting", "connected", "reconnecting", "stale", "stopped"]

DEFAULT_PATH = "/tryitout"
DEFAULT_QUEUE_SIZE = 10_000


def endpoint(ws_url: str, path: str = DEFAULT_PATH) -> str:
    """``ws_url`` plus ``path`` when the URL has no path of its own (KIS accepts any path; samples use /tryitout)."""
    if urlsplit(ws_url).path in ("", "/"):
        return ws_url.rstrip("/") + path
    return ws_url


@dataclasses.dataclass(slots=True)
class RealtimeStats:
    """Counters of a connection or a session (a session shares one instance across its connections)."""

    #: Data frames received (plain or not, parsable or not).
    frames: int = 0
    ticks: int = 0
    books: int = 0
    pingpongs: int = 0
    #: Data frames that did not parse (logged) and encrypted frames skipped (logged once per tr_id).
    protocol_errors: int = 0
    encrypted_skipped: int = 0
    #: Events of registrations not (or no longer) acknowledged on this connection, discarded.
    ignored: int = 0
    #: Events evicted from a full queue (oldest first), and exceptions raised by a callback.
    dropped: int = 0
    callback_errors: int = 0
    #: Session only: connections opened after the first one, failed attempts, stalls detected, keys obtained.
    reconnects: int = 0
    connect_failures: int = 0
    stalls: int = 0
    approval_keys: int = 0
    #: Arrival of the last data frame: aware KST datetime and ``time.monotonic()``.
    last_frame_at: dt.datetime | None = None
    last_frame_monotonic: float | None = None

    def snapshot(self) -> RealtimeStats:
        return dataclasses.replace(self)


class QueueClosed(Exception):
    """:meth:`DropOldestQueue.get` on a closed queue with nothing left in it."""


class DropOldestQueue(Generic[T]):
    """A bounded FIFO whose producer never waits: ``put_nowait`` on a full queue evicts the OLDEST item.

    Single event loop only. ``on_drop`` is called once per evicted item. After :meth:`close`, ``get``
    still returns what is left, then raises :class:`QueueClosed`.
    """

    def __init__(self, maxsize: int, *, on_drop: Callable[[], None] | None = None) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._on_drop = on_drop

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put_nowait(self, item: T) -> None:
        if self._closed:
            return
        while len(self._items) >= self.maxsize:
            self._items.popleft()
            if self._on_drop is not None:
                self._on_drop()
        self._items.append(item)
        self._ready.set()

    def get_nowait(self) -> T:
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.popleft()
        if not self._items and not self._closed:
            self._ready.clear()
        return item

    async def get(self, timeout: float | None = None) -> T:
        """The oldest item; waits at most ``timeout`` seconds (TimeoutError), forever when None."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._items:
            if self._closed:
                raise QueueClosed
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError
            await asyncio.wait_for(self._ready.wait(), remaining)
        return self.get_nowait()

    def close(self) -> None:
        self._closed = True
        self._ready.set()


class _Delivery:
    """Routes events to a callback (must not block; exceptions counted and logged sparsely) or a queue."""

    def __init__(self, on_event: EventSink | None, queue_size: int, stats: RealtimeStats) -> None:
        self.stats = stats
        self.on_event = on_event
        self.queue: DropOldestQueue[RealtimeEvent] | None = None
        if on_event is None:
            self.queue = DropOldestQueue(queue_size, on_drop=self._dropped)

    def _dropped(self) -> None:
        self.stats.dropped += 1
        if self.stats.dropped == 1 or self.stats.dropped % 10_000 == 0:
            logger.warning(
                "realtime queue full: oldest events dropped (consumer too slow)",
                extra={"dropped": self.stats.dropped, "queue_size": self.queue.maxsize if self.queue else 0},
            )

    def __call__(self, event: RealtimeEvent) -> None:
        if self.on_event is None:
            assert self.queue is not None
            self.queue.put_nowait(event)
            return
        try:
            self.on_event(event)
        except Exception:
            self.stats.callback_errors += 1
            if self.stats.callback_errors == 1 or self.stats.callback_errors % 1000 == 0:
                logger.exception(
                    "realtime event callback failed", extra={"callback_errors": self.stats.callback_errors}
                )

    def close(self) -> None:
        if self.queue is not None:
            self.queue.close()

    async def get(self, timeout: float | None) -> RealtimeEvent:
        if self.queue is None:
            raise RuntimeError("events are delivered to the callback; there is no queue to read")
        return await self.queue.get(timeout)


# --- one connection ------------------------------------------------------------------------------------------


class KisRealtimeConnection:
    """One KIS WebSocket connection bound to one approval key. Use ``async with`` or connect/close.

    Events go to ``on_event`` (synchronous, must not block) when given, otherwise to a drop-oldest queue of
    ``queue_size`` read with ``async for event in conn`` / :meth:`get`. Requests are serialized: one
    subscribe/unsubscribe is in flight at a time, so each ack is matched to its request.
    """

    def __init__(
        self,
        url: str,
        approval_key: str,
        *,
        custtype: str = "P",
        max_registrations: int = MAX_REGISTRATIONS,
        on_event: EventSink | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        stats: RealtimeStats | None = None,
        open_timeout: float = 10.0,
        ack_timeout: float = 5.0,
        send_timeout: float = 5.0,
        close_timeout: float = 2.0,
        on_close: Callable[[], None] | None = None,
        log_extra: dict[str, Any] | None = None,
    ) -> None:
        if max_registrations < 1:
            raise ValueError("max_registrations must be >= 1")
        self.url = url
        self._approval_key = approval_key
        self.custtype = custtype
        self.max_registrations = max_registrations
        self.stats = stats if stats is not None else RealtimeStats()
        self._delivery = _Delivery(on_event, queue_size, self.stats)
        self._open_timeout = open_timeout
        self._ack_timeout = ack_timeout
        self._send_timeout = send_timeout
        self._close_timeout = close_timeout
        self._on_close = on_close
        self._log = {"ws_url": url, **(log_extra or {})}
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._pending: tuple[Registration, bool, asyncio.Future[tuple[Ack, BrokerError | None]]] | None = None
        self._registered: set[Registration] = set()
        self._closed = asyncio.Event()
        self._finished = False
        self._close_reason = ""
        self._last_activity = time.monotonic()
        self._trade_date: dt.date | None = None
        self._encrypted_logged: set[str] = set()

    # --- lifecycle ---------------------------------------------------------------------------------------
    async def __aenter__(self) -> KisRealtimeConnection:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the socket (bounded by ``open_timeout``); :class:`RealtimeConnectionLost` when it cannot."""
        if self._ws is not None:
            raise RuntimeError("connection already opened")
        try:
            self._ws = await asyncio.wait_for(
                connect(
                    self.url,
                    open_timeout=self._open_timeout,
                    ping_interval=None,  # KIS keeps the connection alive with PINGPONG text frames
                    close_timeout=self._close_timeout,
                    proxy=None,
                ),
                self._open_timeout + 1.0,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            self._closed.set()
            self._close_reason = f"connect failed: {type(exc).__name__}: {exc}"
            raise RealtimeConnectionLost(
                f"cannot open {self.url}: {type(exc).__name__}: {exc}", kind="connect_failed"
            ) from exc
        self._last_activity = time.monotonic()
        self._reader = asyncio.create_task(self._read_loop(), name=f"kis-ws-reader {self.url}")

    async def close(self) -> None:
        """Close the socket (close handshake bounded by ``close_timeout``) and stop the reader. Idempotent."""
        if not self._close_reason:
            self._close_reason = "closed by client"
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), self._close_timeout + 1.0)
        if self._reader is not None and not self._reader.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), self._close_timeout + 1.0)
            except TimeoutError:
                self._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._reader
        self._finish()

    async def wait_closed(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._closed.wait(), timeout)

    @property
    def is_open(self) -> bool:
        return self._ws is not None and not self._closed.is_set()

    @property
    def close_reason(self) -> str:
        return self._close_reason

    @property
    def registrations(self) -> frozenset[Registration]:
        """Registrations the broker has acknowledged on this connection."""
        return frozenset(self._registered)

    @property
    def last_activity(self) -> float:
        """``time.monotonic()`` of the last data frame, PINGPONG or successful subscribe ack (stall clock)."""
        return self._last_activity

    # --- requests -----------------------------------------------------------------------------------------
    async def subscribe(self, tr_id: str, tr_key: str) -> Ack:
        """Register (tr_id, tr_key). Already registered (OPSP0002) counts as success.

        Raises :class:`SubscriptionLimitExceeded` (``kind="local_limit"``, nothing sent) when the cap is
        reached, and the typed error of an error ack (:func:`~.realtime.ack_error`), :class:`AckTimeout` or
        :class:`RealtimeConnectionLost`.
        """
        return await self._request(tr_id, tr_key, subscribe=True)

    async def unsubscribe(self, tr_id: str, tr_key: str) -> Ack:
        """Drop (tr_id, tr_key). Not registered (OPSP0003) counts as success: the wanted state holds."""
        return await self._request(tr_id, tr_key, subscribe=False)

    async def _request(self, tr_id: str, tr_key: str, *, subscribe: bool) -> Ack:
        pair = (tr_id, tr_key)
        async with self._lock:
            if not self.is_open or self._ws is None:
                raise RealtimeConnectionLost(f"connection is closed: {self._close_reason or 'not opened'}")
            if subscribe and pair not in self._registered and len(self._registered) >= self.max_registrations:
                raise SubscriptionLimitExceeded(
                    f"registration limit of {self.max_registrations} reached; {tr_id}/{tr_key} not sent",
                    kind="local_limit",
                )
            future: asyncio.Future[tuple[Ack, BrokerError | None]] = asyncio.get_running_loop().create_future()
            self._pending = (pair, subscribe, future)
            message = subscription_message(
                self._approval_key, tr_id, tr_key, subscribe=subscribe, custtype=self.custtype
            )
            try:
                await asyncio.wait_for(self._ws.send(message), self._send_timeout)
                ack, error = await asyncio.wait_for(future, self._ack_timeout)
            except TimeoutError as exc:
                raise AckTimeout(
                    f"no ack for {'subscribe' if subscribe else 'unsubscribe'} {tr_id}/{tr_key} "
                    f"within {self._ack_timeout:g}s",
                    kind="ack_timeout",
                ) from exc
            except ConnectionClosed as exc:
                raise RealtimeConnectionLost(f"connection closed while sending: {exc}", kind="closed") from exc
            finally:
                self._pending = None
        if error is not None:
            raise error
        return ack

    # --- async iteration (queue mode) -----------------------------------------------------------------------
    async def get(self, timeout: float | None = None) -> RealtimeEvent:
        """The next event (queue mode). :class:`QueueClosed` once the connection is closed and drained."""
        return await self._delivery.get(timeout)

    def __aiter__(self) -> AsyncIterator[RealtimeEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[RealtimeEvent]:
        while True:
            try:
                yield await self._delivery.get(None)
            except QueueClosed:
                return

    # --- reader ----------------------------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        """Read until the socket closes; always ends with the connection marked closed (:meth:`_finish`)."""
        ws = self._ws
        assert ws is not None
        reason = "closed by server"
        try:
            async for raw in ws:
                if isinstance(raw, bytes):
                    self.stats.protocol_errors += 1
                    logger.warning("realtime: unexpected binary frame ignored", extra={**self._log, "size": len(raw)})
                    continue
                if is_data_frame(raw):
                    self._on_data(raw)
                else:
                    await self._on_control(raw)
            if ws.close_code is not None:
                reason = f"closed by server: code {ws.close_code} {ws.close_reason or ''}".strip()
        except ConnectionClosed as exc:
            reason = f"connection lost: {exc}"
        except TimeoutError:
            reason = "PINGPONG answer timed out"
        except Exception as exc:  # the reader must always leave the connection in the closed state
            reason = f"reader failed: {type(exc).__name__}: {exc}"
            logger.exception("realtime reader failed", extra=self._log)
        finally:
            if not self._close_reason:
                self._close_reason = reason
            if ws.state is not State.CLOSED:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), self._close_timeout + 1.0)
            self._finish()

    def _finish(self) -> None:
        """Mark the connection closed (idempotent): fail the pending request, close the queue, notify."""
        if self._finished:
            return
        self._finished = True
        self._closed.set()
        self._registered.clear()
        if self._pending is not None and not self._pending[2].done():
            self._pending[2].set_exception(
                RealtimeConnectionLost(f"connection closed: {self._close_reason}", kind="closed")
            )
        self._delivery.close()
        if self._on_close is not None:
            self._on_close()

    def _on_data(self, text: str) -> None:
        now = time.monotonic()
        received_at = dt.datetime.now(KST)
        self._last_activity = now
        stats = self.stats
        stats.frames += 1
        stats.last_frame_at, stats.last_frame_monotonic = received_at, now
        try:
            events = parse_frame(text, received_at=received_at, book_date=self._trade_date)
        except EncryptedFrame as exc:
            stats.encrypted_skipped += 1
            tr_id = text.split("|", 2)[1] if text.count("|") >= 2 else "?"
            if tr_id not in self._encrypted_logged:
                self._encrypted_logged.add(tr_id)
                logger.warning(
                    "realtime: encrypted frames are not supported; skipping them",
                    extra={**self._log, "tr_id": tr_id, "error": str(exc)},
                )
            return
        except BrokerProtocolError as exc:
            stats.protocol_errors += 1
            logger.warning(
                "realtime: unparsable data frame skipped",
                extra={**self._log, "error": str(exc), "frame_head": text[:60]},
            )
            return
        tr_id = TR_TRADES if text.startswith(f"0|{TR_TRADES}|") else TR_BOOK
        for event in events:
            if (tr_id, event.code) not in self._registered:
                stats.ignored += 1
                continue
            if isinstance(event, Tick):
                stats.ticks += 1
                self._trade_date = event.at.date()
            else:
                stats.books += 1
            self._delivery(event)

    async def _on_control(self, text: str) -> None:
        try:
            frame = parse_control(text)
        except BrokerProtocolError as exc:
            self.stats.protocol_errors += 1
            logger.warning("realtime: unknown control frame ignored", extra={**self._log, "error": str(exc)})
            return
        if isinstance(frame, PingPong):
            await self._answer_ping(frame)
            return
        self._on_ack(frame)

    async def _answer_ping(self, ping: PingPong) -> None:
        """Echo the PINGPONG text as a text frame and as a pong control frame (either satisfies KIS)."""
        assert self._ws is not None
        self._last_activity = time.monotonic()
        self.stats.pingpongs += 1
        await asyncio.wait_for(self._ws.send(ping.raw), self._send_timeout)
        await asyncio.wait_for(self._ws.pong(ping.raw.encode()), self._send_timeout)

    def _on_ack(self, ack: Ack) -> None:
        pending = self._pending
        if pending is None or pending[2].done():
            logger.info(
                "realtime: unsolicited ack ignored",
                extra={**self._log, "tr_id": ack.tr_id, "tr_key": ack.tr_key, "msg_cd": ack.msg_cd, "msg1": ack.msg1},
            )
            return
        pair, subscribe, future = pending
        if ack.tr_id and (ack.tr_id, ack.tr_key) != pair:
            logger.info(
                "realtime: ack for another registration ignored (late ack of a timed-out request?)",
                extra={**self._log, "tr_id": ack.tr_id, "tr_key": ack.tr_key, "msg_cd": ack.msg_cd},
            )
            return
        error = ack_error(ack, subscribe=subscribe)
        if error is None:
            if subscribe:
                self._registered.add(pair)
                self._last_activity = time.monotonic()
            else:
                self._registered.discard(pair)
        future.set_result((ack, error))


# --- the session -----------------------------------------------------------------------------------------------


class KisRealtimeSession:
    """A long-running, self-healing real-time feed for one app key.

    The desired registrations (``(tr_id, code)`` pairs) change with :meth:`subscribe` / :meth:`unsubscribe`
    at any time, connected or not; they are capped locally at ``max_registrations`` (default 41, §6.8).

    :meth:`run` (or :meth:`start`, which runs it as a task) loops until :meth:`stop`:

    1. obtain an approval key when there is none, or when it is older than ``approval_key_max_age``
       (``approval_key`` is an injected ``async () -> str``, e.g. ``AsyncKisClient.approval_key``);
    2. connect and (re)register every desired pair (OPSP0002 counts as success); status ``connected``;
    3. supervise: a closed socket, an ack timeout, or silence (no data frame, no PINGPONG) for
       ``stall_timeout`` seconds while registrations exist (status ``stale``) ends the connection;
    4. wait ``backoff_delay(failures)`` (equal jitter, ``backoff_base`` doubling up to ``backoff_max``),
       status ``reconnecting``, and go to 1. ``failures`` resets once a connection stayed up for
       ``healthy_after`` seconds. An ack saying the approval key is unknown drops the key (step 1 fetches a
       new one); OPSP8996 (app key in use elsewhere) keeps it and backs off.

    Delivery: to ``on_event`` (synchronous, must not block) if given, otherwise to a drop-oldest queue of
    ``queue_size`` events read with :meth:`get` / :meth:`events`; evictions are counted in ``stats.dropped``.
    """

    def __init__(
        self,
        config: KisConfig,
        approval_key: ApprovalKeyProvider,
        *,
        on_event: EventSink | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_registrations: int = MAX_REGISTRATIONS,
        stall_timeout: float = 60.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        healthy_after: float = 30.0,
        open_timeout: float = 10.0,
        ack_timeout: float = 5.0,
        approval_timeout: float = 30.0,
        approval_key_max_age: float = 23 * 3600.0,
        path: str = DEFAULT_PATH,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if stall_timeout <= 0 or backoff_base <= 0 or backoff_max < backoff_base or max_registrations < 1:
            raise ValueError("stall_timeout > 0, 0 < backoff_base <= backoff_max and max_registrations >= 1 required")
        self.config = config
        self.url = endpoint(config.ws_url, path)
        self._provider = approval_key
        self.max_registrations = max_registrations
        self.stall_timeout = stall_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.healthy_after = healthy_after
        self._open_timeout = open_timeout
        self._ack_timeout = ack_timeout
        self._approval_timeout = approval_timeout
        self._approval_max_age = approval_key_max_age
        self._rng = rng
        self._stats = RealtimeStats()
        self._delivery = _Delivery(on_event, queue_size, self._stats)
        self._desired: set[Registration] = set()
        self._refused: dict[Registration, str] = {}
        self._approval: str | None = None
        self._approval_at = 0.0
        self._conn: KisRealtimeConnection | None = None
        self._ops = asyncio.Lock()
        self._status: SessionStatus = "stopped"
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._done = asyncio.Event()
        self._started = False
        self._task: asyncio.Task[None] | None = None
        self._log: dict[str, Any] = {"ws_url": self.url, "env": config.env, "key_id": config.key_id}

    # --- public state ----------------------------------------------------------------------------------------
    @property
    def status(self) -> SessionStatus:
        return self._status

    @property
    def stats(self) -> RealtimeStats:
        """A snapshot of the counters."""
        return self._stats.snapshot()

    @property
    def registrations(self) -> frozenset[Registration]:
        """The desired registrations (what the session restores after every reconnect)."""
        return frozenset(self._desired)

    @property
    def active_registrations(self) -> frozenset[Registration]:
        """Registrations acknowledged on the current connection (empty when disconnected)."""
        conn = self._conn
        return conn.registrations if conn is not None and conn.is_open else frozenset()

    @property
    def refused(self) -> dict[Registration, str]:
        """Registrations the broker refused during the last restore, with the broker's code."""
        return dict(self._refused)

    # --- subscriptions ----------------------------------------------------------------------------------------
    async def subscribe(self, code: str, tr_ids: Iterable[str] = (TR_TRADES, TR_BOOK)) -> None:
        """Add ``(tr_id, code)`` for each tr_id to the desired set; register them now when connected.

        Raises :class:`SubscriptionLimitExceeded` (``kind="local_limit"``) without changing anything when the
        set would exceed ``max_registrations``; raises the broker's refusal (and forgets the pair) for an error
        ack. Connection problems are absorbed: the pair stays desired and is registered on the next connection.
        """
        pairs = [(tr_id, code) for tr_id in tr_ids]
        new = [p for p in pairs if p not in self._desired]
        if len(self._desired) + len(new) > self.max_registrations:
            raise SubscriptionLimitExceeded(
                f"{len(self._desired)} registrations + {len(new)} new exceed the limit of {self.max_registrations}",
                kind="local_limit",
            )
        self._desired.update(pairs)
        for pair in pairs:
            await self._apply(pair, subscribe=True)

    async def unsubscribe(self, code: str, tr_ids: Iterable[str] = (TR_TRADES, TR_BOOK)) -> None:
        """Remove the pairs from the desired set and unregister them now when connected."""
        pairs = [(tr_id, code) for tr_id in tr_ids]
        self._desired.difference_update(pairs)
        for pair in pairs:
            self._refused.pop(pair, None)
            await self._apply(pair, subscribe=False)

    async def _apply(self, pair: Registration, *, subscribe: bool) -> None:
        async with self._ops:
            conn = self._conn
            if conn is None or not conn.is_open:
                return
            if subscribe and (pair not in self._desired or pair in conn.registrations):
                return
            if not subscribe and (pair in self._desired or pair not in conn.registrations):
                return
            try:
                if subscribe:
                    await conn.subscribe(*pair)
                else:
                    await conn.unsubscribe(*pair)
            except (SubscriptionRefused, SubscriptionLimitExceeded) as exc:
                if subscribe:
                    self._desired.discard(pair)
                logger.warning(
                    "realtime: broker refused a registration change",
                    extra={**self._log, "tr_id": pair[0], "tr_key": pair[1], "error_code": exc.code, "error": str(exc)},
                )
                raise
            except ApprovalKeyRejected as exc:
                self._drop_approval_key()
                await self._abandon(conn, f"approval key refused: {exc.code}")
            except (AckTimeout, RealtimeConnectionLost, ApprovalKeyInUse) as exc:
                await self._abandon(conn, f"{type(exc).__name__}: {exc}")

    async def _abandon(self, conn: KisRealtimeConnection, reason: str) -> None:
        logger.warning("realtime: closing the connection to recover", extra={**self._log, "reason": reason})
        await conn.close()
        self._wake.set()

    # --- consumption (queue mode) --------------------------------------------------------------------------
    async def get(self, timeout: float | None = None) -> RealtimeEvent:
        """The next event; TimeoutError after ``timeout``; :class:`QueueClosed` once stopped and drained."""
        return await self._delivery.get(timeout)

    async def events(self) -> AsyncIterator[RealtimeEvent]:
        """Every event until the session is stopped and the queue drained."""
        while True:
            try:
                yield await self._delivery.get(None)
            except QueueClosed:
                return

    # --- lifecycle --------------------------------------------------------------------------------------------
    async def __aenter__(self) -> KisRealtimeSession:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def start(self) -> asyncio.Task[None]:
        """Run :meth:`run` as a task of the current loop (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"kis-realtime {self.config.key_id}")
        return self._task

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the session is connected with every desired pair restored (TimeoutError otherwise)."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop, close the connection and the queue; waits at most ``timeout`` seconds."""
        self._stopping = True
        self._stop_event.set()
        self._wake.set()
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        elif self._task is None and self._started:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), timeout)

    async def run(self) -> None:
        """The connect / supervise / back-off loop; returns after :meth:`stop`."""
        if self._started:
            raise RuntimeError("a session runs once")
        self._started = True
        failures = 0
        ever_connected = False
        self._set_status("connecting")
        logger.info("realtime session started", extra={**self._log, "registrations": len(self._desired)})
        try:
            while not self._stopping:
                conn = await self._connect_once()
                if conn is not None:
                    if ever_connected:
                        self._stats.reconnects += 1
                    ever_connected = True
                    started = time.monotonic()
                    reason = await self._supervise(conn)
                    self._connected.clear()
                    await conn.close()
                    self._conn = None
                    if self._stopping:
                        break
                    if time.monotonic() - started >= self.healthy_after:
                        failures = 0
                    logger.warning(
                        "realtime disconnected",
                        extra={**self._log, "reason": reason, "connected_s": round(time.monotonic() - started, 1)},
                    )
                else:
                    self._stats.connect_failures += 1
                if self._stopping:
                    break
                failures += 1
                delay = backoff_delay(failures, base=self.backoff_base, cap=self.backoff_max, rng=self._rng)
                if self._status != "stale":
                    self._set_status("reconnecting")
                logger.info(
                    "realtime reconnect scheduled",
                    extra={**self._log, "attempt": failures, "delay_s": round(delay, 3)},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_event.wait(), delay)
                if not self._stopping:
                    self._set_status("reconnecting")
        finally:
            self._connected.clear()
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
            self._set_status("stopped")
            self._delivery.close()
            self._done.set()
            logger.info("realtime session stopped", extra={**self._log, **self._counters()})

    # --- internals --------------------------------------------------------------------------------------------
    def _set_status(self, status: SessionStatus) -> None:
        self._status = status

    def _counters(self) -> dict[str, Any]:
        s = self._stats
        return {"frames": s.frames, "ticks": s.ticks, "books": s.books, "reconnects": s.reconnects, "stalls": s.stalls}

    def _drop_approval_key(self) -> None:
        self._approval = None

    async def _approval_key(self) -> str:
        if self._approval is not None and time.monotonic() - self._approval_at < self._approval_max_age:
            return self._approval
        try:
            key = await asyncio.wait_for(self._provider(), self._approval_timeout)
        except TimeoutError as exc:
            raise BrokerTransientError(
                f"no approval key within {self._approval_timeout:g}s", kind="approval_timeout"
            ) from exc
        if not key:
            raise BrokerProtocolError("empty approval key", kind="approval_empty")
        self._approval, self._approval_at = key, time.monotonic()
        self._stats.approval_keys += 1
        logger.info("realtime approval key obtained", extra={**self._log, "approval_keys": self._stats.approval_keys})
        return key

    async def _connect_once(self) -> KisRealtimeConnection | None:
        """Approval key, socket, restore; the connection when all went well, None (logged) otherwise."""
        conn: KisRealtimeConnection | None = None
        try:
            key = await self._approval_key()
            conn = KisRealtimeConnection(
                self.url,
                key,
                custtype=self.config.custtype,
                max_registrations=self.max_registrations,
                on_event=self._delivery,
                stats=self._stats,
                open_timeout=self._open_timeout,
                ack_timeout=self._ack_timeout,
                on_close=self._wake.set,
                log_extra={"env": self.config.env, "key_id": self.config.key_id},
            )
            await conn.connect()
            self._conn = conn
            restored = await self._restore(conn)
        except ApprovalKeyRejected as exc:
            self._drop_approval_key()
            logger.warning(
                "realtime approval key refused; a new one will be obtained",
                extra={**self._log, "error_code": exc.code, "error": str(exc)},
            )
        except ApprovalKeyInUse as exc:
            logger.error(
                "realtime refused: this app key's WebSocket is in use by another session (stop the other one)",
                extra={**self._log, "error_code": exc.code},
            )
        except BrokerError as exc:
            logger.warning("realtime connect failed", extra={**self._log, "error_code": exc.code, "error": str(exc)})
        except Exception as exc:
            logger.exception("realtime connect failed unexpectedly", extra={**self._log, "error": repr(exc)})
        else:
            self._set_status("connected")
            self._connected.set()
            logger.info(
                "realtime connected",
                extra={**self._log, "registrations": restored, "refused": len(self._refused)},
            )
            return conn
        if conn is not None:
            await conn.close()
        self._conn = None
        return None

    async def _restore(self, conn: KisRealtimeConnection) -> int:
        """Register every desired pair on ``conn``; returns how many are registered.

        Per-pair refusals are recorded in :attr:`refused` and skipped; a broker-side limit stops the restore
        (the rest would be refused too); key and connection errors propagate (the attempt failed).
        """
        self._refused.clear()
        for pair in sorted(self._desired):
            async with self._ops:
                if pair not in self._desired or pair in conn.registrations:
                    continue
                try:
                    await conn.subscribe(*pair)
                except SubscriptionRefused as exc:
                    self._refused[pair] = exc.code
                    logger.error(
                        "realtime registration refused by the broker",
                        extra={**self._log, "tr_id": pair[0], "tr_key": pair[1], "error_code": exc.code},
                    )
                except SubscriptionLimitExceeded as exc:
                    self._refused[pair] = exc.code
                    logger.error(
                        "realtime registration limit reached at the broker; remaining pairs not registered",
                        extra={**self._log, "registered": len(conn.registrations), "desired": len(self._desired)},
                    )
                    break
        return len(conn.registrations)

    async def _supervise(self, conn: KisRealtimeConnection) -> str:
        """Wait until the connection must end; returns why (closed, stalled, stopped)."""
        step = max(0.05, min(1.0, self.stall_timeout / 4))
        while True:
            if self._stopping:
                return "stopped"
            if not conn.is_open:
                return conn.close_reason or "closed"
            silent = time.monotonic() - conn.last_activity
            if conn.registrations and silent > self.stall_timeout:
                self._stats.stalls += 1
                self._set_status("stale")
                logger.warning(
                    "realtime stalled: no data and no PINGPONG; reconnecting",
                    extra={**self._log, "silent_s": round(silent, 1), "stall_timeout_s": self.stall_timeout},
                )
                return f"stalled for {silent:.1f}s"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), step)
            self._wake.clear()


__all__ = [
    "DEFAULT_PATH",
    "AckTimeout",
    "ApprovalKeyInUse",
    "ApprovalKeyProvider",
    "ApprovalKeyRejected",
    "DropOldestQueue",
    "EventSink",
    "KisRealtimeConnection",
    "KisRealtimeSession",
    "OrderBook",
    "QueueClosed",
    "RealtimeConnectionLost",
    "RealtimeEvent",
    "RealtimeStats",
    "SessionStatus",
    "SubscriptionLimitExceeded",
    "SubscriptionRefused",
    "Tick",
    "endpoint",
]
