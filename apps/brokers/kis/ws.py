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
import datetime as dt
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed

from ..base import KST, BrokerError, BrokerProtocolError, BrokerTransientError, OrderBook, Tick
from ..websocket import (
    DEFAULT_QUEUE_SIZE,
    AckTimeout,
    Connection,
    RealtimeConnectionLost,
    RealtimeStats,
    Session,
    SubscriptionLimitExceeded,
    SubscriptionRefused,
)
from .config import KisConfig
from .realtime import (
    MAX_REGISTRATIONS,
    TR_BOOK,
    TR_TRADES,
    Ack,
    ApprovalKeyInUse,
    ApprovalKeyRejected,
    EncryptedFrame,
    PingPong,
    RealtimeEvent,
    Registration,
    ack_error,
    is_data_frame,
    parse_control,
    parse_frame,
    subscription_message,
)

logger = logging.getLogger(__name__)

#: A synchronous, non-blocking consumer of parsed events.
EventSink = Callable[[RealtimeEvent], None]
#: ``await provider()`` → a fresh approval key (e.g. ``AsyncKisClient.approval_key``).
ApprovalKeyProvider = Callable[[], Awaitable[str]]

DEFAULT_PATH = "/tryitout"


def endpoint(ws_url: str, path: str = DEFAULT_PATH) -> str:
    """``ws_url`` plus ``path`` when the URL has no path of its own (KIS accepts any path; samples use /tryitout)."""
    if urlsplit(ws_url).path in ("", "/"):
        return ws_url.rstrip("/") + path
    return ws_url


# --- one connection ------------------------------------------------------------------------------------------


class KisRealtimeConnection(Connection[RealtimeEvent]):
    """One KIS WebSocket connection bound to one approval key. Use ``async with`` or connect/close.

    Events go to ``on_event`` (synchronous, must not block) when given, otherwise to a drop-oldest queue of
    ``queue_size`` read with ``async for event in conn`` / :meth:`get`. Requests are serialized: one
    subscribe/unsubscribe is in flight at a time, so each ack is matched to its request.
    """

    name = "kis"
    ping_timeout_reason = "PINGPONG answer timed out"

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
        super().__init__(
            url,
            on_event=on_event,
            queue_size=queue_size,
            stats=stats,
            open_timeout=open_timeout,
            send_timeout=send_timeout,
            close_timeout=close_timeout,
            on_close=on_close,
            log_extra=log_extra,
        )
        self._approval_key = approval_key
        self.custtype = custtype
        self.max_registrations = max_registrations
        self._ack_timeout = ack_timeout
        self._pending: tuple[Registration, bool, asyncio.Future[tuple[Ack, BrokerError | None]]] | None = None
        self._registered: set[Registration] = set()
        self._trade_date: dt.date | None = None
        self._encrypted_logged: set[str] = set()

    @property
    def registrations(self) -> frozenset[Registration]:
        """Registrations the broker has acknowledged on this connection."""
        return frozenset(self._registered)

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
    # --- reader ----------------------------------------------------------------------------------------------
    async def _on_text(self, text: str) -> bool:
        if is_data_frame(text):
            self._on_data(text)
        else:
            await self._on_control(text)
        return True

    def _on_finish(self) -> None:
        """Forget the registrations and fail the pending request."""
        self._registered.clear()
        if self._pending is not None and not self._pending[2].done():
            self._pending[2].set_exception(
                RealtimeConnectionLost(f"connection closed: {self._close_reason}", kind="closed")
            )

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
        tr_id = text.split("|", 2)[1]
        for event in events:
            if (tr_id, event.code) not in self._registered:
                stats.ignored += 1
                continue
            if isinstance(event, Tick):
                stats.ticks += 1
                self._trade_date = event.at.date()
            elif isinstance(event, OrderBook):
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


class KisRealtimeSession(Session[KisConfig, KisRealtimeConnection, RealtimeEvent]):
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

    name = "kis-realtime"
    stall_message = "realtime stalled: no data and no PINGPONG; reconnecting"

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
        super().__init__(
            config,
            endpoint(config.ws_url, path),
            on_event=on_event,
            queue_size=queue_size,
            stall_timeout=stall_timeout,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            healthy_after=healthy_after,
            open_timeout=open_timeout,
            rng=rng,
        )
        self._provider = approval_key
        self.max_registrations = max_registrations
        self._ack_timeout = ack_timeout
        self._approval_timeout = approval_timeout
        self._approval_max_age = approval_key_max_age
        self._desired: set[Registration] = set()
        self._refused: dict[Registration, str] = {}
        self._approval: str | None = None
        self._approval_at = 0.0

    # --- public state ----------------------------------------------------------------------------------------
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

    # --- the session's part ---------------------------------------------------------------------------------
    def _counts(self) -> dict[str, Any]:
        return {"registrations": len(self._desired)}

    def _subscribed(self, conn: KisRealtimeConnection) -> bool:
        return bool(conn.registrations)

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
            return self._connected_now(conn, registrations=restored, refused=len(self._refused))
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


__all__ = [
    "DEFAULT_PATH",
    "ApprovalKeyProvider",
    "EventSink",
    "KisRealtimeConnection",
    "KisRealtimeSession",
    "endpoint",
]
