"""What every broker's real-time WebSocket shares: one connection's life, and the self-healing session around it.

:class:`Connection` is one WebSocket (``websockets`` asyncio client): bounded open and close, a reader task that
hands every text frame to the broker's :meth:`Connection._on_text` and always leaves the connection closed, and
delivery of parsed events through :class:`Delivery`. It never reconnects.

:class:`Session` is the long-running loop around connections: :meth:`Session.run` connects (the broker's
:meth:`Session._connect_once`: credentials, socket, login, restoring every desired subscription), supervises
(a closed socket, or silence for ``stall_timeout`` while something is subscribed: status ``stale``), backs off
with jitter (``backoff_base`` doubling up to ``backoff_max``; reset after ``healthy_after`` s connected) and
starts again until :meth:`Session.stop`.

Invariants:

- every wait is bounded (open, send, close, back-off; the stall check bounds silence);
- neither class ever blocks on the consumer: events go to a synchronous callback (which must not block) or,
  without a callback, to a bounded :class:`DropOldestQueue` that evicts the OLDEST event when full and counts
  each eviction in ``stats.dropped``;
- credentials are never logged (logs carry the app key's ``key_id`` only).
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
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.protocol import State

from .base import BrokerBusinessError, BrokerTransientError
from .config import BrokerConfig
from .rest import backoff_delay

logger = logging.getLogger(__name__)

T = TypeVar("T")
E = TypeVar("E")

SessionStatus = Literal["connecting", "connected", "reconnecting", "stale", "stopped"]
DEFAULT_QUEUE_SIZE = 10_000


class RealtimeConnectionLost(BrokerTransientError):
    """The WebSocket closed (or could not be opened) while a request was outstanding."""


class AckTimeout(BrokerTransientError):
    """No answer to a request (subscribe, unsubscribe, login ...) within its timeout."""


class SubscriptionRefused(BrokerBusinessError):
    """The broker refused a registration (or another request) with an error answer."""


class SubscriptionLimitExceeded(BrokerBusinessError):
    """More registrations than allowed: ``kind="local_limit"`` when refused here before sending, or the
    broker's own limit (KIS ``OPSP0008`` MAX SUBSCRIBE OVER)."""


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


class Delivery(Generic[E]):
    """Routes events to a callback (must not block; exceptions counted and logged sparsely) or a queue."""

    def __init__(self, on_event: Callable[[E], None] | None, queue_size: int, stats: RealtimeStats) -> None:
        self.stats = stats
        self.on_event = on_event
        self.queue: DropOldestQueue[E] | None = None
        if on_event is None:
            self.queue = DropOldestQueue(queue_size, on_drop=self._dropped)

    def _dropped(self) -> None:
        self.stats.dropped += 1
        if self.stats.dropped == 1 or self.stats.dropped % 10_000 == 0:
            logger.warning(
                "realtime queue full: oldest events dropped (consumer too slow)",
                extra={"dropped": self.stats.dropped, "queue_size": self.queue.maxsize if self.queue else 0},
            )

    def __call__(self, event: E) -> None:
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

    async def get(self, timeout: float | None) -> E:
        if self.queue is None:
            raise RuntimeError("events are delivered to the callback; there is no queue to read")
        return await self.queue.get(timeout)

    async def drain(self) -> AsyncIterator[E]:
        """Every event until the queue is closed and empty."""
        while True:
            try:
                yield await self.get(None)
            except QueueClosed:
                return


# --- one connection ------------------------------------------------------------------------------------------


