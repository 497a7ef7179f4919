"""The Kiwoom real-time WebSocket (kiwoom-api.md §A6, §A7): one connection, and a self-healing session.

:class:`KiwoomConnection` is one WebSocket (``websockets`` asyncio client): it sends ``LOGIN`` with the access
token, echoes every ``PING`` frame unchanged, sends requests one at a time (``REG``, ``REMOVE``, ``CNSRLST``,
``CNSRREQ``, ``CNSRCLR``) and matches each answer by ``trnm``, parses ``REAL`` pushes (:mod:`.parsing`) into
Tick / OrderBook / ConditionAlert for a non-blocking sink, and ends on a ``SYSTEM`` frame (R10002 no PING
answer, R10004 no LOGIN). It never reconnects.

:class:`KiwoomRealtimeSession` is the long-running loop with the public surface the feed holder uses on
``KisRealtimeSession`` (``subscribe`` / ``unsubscribe`` / ``registrations`` / ``active_registrations`` /
``status`` / ``stats`` / ``start`` / ``stop``), plus real-time condition subscriptions: after every LOGIN it
sends ``CNSRLST`` (required before any ``CNSRREQ``, §A7) and ``CNSRREQ`` ``search_type`` 1 again for every
subscribed seq; unsubscribing sends ``CNSRCLR``.

Invariants:

- every wait is bounded (open, LOGIN, request, send, close, token, back-off; the stall check bounds silence);
- events go to a synchronous callback that must not block, or to a bounded drop-oldest queue;
- only events of codes registered (and conditions requested) on the current connection are delivered;
- the access token is never logged (logs carry the app key's ``key_id``);
- the stock limit per connection (UNCONFIRMED at Kiwoom, a setting) is checked before anything is sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from websockets.exceptions import ConnectionClosed

from ..base import (
    KST,
    BrokerAuthError,
    BrokerError,
    BrokerProtocolError,
    BrokerTransientError,
    ConditionAlert,
    ConditionInfo,
    OrderBook,
    Tick,
)
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
from . import parsing
from .config import KiwoomConfig

logger = logging.getLogger(__name__)

#: ``await token(rejected)`` → an access token; ``rejected`` is a token the server refused (None = any valid one).
TokenProvider = Callable[[str | None], Awaitable[str]]
EventSink = Callable[[Any], None]
RealtimeEvent = Tick | OrderBook | ConditionAlert

DEFAULT_TYPES: tuple[str, ...] = (parsing.REAL_TRADE, parsing.REAL_BOOK)
#: Codes per REG message when restoring (the per-message limit is not documented; REG of §A6 shows lists).
REG_CHUNK = 50
#: LOGIN answers that mean "this token is not (or no longer) valid": get another (§A5 token codes).
TOKEN_CODES = frozenset({"8005", "8031", "8103", "8003", "8006", "8009"})


class LoginRefused(BrokerAuthError):
    """LOGIN answered with a non-zero ``return_code`` (``msg_cd`` = the ``CODE=NNNN`` of the message)."""


class SystemClosed(BrokerTransientError):
    """The server sent a ``SYSTEM`` frame (``msg_cd`` = its code, e.g. R10002) and closes the connection."""


class RequestRefused(SubscriptionRefused):
    """A REG / REMOVE / CNSR* request answered with a non-zero ``return_code``."""


def _dumps(message: Mapping[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def reg_message(codes: Iterable[str], types: Iterable[str], *, grp_no: str = "1", refresh: bool = True) -> str:
    """``REG`` (§A6): ``refresh`` "1" keeps earlier registrations of the group, "0" replaces them."""
    return _dumps({"trnm": "REG", "grp_no": grp_no, "refresh": "1" if refresh else "0",
                   "data": [{"item": list(codes), "type": list(types)}]})  # fmt: skip


def remove_message(codes: Iterable[str], types: Iterable[str], *, grp_no: str = "1") -> str:
    return _dumps({"trnm": "REMOVE", "grp_no": grp_no, "data": [{"item": list(codes), "type": list(types)}]})


def condition_request(
    seq: str, *, search_type: str, exchange: str = "K", cont_yn: str = "N", next_key: str = ""
) -> str:
    """``CNSRREQ`` (§A7): ``search_type`` 0 = search only (paged by body cont_yn/next_key), 1 = search + real-time."""
    message: dict[str, Any] = {"trnm": "CNSRREQ", "seq": seq, "search_type": search_type, "stex_tp": exchange}
    if search_type == "0":
        message.update({"cont_yn": cont_yn, "next_key": next_key})
    return _dumps(message)


# --- one connection ----------------------------------------------------------------------------------------


class KiwoomConnection(Connection[RealtimeEvent]):
    """One Kiwoom WebSocket. ``async with`` or connect/close. Requests are serialized (one answer at a time)."""

    name = "kiwoom"
    max_size = 2**22
    any_frame_is_activity = True

    def __init__(
        self,
        url: str,
        *,
        on_event: EventSink | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        stats: RealtimeStats | None = None,
        open_timeout: float = 10.0,
        request_timeout: float = 10.0,
        send_timeout: float = 5.0,
        close_timeout: float = 2.0,
        on_close: Callable[[], None] | None = None,
        log_extra: dict[str, Any] | None = None,
        trading_date: Callable[[], dt.date | None] | None = None,
    ) -> None:
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
        #: The market clock's trading date for the HHMMSS times of REAL frames (None: the reception date).
        self._trading_date = trading_date
        self._request_timeout = request_timeout
        self._pending: tuple[str, asyncio.Future[dict[str, Any]]] | None = None
        self.logged_in = False
        self.conditions_listed = False
        #: Codes registered (acknowledged) on this connection, and real-time condition seqs requested here.
        self.codes: set[str] = set()
        self.condition_seqs: set[str] = set()
        #: Initial member list of each real-time condition request (seq → codes), as answered by CNSRREQ.
        self.condition_members: dict[str, list[str]] = {}
        #: The CNSRLST answer of this connection.
        self.condition_infos: list[ConditionInfo] = []

    # --- requests ------------------------------------------------------------------------------------------

    async def request(self, text: str, trnm: str, *, timeout: float | None = None) -> dict[str, Any]:
        """Send ``text`` and wait for the next message whose ``trnm`` is ``trnm``; :class:`RequestRefused` when its
        ``return_code`` is not 0, :class:`AckTimeout` or :class:`RealtimeConnectionLost` otherwise."""
        async with self._lock:
            if not self.is_open or self._ws is None:
                raise RealtimeConnectionLost(f"connection is closed: {self._close_reason or 'not opened'}")
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending = (trnm, future)
            try:
                await asyncio.wait_for(self._ws.send(text), self._send_timeout)
                answer = await asyncio.wait_for(future, timeout or self._request_timeout)
            except TimeoutError as exc:
                raise AckTimeout(f"no {trnm} answer within {timeout or self._request_timeout:g}s",
                                 kind="ack_timeout") from exc  # fmt: skip
            except ConnectionClosed as exc:
                raise RealtimeConnectionLost(f"connection closed while sending: {exc}", kind="closed") from exc
            finally:
                self._pending = None
        code = parsing.return_code(answer)
        if code != 0:
            message = str(answer.get("return_msg") or "")
            specific = parsing.error_code(message) or str(code)
            raise RequestRefused(f"{trnm} refused: {specific} {message}".strip(), msg_cd=specific, msg1=message)
        return answer

    async def login(self, token: str) -> None:
        """``LOGIN`` (§A6 step 1–2). :class:`LoginRefused` with the ``CODE=NNNN`` of a refusal."""
        try:
            await self.request(_dumps({"trnm": "LOGIN", "token": token}), "LOGIN")
        except RequestRefused as exc:
            raise LoginRefused(f"LOGIN refused: {exc.msg_cd} {exc.msg1}".strip(), msg_cd=exc.msg_cd,
                               msg1=exc.msg1) from None  # fmt: skip
        self.logged_in = True

    async def register(self, codes: list[str], types: Iterable[str] = DEFAULT_TYPES, *, grp_no: str = "1") -> None:
        types = list(types)
        await self.request(reg_message(codes, types, grp_no=grp_no, refresh=True), "REG")
        self.codes.update(codes)
        self._last_activity = time.monotonic()

    async def remove(self, codes: list[str], types: Iterable[str] = DEFAULT_TYPES, *, grp_no: str = "1") -> None:
        await self.request(remove_message(codes, list(types), grp_no=grp_no), "REMOVE")
        self.codes.difference_update(codes)

    async def condition_list(self) -> list[ConditionInfo]:
        answer = await self.request(_dumps({"trnm": "CNSRLST"}), "CNSRLST")
        self.conditions_listed = True
        self.condition_infos = parsing.parse_condition_list(answer)
        return list(self.condition_infos)

    async def condition_subscribe(self, seq: str, *, exchange: str = "K") -> list[str]:
        """CNSRREQ search_type 1: the initial member codes; REAL 02 pushes follow."""
        if not self.conditions_listed:
            await self.condition_list()
        answer = await self.request(condition_request(seq, search_type="1", exchange=exchange), "CNSRREQ")
        members = parsing.parse_condition_codes(answer)
        self.condition_seqs.add(seq)
        self.condition_members[seq] = members
        return members

    async def condition_clear(self, seq: str) -> None:
        self.condition_seqs.discard(seq)
        self.condition_members.pop(seq, None)
        await self.request(_dumps({"trnm": "CNSRCLR", "seq": seq}), "CNSRCLR")

    # --- queue mode ------------------------------------------------------------------------------------------

    # --- reader ------------------------------------------------------------------------------------------------

    async def _on_text(self, text: str) -> bool:
        """Handle one frame; False ends the connection (SYSTEM)."""
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self.stats.protocol_errors += 1
            logger.warning("realtime: non-JSON frame ignored", extra={**self._log, "frame_head": text[:60]})
            return True
        trnm = str(message.get("trnm") or "")
        if trnm == "REAL":
            self._on_real(message)
        elif trnm == "PING":
            # Echo the frame unchanged (§A6 step 3): extra keys are undocumented, so the text is sent back as is.
            assert self._ws is not None
            self.stats.pingpongs += 1
            await asyncio.wait_for(self._ws.send(text), self._send_timeout)
        elif trnm == "SYSTEM":
            code = str(message.get("code") or "")
            self._close_reason = f"SYSTEM {code}: {str(message.get('message') or '')[:120]}".strip()
            logger.warning("realtime: server ends the connection", extra={**self._log, "code": code,
                           "system_message": str(message.get("message") or "")[:200]})  # fmt: skip
            self._fail_pending(SystemClosed(self._close_reason, msg_cd=code))
            return False
        else:
            pending = self._pending
            if pending is not None and pending[0] == trnm and not pending[1].done():
                pending[1].set_result(message)
            else:
                logger.info("realtime: unsolicited answer ignored", extra={**self._log, "trnm": trnm,
                            "return_code": message.get("return_code")})  # fmt: skip
        return True

    def _on_real(self, message: dict[str, Any]) -> None:
        now = time.monotonic()
        received_at = dt.datetime.now(KST)
        stats = self.stats
        stats.frames += 1
        stats.last_frame_at, stats.last_frame_monotonic = received_at, now
        trade_date = self._trading_date() if self._trading_date is not None else None
        events, errors = parsing.parse_real(message, received_at=received_at, trade_date=trade_date)
        for error in errors:
            stats.protocol_errors += 1
            logger.warning("realtime: unparsable REAL entry skipped", extra={**self._log, "error": error[:200]})
        for event in events:
            if isinstance(event, ConditionAlert):
                if event.seq not in self.condition_seqs:
                    stats.ignored += 1
                    continue
            elif event.code not in self.codes:
                stats.ignored += 1
                continue
            elif isinstance(event, Tick):
                stats.ticks += 1
            else:
                stats.books += 1
            self._delivery(event)

    def _fail_pending(self, error: BrokerError) -> None:
        if self._pending is not None and not self._pending[1].done():
            self._pending[1].set_exception(error)

    def _on_finish(self) -> None:
        self.codes.clear()
        self.condition_seqs.clear()
        self._fail_pending(RealtimeConnectionLost(f"connection closed: {self._close_reason}", kind="closed"))


# --- the session -------------------------------------------------------------------------------------------


class KiwoomRealtimeSession(Session[KiwoomConfig, KiwoomConnection, RealtimeEvent]):
    """A long-running, self-healing Kiwoom real-time feed for one app key.

    :meth:`run` loops until :meth:`stop`: token → connect → LOGIN → REG every desired code (in chunks) →
    CNSRLST + CNSRREQ ``search_type`` 1 for every desired condition seq (status ``connected``) → supervise
    (closed socket, SYSTEM frame, or silence — not even a PING — for ``stall_timeout`` s) → back-off with
    jitter (``backoff_base`` doubling up to ``backoff_max``; reset after ``healthy_after`` s connected) → again.
    A LOGIN refused with a token code (8005 …) asks the provider for another token.

    ``registrations`` are ``(real type, code)`` pairs, two per stock (0B + 0D), like the KIS session's
    ``(tr_id, code)`` pairs, so the feed holder treats both alike.
    """

    name = "kiwoom-realtime"

    def __init__(
        self,
        config: KiwoomConfig,
        token: TokenProvider,
        *,
        on_event: EventSink | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_stocks: int | None = None,
        types: tuple[str, ...] = DEFAULT_TYPES,
        stall_timeout: float = 60.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        healthy_after: float = 30.0,
        open_timeout: float = 10.0,
        request_timeout: float = 10.0,
        token_timeout: float = 60.0,
        rng: Callable[[], float] = random.random,
        trading_date: Callable[[], dt.date | None] | None = None,
    ) -> None:
        super().__init__(
            config,
            config.ws_url,
            on_event=on_event,
            queue_size=queue_size,
            stall_timeout=stall_timeout,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            healthy_after=healthy_after,
            open_timeout=open_timeout,
            rng=rng,
            log_extra={"broker": "kiwoom"},
        )
        self._token_provider = token
        self._trading_date = trading_date
        self.max_stocks = max_stocks or config.ws_max_stocks
        self.types = types
        self._request_timeout = request_timeout
        self._token_timeout = token_timeout
        self._codes: set[str] = set()
        self._conditions: set[str] = set()
        self._refused: dict[tuple[str, str], str] = {}
        self._token: str | None = None

    # --- public state --------------------------------------------------------------------------------------------
    @property
    def registrations(self) -> frozenset[tuple[str, str]]:
        """Desired ``(type, code)`` pairs (restored after every reconnect)."""
        return frozenset((t, c) for c in self._codes for t in self.types)

    @property
    def active_registrations(self) -> frozenset[tuple[str, str]]:
        conn = self._conn
        if conn is None or not conn.is_open:
            return frozenset()
        return frozenset((t, c) for c in conn.codes for t in self.types)

    @property
    def refused(self) -> dict[tuple[str, str], str]:
        return dict(self._refused)

    @property
    def conditions(self) -> frozenset[str]:
        """Desired real-time condition seqs."""
        return frozenset(self._conditions)

    @property
    def active_conditions(self) -> frozenset[str]:
        conn = self._conn
        return frozenset(conn.condition_seqs) if conn is not None and conn.is_open else frozenset()

    @property
    def condition_members(self) -> dict[str, list[str]]:
        """Initial member codes of each condition, as answered on the current connection."""
        conn = self._conn
        return dict(conn.condition_members) if conn is not None and conn.is_open else {}

    # --- subscriptions ---------------------------------------------------------------------------------------------
    async def subscribe(self, code: str, tr_ids: Iterable[str] | None = None) -> None:
        """Add a stock (all of ``types``); registered now when connected, else on the next connection.

        :class:`SubscriptionLimitExceeded` (``kind="local_limit"``) when ``max_stocks`` would be exceeded; the
        broker's refusal is raised (and the code forgotten). Connection problems are absorbed.
        """
        code = parsing.normalize_code(code)
        if code in self._codes:
            return
        if len(self._codes) >= self.max_stocks:
            raise SubscriptionLimitExceeded(f"{len(self._codes)} stocks registered: limit {self.max_stocks}",
                                            kind="local_limit")  # fmt: skip
        self._codes.add(code)
        await self._apply(code, subscribe=True)

    async def unsubscribe(self, code: str, tr_ids: Iterable[str] | None = None) -> None:
        code = parsing.normalize_code(code)
        self._codes.discard(code)
        for t in self.types:
            self._refused.pop((t, code), None)
        await self._apply(code, subscribe=False)

    async def _apply(self, code: str, *, subscribe: bool) -> None:
        async with self._ops:
            conn = self._conn
            if conn is None or not conn.is_open or not conn.logged_in:
                return
            if subscribe and (code not in self._codes or code in conn.codes):
                return
            if not subscribe and (code in self._codes or code not in conn.codes):
                return
            try:
                if subscribe:
                    await conn.register([code], self.types)
                else:
                    await conn.remove([code], self.types)
            except RequestRefused as exc:
                if subscribe:
                    self._codes.discard(code)
                logger.warning("realtime: broker refused a registration change", extra={**self._log, "code": code,
                               "error_code": exc.code, "error": str(exc)})  # fmt: skip
                raise
            except (AckTimeout, RealtimeConnectionLost, SystemClosed) as exc:
                await self._abandon(conn, f"{type(exc).__name__}: {exc}")

    async def subscribe_condition(self, seq: str) -> None:
        """Keep real-time alerts of condition ``seq`` (CNSRREQ search_type 1), across reconnects."""
        seq = str(seq).strip()
        if not seq:
            raise ValueError("condition seq is empty")
        self._conditions.add(seq)
        await self._apply_condition(seq, subscribe=True)

    async def unsubscribe_condition(self, seq: str) -> None:
        """Stop the alerts of ``seq`` (CNSRCLR)."""
        seq = str(seq).strip()
        self._conditions.discard(seq)
        await self._apply_condition(seq, subscribe=False)

    async def set_conditions(self, seqs: Iterable[str]) -> tuple[list[str], list[str]]:
        """Make the desired condition set equal to ``seqs``; returns (added, removed)."""
        wanted = {str(s).strip() for s in seqs if str(s).strip()}
        added, removed = sorted(wanted - self._conditions), sorted(self._conditions - wanted)
        for seq in removed:
            await self.unsubscribe_condition(seq)
        for seq in added:
            try:
                await self.subscribe_condition(seq)
            except RequestRefused as exc:
                logger.warning("realtime: condition request refused", extra={**self._log, "seq": seq,
                               "error_code": exc.code})  # fmt: skip
        return added, removed

    async def _apply_condition(self, seq: str, *, subscribe: bool) -> None:
        async with self._ops:
            conn = self._conn
            if conn is None or not conn.is_open or not conn.logged_in:
                return
            if subscribe == (seq in conn.condition_seqs):
                return
            try:
                if subscribe:
                    listed = conn.conditions_listed
                    members = await conn.condition_subscribe(seq, exchange=self.config.condition_exchange)
                    logger.info("realtime condition requested: %sCNSRREQ search_type 1", "" if listed else "CNSRLST, ",
                                extra={**self._log, "seq": seq, "members": len(members)})  # fmt: skip
                else:
                    await conn.condition_clear(seq)
                    logger.info("realtime condition cleared: CNSRCLR", extra={**self._log, "seq": seq})
            except RequestRefused:
                if subscribe:
                    self._conditions.discard(seq)
                raise
            except (AckTimeout, RealtimeConnectionLost, SystemClosed) as exc:
                await self._abandon(conn, f"{type(exc).__name__}: {exc}")

    # --- the session's part --------------------------------------------------------------------------------------
    def _counts(self) -> dict[str, Any]:
        return {"stocks": len(self._codes), "conditions": len(self._conditions)}

    def _subscribed(self, conn: KiwoomConnection) -> bool:
        return bool(conn.codes or conn.condition_seqs)

    async def _get_token(self, rejected: str | None) -> str:
        try:
            token = await asyncio.wait_for(self._token_provider(rejected), self._token_timeout)
        except TimeoutError as exc:
            raise BrokerTransientError(
                f"no access token within {self._token_timeout:g}s", kind="token_timeout"
            ) from exc
        if not token:
            raise BrokerProtocolError("empty access token", kind="token_empty")
        self._token = token
        return token

    async def _connect_once(self) -> KiwoomConnection | None:
        conn: KiwoomConnection | None = None
        try:
            token = self._token or await self._get_token(None)
            conn = KiwoomConnection(
                self.url,
                on_event=self._delivery,
                stats=self._stats,
                open_timeout=self._open_timeout,
                request_timeout=self._request_timeout,
                on_close=self._wake.set,
                log_extra={"broker": "kiwoom", "env": self.config.env, "key_id": self.config.key_id},
                trading_date=self._trading_date,
            )
            await conn.connect()
            self._conn = conn
            try:
                await conn.login(token)
            except LoginRefused as exc:
                if exc.msg_cd not in TOKEN_CODES:
                    raise
                logger.info("realtime LOGIN refused the token; obtaining another", extra={**self._log,
                            "error_code": exc.code})  # fmt: skip
                self._token = None
                token = await self._get_token(token)
                if not conn.is_open:  # the server closes after a refused LOGIN (§A6 step 2)
                    await conn.close()
                    conn = KiwoomConnection(
                        self.url, on_event=self._delivery, stats=self._stats, open_timeout=self._open_timeout,
                        request_timeout=self._request_timeout, on_close=self._wake.set,
                        log_extra={"broker": "kiwoom", "env": self.config.env, "key_id": self.config.key_id},
                        trading_date=self._trading_date,
                    )  # fmt: skip
                    await conn.connect()
                    self._conn = conn
                await conn.login(token)
            restored = await self._restore(conn)
        except LoginRefused as exc:
            self._token = None
            logger.error("realtime LOGIN refused", extra={**self._log, "error_code": exc.code, "error": str(exc)})
        except BrokerError as exc:
            logger.warning("realtime connect failed", extra={**self._log, "error_code": exc.code, "error": str(exc)})
        except Exception as exc:
            logger.exception("realtime connect failed unexpectedly", extra={**self._log, "error": repr(exc)})
        else:
            return self._connected_now(
                conn, stocks=restored, conditions=len(conn.condition_seqs), refused=len(self._refused)
            )
        if conn is not None:
            await conn.close()
        self._conn = None
        return None

    async def _restore(self, conn: KiwoomConnection) -> int:
        """Register every desired code (chunks of REG_CHUNK) and condition on ``conn``; returns the stock count.

        A refused chunk is retried code by code so that one bad code does not cost the others.
        """
        self._refused.clear()
        async with self._ops:
            codes = sorted(self._codes)
            for i in range(0, len(codes), REG_CHUNK):
                chunk = codes[i : i + REG_CHUNK]
                try:
                    await conn.register(chunk, self.types)
                except RequestRefused:
                    for code in chunk:
                        try:
                            await conn.register([code], self.types)
                        except RequestRefused as exc:
                            for t in self.types:
                                self._refused[(t, code)] = exc.code
                            logger.error("realtime registration refused by the broker", extra={**self._log,
                                         "code": code, "error_code": exc.code})  # fmt: skip
            if self._conditions:
                await conn.condition_list()
                members = 0
                for seq in sorted(self._conditions):
                    try:
                        members += len(await conn.condition_subscribe(seq, exchange=self.config.condition_exchange))
                    except RequestRefused as exc:
                        logger.error("realtime condition request refused", extra={**self._log, "seq": seq,
                                     "error_code": exc.code})  # fmt: skip
                logger.info("realtime conditions restored: CNSRLST, then CNSRREQ search_type 1 per seq",
                            extra={**self._log, "seqs": ",".join(sorted(conn.condition_seqs)),
                                   "members": members})  # fmt: skip
        return len(conn.codes)


__all__ = [
    "KiwoomConnection",
    "KiwoomRealtimeSession",
    "LoginRefused",
    "RequestRefused",
    "SystemClosed",
    "TokenProvider",
    "condition_request",
    "reg_message",
    "remove_message",
]
