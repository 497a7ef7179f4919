"""The Kiwoom WebSocket listener (``/api/dostk/websocket``, kiwoom-api.md A6, A7).

JSON text frames, every message has ``trnm``. Flow and choices (UNCONFIRMED points marked):
- ``LOGIN`` first: ``{"trnm":"LOGIN","token":..}`` -> ``{"trnm":"LOGIN","return_code":0,"return_msg":""}``.
  Any other message before LOGIN (or none within ``kiwoom_ping_timeout``) -> ``SYSTEM`` ``R10004`` and close.
  A bad token -> LOGIN with return_code 1 and ``CODE=8005`` (8031: token of the other mode) in the
  message, then close.
- After LOGIN the server sends ``{"trnm":"PING"}`` every ``kiwoom_ping_interval``; the client must send
  the same frame back unchanged. A PING left unanswered for ``kiwoom_ping_timeout`` -> ``SYSTEM``
  ``R10002`` and close.
- ``REG``/``REMOVE`` with ``grp_no`` (≤4 chars) and ``data`` [{item[], type[]}]; ``refresh`` "0" replaces
  the group's earlier registrations (scope UNCONFIRMED), "1" (default) keeps them. Ack
  ``{"trnm":"REG","return_code":0,"return_msg":""}``; errors return_code 1 with a text. At most
  ``kiwoom_ws_max_registrations`` (item, type) pairs per connection ("등록 종목수 초과").
- ``REAL`` pushes: ``0B`` one entry per replayed print, ``0D`` one entry per book update (after every print
  and between prints), several entries per frame; ``item`` echoes the registered key (``005930_AL``). Every
  FID of Kiwoom's spec is sent (0B 43, 0D 163, in the spec's order; ``TRADE_FIDS``/``BOOK_FIDS``); the values
  and the UNCONFIRMED choices are listed in docs/sandbox-protocol-notes.md. FID 14 is in 백만원 (the spec).
  The prints and books are the ones the KIS listeners send for the same moment.
- Condition search: ``CNSRLST`` must come first on the connection; a ``CNSRREQ`` before it gets no reply
  (only PINGs). ``CNSRREQ`` search_type 0 answers pages of ``kiwoom_condition_page_size`` rows with body
  ``cont_yn``/``next_key`` (``next_key`` = code of the page's last row); search_type 1 answers the current
  members as ``{"jmcode":"A005930"}`` and then pushes ``REAL`` type ``02`` entries on every entry (I) and
  exit (D) until ``CNSRCLR``. The ``kiwoom_mute_conditions`` fault holds those pushes back.
- Messages that are not JSON objects with a known ``trnm`` get ``return_code`` 1 with the reason; the
  connection stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import operator
import re
import time
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from apps.sandbox.auction import CLOSING_AUCTION_S, OPENING_PUBLISH_S, expected_at
from apps.sandbox.kiwoom import formats
from apps.sandbox.kiwoom.auth import KiwoomError, KiwoomToken, declared_mode
from apps.sandbox.kiwoom.conditions import Alert
from apps.sandbox.quotes import hhmmss, sign_code
from apps.sandbox.replay import BUY, DayTape, OrderBook, RunningState, Tick
from apps.sandbox.ws import WsConnection, WsHub

if TYPE_CHECKING:
    from apps.sandbox.server import SandboxCore

logger = logging.getLogger("apps.sandbox")

WS_PATH = "/api/dostk/websocket"
#: Real types of kiwoom-api.md A6; only 0B and 0D carry replayed data here.
REAL_TYPES = frozenset(
    ["00", "02", "04", "0A", "0B", "0C", "0D", "0E", "0F", "0G", "0H", "0I", "0J", "0U", "0g", "0m", "0s", "0u"]
    + ["0w", "1h"]
)
ITEM_RE = re.compile(r"^([0-9A-Z]{3,6})(_NX|_AL)?$")
STEX_SUFFIX = {"K": "", "N": "_NX", "A": "_AL"}
STEX_EXCHANGE = {"K": "1", "N": "2", "A": "3"}
MAX_ENTRIES_PER_FRAME = 100
#: Seconds of print generation per step while conditions catch up after a clock jump.
CATCH_UP_SLICE_S = 0.02
MSG_R10002 = "연결 후 Heartbeat(연결유지) 메시지가 오지않아서 접속을 종료합니다"
MSG_R10004 = "로그인(LOGIN) 요청을 먼저 해야 합니다. 접속을 종료합니다"  # text UNCONFIRMED
CONDITION_NAME = "조건검색"


def dumps(msg: dict[str, object]) -> str:
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"))


@dataclass(eq=False)
class KiwoomConnection(WsConnection):
    """One Kiwoom client connection (event-loop thread only)."""

    token: KiwoomToken | None = None
    declared: str | None = None
    listed: bool = False
    regs: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    cond_subs: dict[str, str] = field(default_factory=dict)
    ping_pending_since: float | None = None
    connected_at: float = field(default_factory=time.monotonic)

    def pairs(self) -> set[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        for group in self.regs.values():
            out |= group
        return out


#: FIDs of a ``0B`` 주식체결 entry, all 43 in the order of Kiwoom's published spec (``kiwoom_api_spec.json`` of
#: Kiwoom-REST-API, the table its client decodes with; the KOA list of kiwoom-api.md B3 has the same order, with
#: 822 where the REST spec has 852 and 9081 at the end).
TRADE_FIDS: tuple[str, ...] = (
    "20", "10", "11", "12", "27", "28", "15", "13", "14", "16", "17", "18", "25", "26", "29", "30", "31", "32",
    "228", "311", "290", "691", "567", "568", "851", "1890", "1891", "1892", "1030", "1031", "1032", "1071", "1072",
    "1313", "1315", "1316", "1314", "1497", "1498", "620", "732", "852", "9081",
)  # fmt: skip
#: FIDs of a ``0D`` 주식호가잔량 entry, all 163 in the spec's order (kiwoom-api.md B3): 21; per level i = 1..10
#: 매도호가 40+i, 매도잔량 60+i, 매도대비 80+i, 매수호가 50+i, 매수잔량 70+i, 매수대비 90+i; totals and expected
#: prices; LP 621/631 .. 630/640; 13 299 215 216; the KRX/NXT split 6044-6087; the mid-price fields 6100-6115.
BOOK_FIDS: tuple[str, ...] = (
    "21",
    *(str(base + i) for i in range(1, 11) for base in (40, 60, 80, 50, 70, 90)),
    *("121", "122", "125", "126", "23", "24", "128", "129", "138", "139", "200", "201", "238"),
    *("291", "292", "293", "294", "295"),
    *(str(base + i) for i in range(10) for base in (621, 631)),
    *("13", "299", "215", "216"),
    *(str(fid) for fid in range(6044, 6088)),
    *(str(fid) for fid in range(6100, 6116)),
)
#: FIDs whose value never changes on the sandbox (see docs/sandbox-protocol-notes.md): 32 거래비용, 691 K.O
#: 접근도 (ELW), 851 전일 동시간 거래량 비율 (empty: the previous day's intraday volume is not replayed), the CFD and
#: 대주 margins and costs; in 0D the LP quantities (no stock of the universe has a liquidity provider), 215/216
#: (empty, as Kiwoom's own sample shows them), the NXT half of the split and the mid-price order quantities
#: (the replayed book is KRX's and holds no mid-price orders).
TRADE_CONSTANTS: dict[str, str] = {
    "32": "0", "691": "0", "851": "", "1497": "0", "1498": "0", "732": "0", "852": "0",
}  # fmt: skip
BOOK_CONSTANTS: dict[str, str] = {
    **{str(base + i): "0" for i in range(10) for base in (621, 631)},
    "215": "",
    "216": "",
    **{str(fid): "0" for fid in range(6066, 6088)},
    **{fid: "0" for fid in ("6100", "6101", "6103", "6104", "6105", "6106", "6107", "6108", "6109", "6113")},
    "6114": "3",
    "6115": "0.00",
}
#: 9081 거래소구분 by the registered item's suffix (mapping UNCONFIRMED, the same as REAL 02's): 1 KRX, 2 NXT, 3 통합.
ITEM_EXCHANGE = {"": "1", "_NX": "2", "_AL": "3"}
#: 290 장구분 (Kiwoom's spec): 1 장전 시간외, 2 장중, 3 장후 시간외.
SESSION_PRE, SESSION_REGULAR, SESSION_POST = "1", "2", "3"


def _layout(fids: tuple[str, ...], constants: dict[str, str]) -> tuple[tuple[str, ...], str]:
    """JSON text around the values of the FIDs not in ``constants``: one segment before each such value (the
    constant FIDs before it folded in), and the text after the last one (trailing constants, no closing brace)."""
    keys: list[str] = []
    pending = ""
    for n, fid in enumerate(fids):
        seg = ('{"' if n == 0 else '","') + fid + '":"'
        if fid in constants:
            pending += seg + constants[fid]
        else:
            keys.append(pending + seg)
            pending = ""
    return tuple(keys), pending + '"'


#: 0B without 9081 (appended per item), 0D complete.
_TRADE_KEYS, _TRADE_END = _layout(TRADE_FIDS[:-1], TRADE_CONSTANTS)
_BOOK_KEYS, _BOOK_END = _layout(BOOK_FIDS, BOOK_CONSTANTS)
_BOOK_END += "}"
_TRADE_TAILS = {suffix: _TRADE_END + ',"9081":"' + code + '"}' for suffix, code in ITEM_EXCHANGE.items()}
TRADE_VARIABLE = tuple(f for f in TRADE_FIDS[:-1] if f not in TRADE_CONSTANTS)
BOOK_VARIABLE = tuple(f for f in BOOK_FIDS if f not in BOOK_CONSTANTS)


def values_json(keys: tuple[str, ...], row: list[str], end: str = '"}') -> str:
    """``json.dumps(dict(zip(fids, row)))`` (compact) for rows of plain number strings, without the dict."""
    return "".join(map(operator.add, keys, row)) + end


def _pct(num: int, den: int) -> str:
    return f"{num / den * 100:.2f}" if den else "0.00"


#: hhmmss of the open/high/low times: a few distinct values a day, formatted once.
_hms = functools.lru_cache(maxsize=4096)(hhmmss)


def _hms_or_zero(t_ms: int, hit: bool) -> str:
    return _hms(t_ms) if hit else "000000"


def session_code(tape: DayTape, t_ms: int) -> str:
    """290 장구분 of a moment: before the open 1, through the closing print 2, after it 3."""
    if t_ms < tape.times.open_s * 1000:
        return SESSION_PRE
    if t_ms <= tape.closing_print_ms:
        return SESSION_REGULAR
    return SESSION_POST


def trade_row(tape: DayTape, tick: Tick, st: RunningState, book: OrderBook) -> list[str]:
    """Values of one ``0B`` 주식체결 entry for ``TRADE_VARIABLE`` (in ``TRADE_FIDS`` order); ``st`` includes
    ``tick``."""
    prev = tape.prev_close
    price = formats.price
    signed = formats.signed
    listed = tape.instrument.listed_shares
    vol, value = st.volume, st.value
    buy, sell = st.buy_volume, st.sell_volume
    is_buy = tick.side == BUY
    prev_vol = tape.prev_volume
    return [
        hhmmss(tick.t_ms),  # 20
        price(tick.price, prev),  # 10
        signed(tick.price - prev),  # 11
        formats.rate(tick.price - prev, prev),  # 12
        price(book.asks[0], prev),  # 27
        price(book.bids[0], prev),  # 28
        ("+" if is_buy else "-") + str(tick.volume),  # 15
        str(vol),  # 13
        str(value // 1_000_000),  # 14 (백만원)
        price(st.open, prev),  # 16
        price(st.high, prev),  # 17
        price(st.low, prev),  # 18
        sign_code(tick.price, prev, tape.upper_limit, tape.lower_limit),  # 25
        signed(vol - prev_vol),  # 26
        signed(value - tape.prev_value),  # 29 (원)
        (("-" if vol < prev_vol else "+" if vol > prev_vol else "") + _pct(vol, prev_vol))
        if prev_vol
        else "0.00",  # 30
        _pct(vol, listed),  # 31
        _pct(buy, sell),  # 228
        str(tick.price * listed // 100_000_000),  # 311 (억)
        session_code(tape, tick.t_ms),  # 290
        _hms_or_zero(st.high_ms, st.high >= tape.upper_limit),  # 567
        _hms_or_zero(st.low_ms, st.low <= tape.lower_limit),  # 568
        _hms(st.open_ms),  # 1890
        _hms(st.high_ms),  # 1891
        _hms(st.low_ms),  # 1892
        str(sell),  # 1030
        str(buy),  # 1031
        _pct(buy, buy + sell),  # 1032
        str(st.sell_count),  # 1071
        str(st.buy_count),  # 1072
        str(tick.price * tick.volume),  # 1313
        "0" if is_buy else str(tick.volume),  # 1315
        str(tick.volume) if is_buy else "0",  # 1316
        signed(buy - sell),  # 1314
        price(value // vol, prev) if vol else "0",  # 620
    ]


def trade_values(tape: DayTape, tick: Tick, st: RunningState, book: OrderBook, item: str = "") -> dict[str, str]:
    """All FIDs of one ``0B`` 주식체결 entry in ``TRADE_FIDS`` order; ``item`` is the registered key (its suffix
    picks 9081); ``st`` includes ``tick``."""
    values = dict(TRADE_CONSTANTS)
    values.update(zip(TRADE_VARIABLE, trade_row(tape, tick, st, book), strict=True))
    values["9081"] = ITEM_EXCHANGE[_suffix(item)]
    return {fid: values[fid] for fid in TRADE_FIDS}


def _suffix(item: str) -> str:
    return item[-3:] if item.endswith(("_NX", "_AL")) else ""


def encode_trade(tape: DayTape, tick: Tick, st: RunningState, book: OrderBook) -> str:
    """The ``values`` JSON of a ``0B`` entry up to (not including) 9081; ``_TRADE_TAILS`` closes it per item."""
    return values_json(_TRADE_KEYS, trade_row(tape, tick, st, book), "")


def _expected_fields(tape: DayTape, t_ms: int) -> list[str]:
    """23 24 | 200 201 238 291 292 293 294 295: the auction's expected price and quantity while one runs
    (``apps.sandbox.auction``), zeros (sign 3) otherwise."""
    open_ms, close_ms = tape.times.open_s * 1000, tape.times.close_s * 1000
    in_window = open_ms - OPENING_PUBLISH_S * 1000 <= t_ms < open_ms or close_ms - CLOSING_AUCTION_S * 1000 <= t_ms
    exp = expected_at(tape, t_ms) if in_window and t_ms < tape.closing_print_ms else None
    if exp is None or not exp.price:
        return _NO_EXPECTED
    prev = tape.prev_close
    change = exp.price - prev
    signed, rate = formats.signed(change), formats.rate(change, prev)
    sign = sign_code(exp.price, prev, tape.upper_limit, tape.lower_limit)
    p, q = str(exp.price), str(exp.quantity)
    return [p, q, signed, rate, sign, p, q, sign, signed, rate]


_NO_EXPECTED = ["0", "0", "0", "0.00", "3", "0", "0", "3", "0", "0.00"]


#: Per (ask prices, bid prices): their signed strings and the mid-price fields (``_ladder``).
Ladders = dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[list[str], list[str], tuple[str, str, str, str]]]


def _ladder(tape: DayTape, book: OrderBook) -> tuple[list[str], list[str], tuple[str, str, str, str]]:
    """Signed price strings of both sides and the mid-price fields 6102/6110/6111/6112 of a ladder."""
    pc = tape.prev_close
    asks = [formats.price(p, pc) for p in book.asks]
    bids = [formats.price(p, pc) for p in book.bids]
    ask1, bid1 = book.asks[0], book.bids[0]
    mid = (ask1 + bid1) // 2 if ask1 and bid1 else 0
    if not mid:
        return asks, bids, ("0", "0", "3", "0.00")
    sign = sign_code(mid, pc, tape.upper_limit, tape.lower_limit)
    return asks, bids, (formats.price(mid, pc), formats.signed(mid - pc), sign, formats.rate(mid - pc, pc))


def _changes(now: tuple[int, ...], before: tuple[int, ...]) -> list[str]:
    """Per-level quantity changes (a quote update changes one level: most are 0)."""
    if now == before:
        return _ZEROS
    signed = formats.signed
    return [signed(a - b) if a != b else "0" for a, b in zip(now, before, strict=True)]


def book_row(
    tape: DayTape,
    t_ms: int,
    st: RunningState,
    book: OrderBook,
    prev: OrderBook | None,
    ladders: Ladders | None = None,
) -> list[str]:
    """Values of one ``0D`` 주식호가잔량 entry for ``BOOK_VARIABLE`` (in ``BOOK_FIDS`` order). ``ladders`` caches
    the strings that depend on the prices only (consecutive books mostly share their ladder)."""
    key = (book.asks, book.bids)
    cached = ladders.get(key) if ladders is not None else None
    if cached is None:
        cached = _ladder(tape, book)
        if ladders is not None:
            ladders[key] = cached
    asks, bids, mid = cached
    aq = list(map(str, book.ask_qty))
    bq = list(map(str, book.bid_qty))
    signed = formats.signed
    if prev is not None:
        da, db = _changes(book.ask_qty, prev.ask_qty), _changes(book.bid_qty, prev.bid_qty)
    else:
        da = db = _ZEROS
    row = [hhmmss(t_ms)]
    row += chain.from_iterable(zip(asks, aq, da, bids, bq, db, strict=True))
    total_ask, total_bid = book.total_ask, book.total_bid
    ta, tb = str(total_ask), str(total_bid)
    expected = _expected_fields(tape, t_ms)
    row += (
        ta,  # 121
        signed(total_ask - prev.total_ask) if prev else "0",  # 122
        tb,  # 125
        signed(total_bid - prev.total_bid) if prev else "0",  # 126
        expected[0],  # 23
        expected[1],  # 24
        signed(total_bid - total_ask),  # 128
        _pct(total_bid, total_ask),  # 129 매수비율 = 매수총잔량 / 매도총잔량 (Kiwoom's sample: 114.51)
        signed(total_ask - total_bid),  # 138
        _pct(total_ask, total_bid),  # 139
    )
    row += expected[2:]  # 200 201 238 291 292 293 294 295
    row.append(str(st.volume))  # 13
    row.append(_pct(int(expected[1]), tape.prev_volume) if expected is not _NO_EXPECTED else "0.00")  # 299
    row += aq  # 6044-6053 KRX 매도호가잔량
    row += bq  # 6054-6063 KRX 매수호가잔량
    row += (ta, tb)  # 6064 6065
    row += mid  # 6102 6110 6111 6112
    return row


_ZEROS = ["0"] * 10


def book_values(tape: DayTape, t_ms: int, st: RunningState, book: OrderBook, prev: OrderBook | None) -> dict[str, str]:
    """All FIDs of one ``0D`` 주식호가잔량 entry in ``BOOK_FIDS`` order."""
    values = dict(BOOK_CONSTANTS)
    values.update(zip(BOOK_VARIABLE, book_row(tape, t_ms, st, book, prev), strict=True))
    return {fid: values[fid] for fid in BOOK_FIDS}


def encode_book(
    tape: DayTape,
    t_ms: int,
    st: RunningState,
    book: OrderBook,
    prev: OrderBook | None,
    ladders: Ladders | None = None,
) -> str:
    """The complete ``values`` JSON of a ``0D`` entry."""
    return values_json(_BOOK_KEYS, book_row(tape, t_ms, st, book, prev, ladders), _BOOK_END)


class KiwoomHub(WsHub):
    """Kiwoom connections, their registrations and condition subscriptions, and the replay fan-out.

    Reuses ``WsHub``'s bounded send queues, sender task, drop and drop_all; the protocol is Kiwoom's.
    """

    def __init__(self, core: SandboxCore) -> None:
        super().__init__(core)
        self._eval_bucket: int | None = None
        self.alerts_sent = 0
        self.alerts_muted = 0

    def make_app(self, mode: str = "kiwoom") -> web.Application:
        app = web.Application()
        app.router.add_get(WS_PATH, self.handle_kiwoom)
        return app

    # --- connection lifecycle -------------------------------------------------------------------------
    async def handle_kiwoom(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = KiwoomConnection(ws, request, "kiwoom", asyncio.Queue(self.core.config.ws_queue_size))
        conn.declared = declared_mode(request.host)
        self.connections.add(conn)
        logger.info("kiwoom ws connect #%s from %s", conn.id, conn.peer)
        sender = asyncio.create_task(self._sender(conn), name=f"kiwoom-ws-send-{conn.id}")
        keeper = asyncio.create_task(self._kiwoom_keepalive(conn), name=f"kiwoom-ws-ping-{conn.id}")
        reason = "client closed"
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_kiwoom_text(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._reply(conn, "", 1, "binary frames are not JSON")
                elif msg.type == WSMsgType.ERROR:
                    reason = f"error {ws.exception()!r}"
                    break
                if conn.closing:
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            reason = "connection lost"
        finally:
            self._forget(conn)
            keeper.cancel()
            sender.cancel()
            with contextlib.suppress(Exception):
                await ws.close()
            logger.info("kiwoom ws disconnect #%s: %s", conn.id, reason)
        return ws

    async def _send_now_and_close(self, conn: KiwoomConnection, msg: dict[str, object], reason: str) -> None:
        """Send ``msg`` ahead of the queue, then close (SYSTEM notices and failed LOGINs)."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.ws.send_str(dumps(msg))
        await self.drop(conn, reason)

    async def _system(self, conn: KiwoomConnection, code: str, message: str) -> None:
        logger.warning("kiwoom ws #%s: SYSTEM %s %s", conn.id, code, message)
        await self._send_now_and_close(conn, {"trnm": "SYSTEM", "code": code, "message": message}, code)

    async def _kiwoom_keepalive(self, conn: KiwoomConnection) -> None:
        cfg = self.core.config
        step = max(0.01, min(cfg.kiwoom_ping_interval, cfg.kiwoom_ping_timeout / 4, 1.0))
        next_ping: float | None = None
        woke = time.monotonic()
        while not conn.closing:
            await asyncio.sleep(step)
            now = time.monotonic()
            # The sandbox's own loop was held (a page of condition results, a tape generated after a jump): the
            # client's echo may be waiting unread, so the time the loop stood still is not the client's silence.
            stalled = now - woke - step
            woke = now
            if stalled > step and conn.ping_pending_since is not None:
                conn.ping_pending_since += stalled
            if conn.token is None:
                if now - conn.connected_at > cfg.kiwoom_ping_timeout:
                    await self._system(conn, "R10004", MSG_R10004)
                    return
                continue
            if self.core.faults.stalled():
                conn.ping_pending_since = None
                continue
            if conn.ping_pending_since is not None and now - conn.ping_pending_since > cfg.kiwoom_ping_timeout:
                await self._system(conn, "R10002", MSG_R10002)
                return
            if next_ping is None:
                next_ping = now + cfg.kiwoom_ping_interval
            if now >= next_ping:
                self.enqueue(conn, dumps({"trnm": "PING"}))
                if conn.ping_pending_since is None:
                    conn.ping_pending_since = now
                next_ping = now + cfg.kiwoom_ping_interval

    # --- client messages ---------------------------------------------------------------------------
    def _reply(self, conn: KiwoomConnection, trnm: str, code: int, text: str, **extra: object) -> None:
        msg: dict[str, object] = {"trnm": trnm}
        msg.update({k: v for k, v in extra.items() if k != "data"})
        msg.update({"return_code": code, "return_msg": text})
        if "data" in extra:
            msg["data"] = extra["data"]
        self.enqueue(conn, dumps(msg))

    async def _on_kiwoom_text(self, conn: KiwoomConnection, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        trnm = msg.get("trnm") if isinstance(msg, dict) else None
        if conn.token is None and trnm != "LOGIN":
            await self._system(conn, "R10004", MSG_R10004)
            return
        if not isinstance(msg, dict) or not isinstance(trnm, str):
            self._reply(conn, "", 1, "요청 형식이 올바르지 않습니다 (JSON object with trnm)")
            return
        handler = {
            "LOGIN": self._login,
            "PING": self._ping,
            "REG": self._reg,
            "REMOVE": self._remove,
            "CNSRLST": self._cnsrlst,
            "CNSRREQ": self._cnsrreq,
            "CNSRCLR": self._cnsrclr,
        }.get(trnm)
        if handler is None:
            self._reply(conn, trnm, 1, f"지원하지 않는 trnm입니다: {trnm}")
            return
        await handler(conn, msg)

    async def _login(self, conn: KiwoomConnection, msg: dict[str, object]) -> None:
        try:
            token = self.core.kiwoom_auth.check(str(msg.get("token") or ""), conn.declared)
        except KiwoomError as err:
            logger.info("kiwoom ws #%s LOGIN refused: %s", conn.id, err.code)
            text = f"토큰 인증에 실패했습니다. 접속을 종료합니다 [CODE={err.code}:{err.message}]"
            await self._send_now_and_close(conn, {"trnm": "LOGIN", "return_code": 1, "return_msg": text}, "LOGIN")
            return
        conn.token = token
        logger.info("kiwoom ws #%s LOGIN ok (%s, appkey %s…)", conn.id, token.mode, token.appkey[:6])
        self._reply(conn, "LOGIN", 0, "")

    async def _ping(self, conn: KiwoomConnection, msg: dict[str, object]) -> None:
        if msg == {"trnm": "PING"}:
            conn.ping_pending_since = None

    def _reg_data(self, msg: dict[str, object]) -> set[tuple[str, str]] | str:
        data = msg.get("data")
        if not isinstance(data, list) or not data:
            return "data가 없습니다"
        pairs: set[tuple[str, str]] = set()
        for entry in data:
            if not isinstance(entry, dict):
                return "data 항목 형식이 올바르지 않습니다"
            items, types = entry.get("item"), entry.get("type")
            if not isinstance(items, list) or not isinstance(types, list) or not types:
                return "item/type은 목록이어야 합니다"
            for typ in types:
                if typ not in REAL_TYPES:
                    return f"지원하지 않는 실시간 타입입니다: {typ}"
            for item in items:
                if not isinstance(item, str) or (item and not ITEM_RE.match(item)):
                    return f"종목코드 형식이 올바르지 않습니다: {item}"
            pairs |= {(item, typ) for item in items for typ in types}
        return pairs

    def _group(self, msg: dict[str, object]) -> str | None:
        grp = msg.get("grp_no")
        if not isinstance(grp, str) or not 1 <= len(grp) <= 4:
            return None
        return grp

    async def _reg(self, conn: KiwoomConnection, msg: dict[str, object]) -> None:
        grp = self._group(msg)
        if grp is None:
            self._reply(conn, "REG", 1, "grp_no는 1~4자리 문자열이어야 합니다")
            return
        refresh = msg.get("refresh", "1")
        if refresh not in ("0", "1"):
            self._reply(conn, "REG", 1, "refresh는 0 또는 1이어야 합니다")
            return
        pairs = self._reg_data(msg)
        if isinstance(pairs, str):
            self._reply(conn, "REG", 1, pairs)
            return
        group = set() if refresh == "0" else set(conn.regs.get(grp, set()))
        group |= pairs
        others = set().union(*(g for name, g in conn.regs.items() if name != grp)) if conn.regs else set()
        if len(others | group) > self.core.config.kiwoom_ws_max_registrations:
            self._reply(conn, "REG", 1, "등록 종목수 초과")
            return
        conn.regs[grp] = group
        self._reply(conn, "REG", 0, "")

    async def _remove(self, conn: KiwoomConnection, msg: dict[str, object]) -> None:
        grp = self._group(msg)
        if grp is None:
            self._reply(conn, "REMOVE", 1, "grp_no는 1~4자리 문자열이어야 합니다")
            return
        pairs = self._reg_data(msg)
        if isinstance(pairs, str):
            self._reply(conn, "REMOVE", 1, pairs)
            return
        remaining = conn.regs.get(grp, set()) - pairs
        if remaining:
            conn.regs[grp] = remaining
        else:
            conn.regs.pop(grp, None)
        self._reply(conn, "REMOVE", 0, "")

    # --- condition search ----------------------------------------------------------------------------
    async def _cnsrlst(self, conn: KiwoomConnection, msg: dict[str, object]) -> None:
        conn.listed = True
        data = [[r.seq, r.name] for r in self.core.conditions.conditions.rules]
        self._reply(conn, "CNSRLST", 0, "", data=data)

    async def _evaluate_now(self) -> None:
        """Bring membership up to the current evaluation slot (generating prints a slice at a time)."""
        engine = self.core.conditions
        while True:
            now_ms = self.core.clock.now_ms()
            bucket = now_ms // self._interval_ms()
            if bucket == self._eval_bucket:
                return
            if engine.catch_up(now_ms, CATCH_UP_SLICE_S):
                self._eval_bucket = bucket
                self._push_alerts(engine.evaluate(now_ms))
                return
            await asyncio.sleep(0)

    def _interval_ms(self) -> int:
        return max(1, int(self.core.conditions.conditions.evaluation_interval * 1000))

    async def _cnsrreq(self, conn: KiwoomConnection, msg: dict[str, object]) -> None:
        if not conn.listed:
            # The reference: CNSRREQ without a prior CNSRLST on the connection gets no reply.
            logger.info("kiwoom ws #%s CNSRREQ before CNSRLST: not answered", conn.id)
            return
        seq = msg.get("seq")
        if not isinstance(seq, str) or not seq.strip():
            self._reply(conn, "CNSRREQ", 1, "seq가 없습니다", seq="")
            return
        seq = seq.strip()
        rule = self.core.conditions.conditions.get(seq)
        if rule is None:
            self._reply(conn, "CNSRREQ", 1, f"조건검색식이 존재하지 않습니다: {seq}", seq=seq)
            return
        search_type = msg.get("search_type")
        stex = msg.get("stex_tp", "K")
        if search_type not in ("0", "1"):
            self._reply(conn, "CNSRREQ", 1, "search_type은 0 또는 1이어야 합니다", seq=seq)
            return
        if stex not in STEX_SUFFIX:
            self._reply(conn, "CNSRREQ", 1, "stex_tp는 K, N 또는 A여야 합니다", seq=seq)
            return
        await self._evaluate_now()
        members = list(self.core.conditions.members[seq])
        if search_type == "1":
            conn.cond_subs[seq] = str(stex)
            data = [{"jmcode": "A" + code} for code in members]
            logger.info("kiwoom ws #%s realtime condition %s on (%s members)", conn.id, seq, len(members))
            self._reply(conn, "CNSRREQ", 0, "", seq=seq, data=data)
            return
        universe = list(self.core.market.tapes)
        start = 0
        if msg.get("cont_yn") == "Y":
            key = msg.get("next_key")
            if not isinstance(key, str) or key not in universe:
                self._reply(conn, "CNSRREQ", 1, "next_key가 올바르지 않습니다", seq=seq.ljust(3))
                return
            after = universe.index(key)
            start = next((i for i, c in enumerate(members) if universe.index(c) > after), len(members))
        size = self.core.config.kiwoom_condition_page_size
        page = members[start : start + size]
        more = start + size < len(members)
        now_ms = self.core.clock.now_ms()
        rows = [self._search_row(code, now_ms) for code in page]
        self._reply(
            conn,
            "CNSRREQ",
            0,
            "",
            seq=seq.ljust(3),
            cont_yn="Y" if more else "N",
            next_key=page[-1] if more else "",
            data=rows,
        )

    def _search_row(self, code: str, now_ms: int) -> dict[str, str]:
        """One search_type 0 row: zero-padded 9-wide numbers, sign inside the width (A7 sample)."""
        tape = self.core.market.tapes[code]
        st = tape.state_at(now_ms)
        last = st.last if st.count else tape.prev_close
        change = last - tape.prev_close
        return {
            "9001": "A" + code,
            "302": tape.instrument.name,
            "10": formats.padded(last),
            "25": sign_code(last, tape.prev_close, tape.upper_limit, tape.lower_limit),
            "11": formats.padded(change, sign=True),
            "12": formats.padded(formats.rate_x100(change, tape.prev_close), sign=True),
            "13": formats.padded(st.volume),
            "16": formats.padded(st.open),
            "17": formats.padded(st.high),
            "18": formats.padded(st.low),
        }

    async def _cnsrclr(self, conn: KiwoomConnection, msg: dict[str, object]) -> None:
        seq = msg.get("seq")
        if not isinstance(seq, str) or not seq.strip():
            self._reply(conn, "CNSRCLR", 1, "seq가 없습니다", seq="")
            return
        conn.cond_subs.pop(seq.strip(), None)
        self._reply(conn, "CNSRCLR", 0, "", seq=seq)

    # --- replay fan-out ----------------------------------------------------------------------------
    def reset_cursor(self, since_ms: int | None = None) -> None:
        super().reset_cursor(since_ms)
        self._eval_bucket = None

    def flush(self) -> None:
        """Evaluate conditions when the evaluation interval has passed, then push new prints/books."""
        now_ms = self.core.clock.now_ms()
        after_ms, self.cursor_ms = self.cursor_ms, now_ms
        bucket = now_ms // self._interval_ms()
        engine = self.core.conditions
        watched = any(isinstance(c, KiwoomConnection) and c.cond_subs for c in self.connections)
        # Membership is only observable through CNSRREQ answers (evaluated on request) and REAL 02 alerts
        # (to subscribers), so with no subscriber the evaluation waits for the next request.
        if watched and bucket != self._eval_bucket and engine.catch_up(now_ms, CATCH_UP_SLICE_S):
            self._eval_bucket = bucket
            self._push_alerts(engine.evaluate(now_ms))
        if now_ms <= after_ms or not self.connections or self.core.faults.stalled():
            return
        self._push_market(after_ms, now_ms)

    def _push_alerts(self, alerts: list[Alert]) -> None:
        if not alerts:
            return
        if self.core.faults.conditions_muted() or self.core.faults.stalled():
            self.alerts_muted += len(alerts)
            logger.info("kiwoom conditions: %s alerts held back (fault)", len(alerts))
            return
        for conn in list(self.connections):
            if not isinstance(conn, KiwoomConnection) or not conn.cond_subs:
                continue
            entries = []
            for a in alerts:
                stex = conn.cond_subs.get(a.seq)
                if stex is None:
                    continue
                values = {"841": a.seq, "9001": a.code, "843": a.kind, "20": hhmmss(a.t_ms)}
                if a.side:
                    values["907"] = a.side
                # 9081 거래소구분 (kiwoom-api.md A6; the value mapping is UNCONFIRMED): the venue the condition
                # was asked for, 1 KRX, 2 NXT, 3 통합 (stex_tp K / N / A).
                values["9081"] = STEX_EXCHANGE[stex]
                item = a.code + STEX_SUFFIX[stex]
                entries.append({"type": "02", "name": CONDITION_NAME, "item": item, "values": values})
            self._send_entries(conn, entries)
            self.alerts_sent += len(entries)

    def _send_entries(self, conn: KiwoomConnection, entries: list[dict[str, object]]) -> None:
        for i in range(0, len(entries), MAX_ENTRIES_PER_FRAME):
            self.enqueue(conn, dumps({"trnm": "REAL", "data": entries[i : i + MAX_ENTRIES_PER_FRAME]}))
            self.frames_sent += 1

    def _push_market(self, after_ms: int, now_ms: int) -> None:
        """Every print (``0B``) and book update (``0D``) in (after_ms, now_ms] to the registered connections.

        Each entry's ``values`` is JSON-encoded once per flush; a connection's frame is assembled from the
        encoded entries with its own ``item`` keys (the same text ``json.dumps`` would give)."""
        conns = [c for c in self.connections if isinstance(c, KiwoomConnection) and c.token is not None]
        wanted: dict[str, set[str]] = {}
        conn_pairs: list[tuple[KiwoomConnection, list[tuple[str, str, str]]]] = []
        for conn in conns:
            pairs: list[tuple[str, str, str]] = []
            for item, typ in sorted(conn.pairs()):
                if typ in ("0B", "0D"):
                    match = ITEM_RE.match(item)
                    if match:
                        wanted.setdefault(match.group(1), set()).add(typ)
                        pairs.append((item, typ, match.group(1)))
            if pairs:
                conn_pairs.append((conn, pairs))
        if not self.catch_up(wanted, now_ms):
            self.cursor_ms = after_ms  # send the whole window once the tapes are ready
            return
        after_ms = self.take_skip(after_ms, now_ms)
        trades: dict[str, list[str]] = {}
        books: dict[str, list[str]] = {}
        for code, types in wanted.items():
            tape = self.core.market.tape(code)
            if tape is None:
                continue
            want_trades, want_books = "0B" in types, "0D" in types
            rows: list[str] = []
            book_rows: list[str] = []
            ladders: Ladders = {}
            for ev in tape.events(after_ms, now_ms):
                if ev.tick is not None and want_trades:
                    rows.append(encode_trade(tape, ev.tick, ev.state, ev.book))
                if want_books:
                    book_rows.append(encode_book(tape, ev.t_ms, ev.state, ev.book, ev.prev_book, ladders))
            if rows:
                trades[code] = rows
            if book_rows:
                books[code] = book_rows
        if not trades and not books:
            return
        for conn, pairs in conn_pairs:
            entries: list[str] = []
            for item, typ, code in pairs:
                encoded = trades.get(code) if typ == "0B" else books.get(code)
                if encoded:
                    name = "주식체결" if typ == "0B" else "주식호가잔량"
                    head = f'{{"type":"{typ}","name":"{name}","item":{json.dumps(item)},"values":'
                    # 0B values end with 9081, which names the item's venue; 0D values are complete.
                    tail = _TRADE_TAILS[_suffix(item)] + "}" if typ == "0B" else "}"
                    entries.extend(head + values + tail for values in encoded)
            for i in range(0, len(entries), MAX_ENTRIES_PER_FRAME):
                self.enqueue(conn, '{"trnm":"REAL","data":[' + ",".join(entries[i : i + MAX_ENTRIES_PER_FRAME]) + "]}")
                self.frames_sent += 1
            self.records_sent += len(entries)