class Connection(Generic[E]):
    """One WebSocket. ``async with`` or connect/close. The broker's subclass handles every text frame.

    Events go to ``on_event`` (synchronous, must not block) when given, otherwise to a drop-oldest queue of
    ``queue_size`` read with ``async for event in conn`` / :meth:`get`.
    """

    #: The reader task's name prefix; the receive limit (None: the ``websockets`` default of 1 MiB).
    name: ClassVar[str] = "ws"
    max_size: ClassVar[int | None] = None
    #: Why a reader ends on a timeout (a keep-alive answer that could not be sent in time).
    ping_timeout_reason: ClassVar[str] = "PING answer timed out"
    #: Whether every received frame (not only data and keep-alive frames) resets the stall clock.
    any_frame_is_activity: ClassVar[bool] = False

    def __init__(
        self,
        url: str,
        *,
        on_event: Callable[[E], None] | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        stats: RealtimeStats | None = None,
        open_timeout: float = 10.0,
        send_timeout: float = 5.0,
        close_timeout: float = 2.0,
        on_close: Callable[[], None] | None = None,
        log_extra: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.stats = stats if stats is not None else RealtimeStats()
        self._delivery: Delivery[E] = Delivery(on_event, queue_size, self.stats)
        self._open_timeout = open_timeout
        self._send_timeout = send_timeout
        self._close_timeout = close_timeout
        self._on_close = on_close
        self._log: dict[str, Any] = {"ws_url": url, **(log_extra or {})}
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = asyncio.Event()
        self._finished = False
        self._close_reason = ""
        self._last_activity = time.monotonic()

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the socket (bounded by ``open_timeout``); :class:`RealtimeConnectionLost` when it cannot."""
        if self._ws is not None:
            raise RuntimeError("connection already opened")
        options: dict[str, Any] = {} if self.max_size is None else {"max_size": self.max_size}
        try:
            self._ws = await asyncio.wait_for(
                connect(
                    self.url,
                    open_timeout=self._open_timeout,
                    ping_interval=None,  # brokers keep the connection alive with their own PING text frames
                    close_timeout=self._close_timeout,
                    proxy=None,
                    **options,
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
        self._reader = asyncio.create_task(self._read_loop(), name=f"{self.name}-ws-reader {self.url}")

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
    def last_activity(self) -> float:
        """``time.monotonic()`` of the last sign of life (the stall clock)."""
        return self._last_activity

    # --- consumption (queue mode) ----------------------------------------------------------------------------
    async def get(self, timeout: float | None = None) -> E:
        """The next event (queue mode). :class:`QueueClosed` once the connection is closed and drained."""
        return await self._delivery.get(timeout)

    def __aiter__(self) -> AsyncIterator[E]:
        return self._delivery.drain()

    # --- reader ----------------------------------------------------------------------------------------------
    async def _on_text(self, text: str) -> bool:
        """Handle one text frame; False ends the connection."""
        raise NotImplementedError

    def _on_finish(self) -> None:
        """The broker's part of :meth:`_finish`: forget what was registered, fail a pending request."""

    async def _read_loop(self) -> None:
        """Read until the socket closes; always ends with the connection marked closed (:meth:`_finish`)."""
        ws = self._ws
        assert ws is not None
        reason = "closed by server"
        try:
            async for raw in ws:
                if self.any_frame_is_activity:
                    self._last_activity = time.monotonic()
                if isinstance(raw, bytes):
                    self.stats.protocol_errors += 1
                    logger.warning("realtime: unexpected binary frame ignored", extra={**self._log, "size": len(raw)})
                    continue
                if not await self._on_text(raw):
                    break
            if ws.close_code is not None:
                reason = f"closed by server: code {ws.close_code} {ws.close_reason or ''}".strip()
        except ConnectionClosed as exc:
            reason = f"connection lost: {exc}"
        except TimeoutError:
            reason = self.ping_timeout_reason
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
        """Mark the connection closed (idempotent): the broker's cleanup, close the queue, notify."""
        if self._finished:
            return
        self._finished = True
        self._closed.set()
        self._on_finish()
        self._delivery.close()
        if self._on_close is not None:
            self._on_close()


# --- the session -----------------------------------------------------------------------------------------------

C = TypeVar("C", bound=Connection[Any])
Cfg = TypeVar("Cfg", bound=BrokerConfig)


class Session(Generic[Cfg, C, E]):
    """A long-running, self-healing real-time feed for one app key (see the module docstring).

    The broker's subclass implements :meth:`_connect_once` (returns a connected, restored connection or None,
    logged), :meth:`_subscribed` (whether ``conn`` carries anything whose silence is a stall) and
    :meth:`_counts` (log fields); its subscription methods use :attr:`_ops` and :meth:`_abandon`.
    """

    name: ClassVar[str] = "realtime"
    stall_message: ClassVar[str] = "realtime stalled: no frame and no PING; reconnecting"

    def __init__(
        self,
        config: Cfg,
        url: str,
        *,
        on_event: Callable[[E], None] | None,
        queue_size: int,
        stall_timeout: float,
        backoff_base: float,
        backoff_max: float,
        healthy_after: float,
        open_timeout: float,
        rng: Callable[[], float] = random.random,
        log_extra: dict[str, Any] | None = None,
    ) -> None:
        if stall_timeout <= 0 or backoff_base <= 0 or backoff_max < backoff_base:
            raise ValueError("stall_timeout > 0 and 0 < backoff_base <= backoff_max are required")
        self.config = config
        self.url = url
        self.stall_timeout = stall_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.healthy_after = healthy_after
        self._open_timeout = open_timeout
        self._rng = rng
        self._stats = RealtimeStats()
        self._delivery: Delivery[E] = Delivery(on_event, queue_size, self._stats)
        self._conn: C | None = None
        self._ops = asyncio.Lock()
        self._status: SessionStatus = "stopped"
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._done = asyncio.Event()
        self._started = False
        self._task: asyncio.Task[None] | None = None
        self._log: dict[str, Any] = {**(log_extra or {}), "ws_url": url, "env": config.env, "key_id": config.key_id}

    # --- public state ----------------------------------------------------------------------------------------
    @property
    def status(self) -> SessionStatus:
        return self._status

    @property
    def stats(self) -> RealtimeStats:
        """A snapshot of the counters."""
        return self._stats.snapshot()

    # --- consumption (queue mode) ----------------------------------------------------------------------------
    async def get(self, timeout: float | None = None) -> E:
        """The next event; TimeoutError after ``timeout``; :class:`QueueClosed` once stopped and drained."""
        return await self._delivery.get(timeout)

    def events(self) -> AsyncIterator[E]:
        """Every event until the session is stopped and the queue drained."""
        return self._delivery.drain()

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def start(self) -> asyncio.Task[None]:
        """Run :meth:`run` as a task of the current loop (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"{self.name} {self.config.key_id}")
        return self._task

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the session is connected with every desired subscription restored (TimeoutError otherwise)."""
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
        logger.info("realtime session started", extra={**self._log, **self._counts()})
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
            s = self._stats
            logger.info(
                "realtime session stopped",
                extra={
                    **self._log,
                    "frames": s.frames,
                    "ticks": s.ticks,
                    "books": s.books,
                    "reconnects": s.reconnects,
                    "stalls": s.stalls,
                },
            )

    # --- the broker's part -----------------------------------------------------------------------------------
    async def _connect_once(self) -> C | None:
        raise NotImplementedError

    def _subscribed(self, conn: C) -> bool:
        raise NotImplementedError

    def _counts(self) -> dict[str, Any]:
        return {}

    # --- shared internals ------------------------------------------------------------------------------------
    def _set_status(self, status: SessionStatus) -> None:
        self._status = status

    def _connected_now(self, conn: C, **fields: Any) -> C:
        """Mark ``conn`` as the session's connected connection (logged with ``fields``)."""
        self._set_status("connected")
        self._connected.set()
        logger.info("realtime connected", extra={**self._log, **fields})
        return conn

    async def _abandon(self, conn: C, reason: str) -> None:
        logger.warning("realtime: closing the connection to recover", extra={**self._log, "reason": reason})
        await conn.close()
        self._wake.set()

    async def _supervise(self, conn: C) -> str:
        """Wait until the connection must end; returns why (closed, stalled, stopped)."""
        step = max(0.05, min(1.0, self.stall_timeout / 4))
        while True:
            if self._stopping:
                return "stopped"
            if not conn.is_open:
                return conn.close_reason or "closed"
            silent = time.monotonic() - conn.last_activity
            if self._subscribed(conn) and silent > self.stall_timeout:
                self._stats.stalls += 1
                self._set_status("stale")
                logger.warning(
                    self.stall_message,
                    extra={**self._log, "silent_s": round(silent, 1), "stall_timeout_s": self.stall_timeout},
                )
                return f"stalled for {silent:.1f}s"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), step)
            self._wake.clear()
