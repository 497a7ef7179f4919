"""WebSocket listeners (real and paper): subscriptions, acks, data frames and PINGPONG (§6).

Decisions (UNCONFIRMED points of the reference):
- A connection is bound to the approval key of its first accepted message. A second connection
  using an approval key that a live connection holds gets an OPSP8996 "ALREADY IN USE appkey" ack
  and is then closed by the server (close code 1008); the first connection is untouched.
- Unknown approval key: ack rt_cd "1", OPSP0011 "invalid approval : NOT FOUND"; connection kept.
- Bad JSON / bad tr_type: OPSP9999 "JSON PARSING ERROR : ..."; bad tr_id: OPSP8991 "invalid tr_id";
  bad tr_key: OPSP8992 "invalid tr_key". Error acks have no ``output``.
- The limit ``ws_max_registrations`` counts (tr_id, tr_key) pairs per connection.
- PINGPONG is sent every ``pingpong_interval``; a pong control frame (any payload) or an echoed
  PINGPONG text frame counts as an answer; no answer for ``pingpong_timeout`` -> dropped.
- Every connection has a bounded send queue; a client that lets it overflow is dropped, so a slow
  client never blocks the replay loop or other clients.
- Every replayed print is one H0STCNT0 record and every book update (after each print and between prints)
  one H0STASP0 record; a stock's records of one flush go out in frames of up to ``MAX_RECORDS_PER_FRAME``
  (the ``NNN`` count), encoded once whatever the number of subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from apps.sandbox import dayframes, quotes
from apps.sandbox.layouts import H0STCNT0_FIELDS, build_frame, encrypt_payload
from apps.sandbox.orders import Notice
from apps.sandbox.replay import DayTape
from apps.sandbox.venues import combined_book, merge_states, nxt_tick

if TYPE_CHECKING:
    from apps.sandbox.server import SandboxCore

logger = logging.getLogger("apps.sandbox")

#: TRs each listener serves. The paper server has no NXT / integrated feeds (the portal's "모의투자 미지원") and
#: its execution notices are H0STCNI9 (real: H0STCNI0), kis-api.md §6.1, §7.
SUPPORTED_TRS: dict[str, frozenset[str]] = {
    "real": frozenset(
        (
            "H0STCNT0",
            "H0STASP0",
            "H0NXCNT0",
            "H0UNCNT0",
            "H0NXASP0",
            "H0UNASP0",
            "H0STANC0",
            "H0STMKO0",
            "H0STOUP0",
            "H0STOAA0",
            "H0STCNI0",
        )
    ),
    "paper": frozenset(("H0STCNT0", "H0STASP0", "H0STANC0", "H0STMKO0", "H0STOUP0", "H0STOAA0", "H0STCNI9")),
}
TRADE_TRS = {"H0STCNT0": "KRX", "H0NXCNT0": "NXT", "H0UNCNT0": "UN"}
BOOK_TRS = {"H0STASP0": "KRX", "H0NXASP0": "NXT", "H0UNASP0": "UN"}
NOTICE_TRS = frozenset(("H0STCNI0", "H0STCNI9"))
TR_KEY_RE = re.compile(r"^[0-9A-Z]{6,7}$")
#: Execution notices are keyed by the HTS user ID (kis-api.md §6.7): letters, digits, underscore.
HTS_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,16}$")
MAX_RECORDS_PER_FRAME = 30
#: Seconds of tape generation per flush while the tapes catch up with a clock jump.
CATCH_UP_BUDGET_S = 0.02
#: A catch-up that held the sends longer than this resumes from the current time instead of sending the whole
#: wait at once (at 20x a 15 s wait is five sim minutes of prints: a burst that would overflow every queue).
CATCH_UP_MAX_HOLD_S = 2.0
SEND_TIMEOUT_S = 10.0
_ids = itertools.count(1)


class GcPauses:
    """Garbage-collector pauses of this process (a pause holds every send), for the heartbeat lines."""

    def __init__(self) -> None:
        self.recent: deque[tuple[float, float]] = deque(maxlen=2000)  # (end, seconds) of pauses over 1 ms
        self._started = 0.0
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
        elif self._started and now - self._started > 0.001:
            self.recent.append((time.monotonic(), now - self._started))

    def longest_since(self, since: float) -> float:
        return max((seconds for end, seconds in self.recent if end >= since), default=0.0)


GC_PAUSES = GcPauses()


@dataclass(eq=False)
class WsConnection:
    """One client connection; all mutation happens on the event loop thread."""

    ws: web.WebSocketResponse
    request: web.Request
    mode: str
    queue: asyncio.Queue[str | None]
    id: int = field(default_factory=lambda: next(_ids))
    approval_key: str | None = None
    subs: set[tuple[str, str]] = field(default_factory=set)
    last_answer: float = field(default_factory=time.monotonic)
    iv: str = field(default_factory=lambda: secrets.token_hex(8))
    key: str = field(default_factory=lambda: secrets.token_hex(16))
    closing: bool = False

    @property
    def peer(self) -> str:
        return str(self.request.remote)


def ack(tr_id: str, tr_key: str, rt_cd: str, msg_cd: str, msg1: str, conn: WsConnection | None = None) -> str:
    """A §6.2-shaped JSON ack; ``output`` (iv/key) only when ``conn`` is given (success acks). ``encrypt`` is
    "Y" for the execution notices, whose data frames are encrypted with that key and iv."""
    body: dict[str, object] = {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1}
    if conn is not None:
        body["output"] = {"iv": conn.iv, "key": conn.key}
    encrypt = "Y" if tr_id in NOTICE_TRS and conn is not None else "N"
    msg = {"header": {"tr_id": tr_id, "tr_key": tr_key, "encrypt": encrypt}, "body": body}
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"))


class WsHub:
    """All WS connections of both modes plus the replay fan-out loop."""

    def __init__(self, core: SandboxCore) -> None:
        self.core = core
        self.connections: set[WsConnection] = set()
        self.by_approval: dict[str, WsConnection] = {}
        self.cursor_ms = core.clock.now_ms()
        self.frames_sent = 0
        self.records_sent = 0
        self.deepest_queue = 0
        self._catching_up: float | None = None
        self._skip_to_now = False
        self._send_log = None  # the open SANDBOX_SEND_LOG file, once a print was sent

    def make_app(self, mode: str) -> web.Application:
        app = web.Application()

        async def handler(request: web.Request) -> web.StreamResponse:
            return await self.handle(request, mode)

        app.router.add_route("GET", "/{tail:.*}", handler)
        return app

    # --- connection lifecycle -------------------------------------------------------------------------
    async def handle(self, request: web.Request, mode: str) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=False, heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = WsConnection(ws, request, mode, asyncio.Queue(self.core.config.ws_queue_size))
        self.connections.add(conn)
        logger.info("ws connect #%s (%s) from %s path %s", conn.id, mode, conn.peer, request.path)
        sender = asyncio.create_task(self._sender(conn), name=f"ws-send-{conn.id}")
        keeper = asyncio.create_task(self._keepalive(conn), name=f"ws-ping-{conn.id}")
        reason = "client closed"
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
                elif msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    conn.last_answer = time.monotonic()
                elif msg.type == WSMsgType.BINARY:
                    self.enqueue(conn, ack("", "", "1", "OPSP9999", "JSON PARSING ERROR : binary frame"))
                elif msg.type == WSMsgType.ERROR:
                    reason = f"error {ws.exception()!r}"
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            reason = "connection lost"
        finally:
            self._forget(conn)
            keeper.cancel()
            sender.cancel()
            with contextlib.suppress(Exception):
                await ws.close()
            logger.info("ws disconnect #%s (%s): %s", conn.id, mode, reason)
        return ws

    def _forget(self, conn: WsConnection) -> None:
        self.connections.discard(conn)
        if conn.approval_key and self.by_approval.get(conn.approval_key) is conn:
            del self.by_approval[conn.approval_key]

    async def drop(self, conn: WsConnection, reason: str, *, abrupt: bool = False) -> None:
        """Close one connection (abrupt: no close frame, like a network drop)."""
        if conn.closing:
            return
        conn.closing = True
        logger.warning("ws drop #%s (%s) %s: %s", conn.id, conn.mode, conn.peer, reason)
        self._forget(conn)
        if abrupt and conn.request.transport is not None:
            conn.request.transport.abort()
            return
        with contextlib.suppress(Exception):
            await conn.ws.close(code=1008, message=reason[:100].encode())

    async def drop_all(self, reason: str) -> int:
        """Fault: drop every connection abruptly; returns how many were open."""
        conns = list(self.connections)
        for conn in conns:
            await self.drop(conn, reason, abrupt=True)
        return len(conns)

    def enqueue(self, conn: WsConnection, text: str) -> None:
        """Queue ``text`` for ``conn``; overflow drops the connection (never blocks)."""
        if conn.closing:
            return
        try:
            conn.queue.put_nowait(text)
            if conn.queue.qsize() > self.deepest_queue:
                self.deepest_queue = conn.queue.qsize()
        except asyncio.QueueFull:
            asyncio.get_running_loop().create_task(self.drop(conn, "send queue overflow (slow client)"))

    async def _sender(self, conn: WsConnection) -> None:
        while True:
            text = await conn.queue.get()
            if text is None or conn.closing:
                return
            sent_at = time.time()  # the frame goes to the socket now (before the write's drain)
            try:
                await asyncio.wait_for(conn.ws.send_str(text), SEND_TIMEOUT_S)
            except (TimeoutError, ConnectionError, RuntimeError) as exc:
                await self.drop(conn, f"send failed: {exc!r}", abrupt=True)
                return
            if self.core.config.send_log is not None and text.startswith("0|H0STCNT0|"):
                self._log_sent(text, sent_at)

    def _log_sent(self, frame: str, sent_at: float) -> None:
        """Appends the frame's prints (code, cumulative volume, price) with the time it was handed to the socket."""
        if self._send_log is None:
            self._send_log = open(self.core.config.send_log, "a", buffering=1 << 16)  # noqa: SIM115 (process-long)
        fields = frame.split("|", 3)[3].split("^")
        width = len(H0STCNT0_FIELDS)
        lines = [
            f"{fields[i]} {fields[i + 13]} {fields[i + 2]} {sent_at:.6f}\n"
            for i in range(0, len(fields) - width + 1, width)
        ]
        self._send_log.write("".join(lines))
        self._send_log.flush()

    async def _keepalive(self, conn: WsConnection) -> None:
        cfg = self.core.config
        step = max(0.01, min(cfg.pingpong_interval, cfg.pingpong_timeout / 4, 1.0))
        next_ping = time.monotonic() + cfg.pingpong_interval
        while not conn.closing:
            await asyncio.sleep(step)
            now = time.monotonic()
            if self.core.faults.stalled():
                conn.last_answer = max(conn.last_answer, now - step)
                continue
            if now - conn.last_answer > cfg.pingpong_timeout:
                await self.drop(conn, f"no PINGPONG answer for {cfg.pingpong_timeout:g}s")
                return
            if now >= next_ping:
                stamp = self.core.clock.now_dt().strftime("%Y%m%d%H%M%S")
                self.enqueue(
                    conn,
                    json.dumps({"header": {"tr_id": "PINGPONG", "datetime": stamp}}, separators=(",", ":")),
                )
                next_ping = now + cfg.pingpong_interval

    # --- client messages ---------------------------------------------------------------------------
    async def _on_text(self, conn: WsConnection, text: str) -> None:
        try:
            msg = json.loads(text)
            header = msg["header"]
            if header.get("tr_id") == "PINGPONG":
                conn.last_answer = time.monotonic()
                return
            tr_type = str(header.get("tr_type", ""))
            approval_key = str(header.get("approval_key", ""))
            body_input = msg["body"]["input"]
            tr_id = str(body_input.get("tr_id", ""))
            tr_key = str(body_input.get("tr_key", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            self.enqueue(conn, ack("", "", "1", "OPSP9999", "JSON PARSING ERROR : invalid json format"))
            return
        core = self.core
        if core.authority.approval_owner(approval_key, conn.mode) is None:
            self.enqueue(conn, ack(tr_id, tr_key, "1", "OPSP0011", "invalid approval : NOT FOUND"))
            return
        holder = self.by_approval.get(approval_key)
        if holder is not None and holder is not conn:
            logger.warning("ws #%s refused: approval key already in use by #%s", conn.id, holder.id)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.send_str(ack(tr_id, tr_key, "1", "OPSP8996", "ALREADY IN USE appkey"))
            await self.drop(conn, "approval key already in use")
            return
        if conn.approval_key is None:
            conn.approval_key = approval_key
            self.by_approval[approval_key] = conn
        if tr_type not in ("1", "2"):
            self.enqueue(conn, ack(tr_id, tr_key, "1", "OPSP9999", "JSON PARSING ERROR : invalid tr_type"))
            return
        supported = SUPPORTED_TRS[conn.mode]
        if conn.mode == "paper" and core.config.paper_nxt:
            supported = supported | {"H0NXCNT0"}
        if tr_id not in supported:
            self.enqueue(conn, ack(tr_id, tr_key, "1", "OPSP8991", "invalid tr_id"))
            return
        if not (HTS_ID_RE if tr_id in NOTICE_TRS else TR_KEY_RE).match(tr_key):
            self.enqueue(conn, ack(tr_id, tr_key, "1", "OPSP8992", "invalid tr_key"))
            return
        pair = (tr_id, tr_key)
        if tr_type == "1":
            if pair in conn.subs:
                self.enqueue(conn, ack(tr_id, tr_key, "1", "OPSP0002", "ALREADY IN SUBSCRIBE"))
            elif len(conn.subs) >= core.config.ws_max_registrations:
                self.enqueue(conn, ack(tr_id, tr_key, "1", "OPSP0008", "MAX SUBSCRIBE OVER"))
            else:
                conn.subs.add(pair)
                self.enqueue(conn, ack(tr_id, tr_key, "0", "OPSP0000", "SUBSCRIBE SUCCESS", conn))
        elif pair in conn.subs:
            conn.subs.discard(pair)
            self.enqueue(conn, ack(tr_id, tr_key, "0", "OPSP0001", "UNSUBSCRIBE SUCCESS", conn))
        else:
            self.enqueue(conn, ack(tr_id, tr_key, "1", "OPSP0003", "UNSUBSCRIBE ERROR (not found!)"))

    # --- replay fan-out ----------------------------------------------------------------------------
    def on_notice(self, notice: Notice) -> None:
        """Send an execution notice to the connections of its app key that subscribed to H0STCNI0/H0STCNI9,
        encrypted with each connection's key and iv; CUST_ID is the HTS ID the connection subscribed with."""
        tr_id = "H0STCNI9" if notice.mode == "paper" else "H0STCNI0"
        for conn in list(self.connections):
            if conn.mode != notice.mode or conn.approval_key is None:
                continue
            owner = self.core.authority.approval_owner(conn.approval_key, conn.mode)
            if owner is None or owner.appkey != notice.appkey:
                continue
            for sub_tr, hts_id in conn.subs:
                if sub_tr == tr_id:
                    fields = [hts_id, *notice.fields[1:]]
                    payload = encrypt_payload("^".join(fields), conn.key, conn.iv)
                    self.enqueue(conn, f"1|{tr_id}|001|{payload}")
                    self.frames_sent += 1
                    self.records_sent += 1

    def _flush_venues(self, tape: DayTape, subs: dict[str, list[WsConnection]], after_ms: int, now_ms: int) -> None:
        """The integrated trades and NXT / integrated books of one stock (``apps.sandbox.venues``)."""
        out: dict[str, list[list[str]]] = {tr: [] for tr in subs}
        venue_trs = list(subs)
        nxt = self.core.venues.state(tape, "NXT", after_ms)
        for ev in tape.events(after_ms, now_ms):
            mirrored = nxt_tick(tape, ev.tick) if ev.tick is not None else None
            if mirrored is not None:
                nxt.apply(mirrored)
            for tr in venue_trs:
                venue = TRADE_TRS.get(tr) or BOOK_TRS[tr]
                if tr in BOOK_TRS:
                    out[tr].append(quotes.nx_asp0_record(tape, ev.t_ms, ev.state, nxt, ev.book, venue))
                elif venue == "UN" and ev.tick is not None:
                    merged = merge_states(ev.state, nxt)
                    out[tr].append(quotes.cnt0_record(tape, ev.tick, merged, combined_book(ev.book)))
                    if mirrored is not None:
                        out[tr].append(quotes.cnt0_record(tape, mirrored, merged, combined_book(ev.book)))
        self._send_records(out, subs)

    def _send_records(self, out: dict[str, list[list[str]]], subs: dict[str, list[WsConnection]]) -> None:
        for tr, records in out.items():
            if not records:
                continue
            frames = [
                build_frame(tr, records[i : i + MAX_RECORDS_PER_FRAME])
                for i in range(0, len(records), MAX_RECORDS_PER_FRAME)
            ]
            for conn in subs[tr]:
                for frame in frames:
                    self.enqueue(conn, frame)
            self.frames_sent += len(frames) * len(subs[tr])
            self.records_sent += len(records) * len(subs[tr])

    def _flush_code(self, code: str, subs: dict[str, list[WsConnection]], after_ms: int, now_ms: int) -> None:
        """Every subscribed TR of one stock for (after_ms, now_ms] (``apps.sandbox.dayframes``)."""
        tape = self.core.market.tape(code)
        day = self.core.days.day(code)
        if tape is None or day is None:
            return
        out: dict[str, list[list[str]]] = {}
        if "H0STCNT0" in subs or "H0STASP0" in subs:
            trades, books = dayframes.krx_records(
                day, after_ms, now_ms, trades="H0STCNT0" in subs, books="H0STASP0" in subs, ladders={}
            )
            if "H0STCNT0" in subs:
                out["H0STCNT0"] = trades
            if "H0STASP0" in subs:
                out["H0STASP0"] = books
        if "H0STOUP0" in subs or "H0STOAA0" in subs:
            trades, books = dayframes.off_hours_records(
                day, after_ms, now_ms, trades="H0STOUP0" in subs, books="H0STOAA0" in subs
            )
            if "H0STOUP0" in subs:
                out["H0STOUP0"] = trades
            if "H0STOAA0" in subs:
                out["H0STOAA0"] = books
        if "H0STANC0" in subs:
            out["H0STANC0"] = dayframes.anc0_records(day, after_ms, now_ms)
        if "H0STMKO0" in subs:
            out["H0STMKO0"] = dayframes.mko0_records(day, after_ms, now_ms)
        if "H0NXCNT0" in subs:
            out["H0NXCNT0"] = dayframes.nxt_records(day, self.core.venues, after_ms, now_ms)
        self._send_records(out, subs)
        venue_subs = {tr: conns for tr, conns in subs.items() if tr in ("H0UNCNT0", "H0NXASP0", "H0UNASP0")}
        if venue_subs:
            self._flush_venues(tape, venue_subs, after_ms, now_ms)

    def reset_cursor(self, since_ms: int | None = None) -> None:
        """After a clock jump (or at start-up): send what happens from ``since_ms`` (default: now) on, without
        replaying the gap before it. Events at ``since_ms`` itself are sent (the 09:00:00.000 opening print
        when the session starts)."""
        self.cursor_ms = (self.core.clock.now_ms() if since_ms is None else since_ms) - 1

    async def run(self, stop: asyncio.Event) -> None:
        """Flush new prints to subscribers every ``ws_flush_interval_s`` until ``stop`` is set, with a heartbeat
        log line every ``ws_heartbeat_s``: what was sent, the longest flush, the longest gap between two flushes
        (a held event loop) and the deepest send queue (a slow client)."""
        interval = self.core.config.ws_flush_interval_s
        GC_PAUSES.install()
        beat = time.monotonic()
        beat_records, beat_frames = self.records_sent, self.frames_sent
        longest_flush = longest_gap = 0.0
        last_start = time.monotonic()
        while not stop.is_set():
            started = time.monotonic()
            longest_gap = max(longest_gap, started - last_start)
            last_start = started
            try:
                self.flush()
            except Exception:
                logger.exception("replay flush failed; continuing")
            done = time.monotonic()
            longest_flush = max(longest_flush, done - started)
            if done - beat >= self.core.config.ws_heartbeat_s:
                span = done - beat
                logger.info(
                    "%s heartbeat: %s connections, %.0f records/s in %.0f frames/s, longest flush %.0f ms, "
                    "longest gap between flushes %.0f ms, longest GC pause %.0f ms, deepest send queue %s frames "
                    "(drops at %s)",
                    type(self).__name__,
                    len(self.connections),
                    (self.records_sent - beat_records) / span,
                    (self.frames_sent - beat_frames) / span,
                    longest_flush * 1000,
                    longest_gap * 1000,
                    GC_PAUSES.longest_since(beat) * 1000,
                    self.deepest_queue,
                    self.core.config.ws_queue_size,
                )
                beat, beat_records, beat_frames = done, self.records_sent, self.frames_sent
                longest_flush = longest_gap = 0.0
                self.deepest_queue = 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    @property
    def catching_up(self) -> bool:
        """A connection is waiting for the tape to be generated up to now (``catch_up``)."""
        return self._catching_up is not None

    def catch_up(self, codes: Iterable[str], now_ms: int) -> bool:
        """Generate the tapes of ``codes`` up to ``now_ms`` for at most CATCH_UP_BUDGET_S; True when ready.

        After a clock jump far into the day a flush would otherwise generate hours of prints at once and
        hold the event loop (pings, other connections) for seconds. When ready, the rest of the budget
        generates each stock's next bar ahead, so a new minute never waits for its prints."""
        deadline = time.monotonic() + CATCH_UP_BUDGET_S
        tapes = [t for t in (self.core.market.tape(code) for code in codes) if t is not None]
        for tape in tapes:
            while not tape.ready_for(now_ms):
                if self._catching_up is None and tape.bar_index(now_ms) - tape.prepared >= 1:
                    self._catching_up = time.monotonic()
                    logger.info("generating the replayed tape up to %s before sending", quotes.hhmmss(now_ms))
                tape.prepare(tape.prepared)
                if time.monotonic() > deadline:
                    return False
        if self._catching_up is not None:
            held = time.monotonic() - self._catching_up
            self._catching_up = None
            if held > CATCH_UP_MAX_HOLD_S:
                self._skip_to_now = True
            logger.info(
                "replayed tape ready after %.1fs; sending resumes%s",
                held,
                " from now (the prints of the wait are not sent)" if self._skip_to_now else "",
            )
        for tape in tapes:
            if time.monotonic() > deadline:
                break
            tape.prepare(tape.bar_index(now_ms) + 1)
        return True

    def take_skip(self, after_ms: int, now_ms: int) -> int:
        """Where this flush starts: ``after_ms``, or just before ``now_ms`` after a long catch-up."""
        if self._skip_to_now:
            self._skip_to_now = False
            return max(after_ms, now_ms - 1)
        return after_ms

    def flush(self) -> None:
        """Send the prints and book updates in (cursor, now] to every subscribed, non-stalled connection.

        Each record is encoded once per flush whatever the number of subscribers; a stock's records go
        out as ``0|H0STCNT0|NNN|...`` / ``0|H0STASP0|NNN|...`` frames of up to MAX_RECORDS_PER_FRAME."""
        now_ms = self.core.clock.now_ms()
        after_ms, self.cursor_ms = self.cursor_ms, now_ms
        if now_ms <= after_ms or self.core.faults.stalled():
            return
        self.core.orders.advance(now_ms)  # fills become notices (``on_notice``) before the market data
        if not self.connections:
            return
        wanted: dict[str, dict[str, list[WsConnection]]] = {}
        for conn in self.connections:
            for tr_id, code in conn.subs:
                if tr_id in NOTICE_TRS:
                    continue
                wanted.setdefault(code, {}).setdefault(tr_id, []).append(conn)
        if not wanted:
            return
        if not self.catch_up(wanted, now_ms):
            self.cursor_ms = after_ms  # send the whole window once the tapes are ready
            return
        after_ms = self.take_skip(after_ms, now_ms)
        for code, subs in wanted.items():
            self._flush_code(code, subs, after_ms, now_ms)
