"""The sandbox broker's own accounts and matching engine: cash orders matched against the replayed tape.

What KIS's order TRs need to behave like the broker's (kis-api.md §5.7, §5.8, §6.7; krx-rules.md §3.1-§3.4):

- Validation, in this order (each refusal is a business error, HTTP 200 ``rt_cd`` "1", nothing changes):
  venue (``EXCG_ID_DVSN_CD`` KRX/NXT/SOR; the paper server takes KRX only, kis-api.md §5.7), order type
  (``ORD_DVSN`` 00 limit, 01 market; the other codes exist but the sandbox does not match them), quantity, price on
  the tick grid of the stock's band, price inside the day's ±30 % limits, session (orders from 08:30 to 15:30; no
  off-hours sessions), buying power (cash >= price × quantity, market orders reserved at the upper limit) or
  holdings (orderable quantity) for a sell.
- Matching (``advance``), against what the tape prints after the order was accepted:
  - before the open (08:30-09:00) orders wait for the opening print; during the closing auction (15:20-15:30) for
    the closing print. An auction fills a marketable order (buy limit >= print price, sell limit <= it, any market
    order) at the print's price, up to the print's volume;
  - in continuous trading a marketable order takes the book in force when it is accepted, level by level up to
    each level's quantity and its own limit, at the level's price; the rest rests at its limit. A resting buy
    fills at its limit on every later print at or below it (a sell at or above), up to the print's volume (queue
    position is not modelled: an approximation, stated in docs/sandbox-protocol-notes.md);
  - NXT orders match against the synthetic NXT tape of ``apps.sandbox.venues``; SOR takes the better touch of the
    two venues when accepted and then whichever venue prints first. Executions record their venue.
- Each acceptance and each fill is an execution notice (``H0STCNI0`` real / ``H0STCNI9`` paper, 26 fields) for the
  WebSocket listeners to encrypt and send.
- Modify/cancel (``order-rvsecncl``, kis-api.md §5.7 names only the TR ``TTTC0013U``/``VTTC0013U``; body fields
  UNCONFIRMED: ``ORGN_ODNO``, ``RVSE_CNCL_DVSN_CD`` 01 modify / 02 cancel, ``QTY_ALL_ORD_YN``, ``ORD_QTY``,
  ``ORD_DVSN``, ``ORD_UNPR``): the order is first matched up to now (a fill that came first stays), then the asked
  part of what is still open is taken off the book, its reserved cash released, and a modify/cancel order with a
  number of its own is recorded (``orgn_odno`` = the original, ``cncl_yn`` Y for a cancel). A modify puts the part
  back as a new order at the new price. Its confirm notice is a receipt (``CNTG_YN`` 1, ``ACPT_YN`` 2 confirmed)
  with ``ODER_NO`` the new number, ``OODER_NO`` the original, ``RCTF_CLS`` 1 modify / 2 cancel (codes UNCONFIRMED)
  and the modified/cancelled quantity in ``CNTG_QTY`` and ``ODER_QTY``.

State lives in memory for the life of the sandbox process (a restart starts every account afresh with
``order_deposit`` KRW), like the broker's paper server at a season reset.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from apps.sandbox.replay import DayTape, OrderBook, ReplayMarket, Tick
from apps.sandbox.venues import nxt_book, nxt_tick

logger = logging.getLogger("apps.sandbox")

SELL_CODE = "01"
BUY_CODE = "02"
#: KRX_FWDG_ORD_ORGNO / ord_gno_brno of every sandbox order (a branch number; value UNCONFIRMED).
BRANCH = "06010"
ORDER_TYPES = {"00": "지정가", "01": "시장가"}
#: Order codes that exist (kis-api.md §5.7) but that the sandbox does not match: refused with their own message.
KNOWN_UNMATCHED_TYPES = {f"{n:02d}" for n in range(2, 17)}
#: ORD_EXG_GB of a notice and ``excg_id_dvsn_cd`` of an inquiry row per venue (the codes are UNCONFIRMED).
VENUE_NOTICE_CODE = {"KRX": "1", "NXT": "2", "SOR": "3"}
#: Orders are accepted from the start of the opening auction's order entry (krx-rules.md §3.3).
ORDER_ENTRY_OPEN_S = 8 * 3600 + 30 * 60


class OrderRefused(Exception):
    """A refused order: KIS business error ``msg_cd``/``msg1`` (codes and texts UNCONFIRMED unless noted)."""

    def __init__(self, msg_cd: str, msg1: str) -> None:
        super().__init__(msg1)
        self.msg_cd = msg_cd
        self.msg1 = msg1


#: Refusals. None of these codes is in the reference; they are the sandbox's, stable and documented.
REFUSALS: dict[str, tuple[str, str]] = {
    "venue": ("APBK1680", "모의투자에서는 해당 거래소 주문이 불가합니다."),
    "venue_code": ("APBK1681", "거래소ID구분코드(EXCG_ID_DVSN_CD)를 확인하여 주십시오."),
    "type": ("APBK0903", "주문구분을 확인하여 주십시오."),
    "type_unmatched": ("APBK0904", "샌드박스에서 지원하지 않는 주문구분입니다."),
    "quantity": ("APBK0905", "주문수량을 확인하여 주십시오."),
    "price": ("APBK0906", "주문단가를 확인하여 주십시오."),
    "tick": ("APBK0907", "호가단위가 맞지 않습니다."),
    "band": ("APBK0908", "가격제한폭을 벗어난 주문입니다."),
    "session": ("APBK0918", "장운영시간이 아닙니다."),
    "cash": ("APBK0952", "주문가능금액을 초과 했습니다."),
    "holding": ("APBK0400", "주문 가능한 수량을 초과했습니다."),
    "stock": ("APBK0656", "해당종목정보가 없습니다."),
    "account": ("OPSQ2000", "ERROR : INPUT INVALID_CHECK_ACNO"),
    "no_original": ("APBK1031", "원주문번호가 존재하지 않습니다."),
    "nothing_open": ("APBK0344", "정정/취소할 수량이 없습니다."),
    "revise_code": ("APBK1032", "정정취소구분코드를 확인하여 주십시오."),
}
#: RVSE_CNCL_DVSN_CD → RCTF_CLS of the confirm notice (both UNCONFIRMED).
REVISE_CODES = {"01": "1", "02": "2"}


def refuse(key: str) -> OrderRefused:
    return OrderRefused(*REFUSALS[key])


@dataclass
class Fill:
    t_ms: int
    price: int
    quantity: int
    venue: str


@dataclass
class SandboxOrder:
    """One order; ``remaining`` is what is still open."""

    number: str
    account: str  # CANO + ACNT_PRDT_CD (10 digits)
    appkey: str
    mode: str
    code: str
    name: str
    side: str  # "01" sell / "02" buy
    ord_dvsn: str
    quantity: int
    price: int  # 0 for a market order
    venue: str  # KRX / NXT / SOR
    accepted_ms: int
    tr_id: str
    fills: list[Fill] = field(default_factory=list)
    cursor_ms: int = 0
    reserved: int = 0  # cash held back for an open buy
    cancelled: int = 0  # shares taken off the book by a modify/cancel (cnc_cfrm_qty)
    original: str = ""  # a modify/cancel order's original (orgn_odno)
    kind: str = "new"  # new, modify or cancel

    @property
    def filled(self) -> int:
        return sum(f.quantity for f in self.fills)

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled - self.cancelled

    @property
    def filled_value(self) -> int:
        return sum(f.price * f.quantity for f in self.fills)

    @property
    def is_buy(self) -> bool:
        return self.side == BUY_CODE

    def marketable(self, price: int) -> bool:
        if self.ord_dvsn == "01":
            return True
        return price <= self.price if self.is_buy else price >= self.price


@dataclass
class Holding:
    quantity: int = 0
    cost: int = 0  # purchase amount of the quantity held (average cost × quantity)
    bought_today: int = 0
    sold_today: int = 0


@dataclass
class Account:
    number: str
    cash: int
    holdings: dict[str, Holding] = field(default_factory=dict)
    buy_amount_today: int = 0
    sell_amount_today: int = 0

    def orderable(self, code: str, open_sells: int) -> int:
        held = self.holdings.get(code)
        return max(0, (held.quantity if held else 0) - open_sells)


@dataclass(frozen=True)
class Notice:
    """One execution notice (acknowledgement ``CNTG_YN`` 1 or fill 2) for the WebSocket listeners."""

    appkey: str
    mode: str
    fields: list[str]


NoticeSink = Callable[[Notice], None]


class OrderBookKeeper:
    """Accounts, orders and the matching engine for both modes (event-loop thread only)."""

    def __init__(self, market: ReplayMarket, deposit: int) -> None:
        self.market = market
        self.deposit = deposit
        self.accounts: dict[tuple[str, str, str], Account] = {}
        self.orders: list[SandboxOrder] = []
        self._numbers = itertools.count(1)
        self.sinks: list[NoticeSink] = []
        self.hts_names: dict[str, str] = {}

    # --- accounts ---------------------------------------------------------------------------------
    def account(self, appkey: str, mode: str, cano: str, prdt: str) -> Account:
        if len(cano) != 8 or not cano.isdigit() or len(prdt) != 2 or not prdt.isdigit():
            raise refuse("account")
        key = (appkey, mode, cano + prdt)
        acct = self.accounts.get(key)
        if acct is None:
            acct = self.accounts[key] = Account(cano + prdt, self.deposit)
        return acct

    def orders_of(self, appkey: str, mode: str, account: str) -> list[SandboxOrder]:
        return [o for o in self.orders if o.appkey == appkey and o.mode == mode and o.account == account]

    def open_sell_quantity(self, acct: Account, appkey: str, mode: str, code: str) -> int:
        return sum(o.remaining for o in self.orders_of(appkey, mode, acct.number) if o.code == code and not o.is_buy)

    # --- placing --------------------------------------------------------------------------------------
    def place(
        self,
        *,
        appkey: str,
        mode: str,
        tr_id: str,
        side: str,
        params: dict[str, str],
        now_ms: int,
    ) -> SandboxOrder:
        """Validate and accept one cash order (see the module docstring); OrderRefused otherwise."""
        self.advance(now_ms)
        acct = self.account(appkey, mode, params.get("CANO", ""), params.get("ACNT_PRDT_CD", ""))
        venue = (params.get("EXCG_ID_DVSN_CD", "") or "KRX").strip().upper()
        if venue not in ("KRX", "NXT", "SOR"):
            raise refuse("venue_code")
        if mode == "paper" and venue != "KRX":
            raise refuse("venue")
        ord_dvsn = params.get("ORD_DVSN", "")
        if ord_dvsn in KNOWN_UNMATCHED_TYPES:
            raise refuse("type_unmatched")
        if ord_dvsn not in ORDER_TYPES:
            raise refuse("type")
        tape = self.market.tape(params.get("PDNO", "").strip())
        if tape is None:
            raise refuse("stock")
        qty_raw, price_raw = params.get("ORD_QTY", ""), params.get("ORD_UNPR", "")
        if not qty_raw.isdigit() or not 0 < int(qty_raw) <= 10_000_000:
            raise refuse("quantity")
        if not price_raw.isdigit() or len(price_raw) > 12:
            raise refuse("price")
        qty, price = int(qty_raw), int(price_raw)
        if ord_dvsn == "00":
            if price <= 0:
                raise refuse("price")
            if not tape.grid.on_grid(price):
                raise refuse("tick")
            if not tape.lower_limit <= price <= tape.upper_limit:
                raise refuse("band")
        else:
            price = 0
        if not ORDER_ENTRY_OPEN_S * 1000 <= now_ms < tape.times.close_s * 1000:
            raise refuse("session")
        if side == BUY_CODE:
            reserve = (price or tape.upper_limit) * qty
            if reserve > acct.cash:
                raise refuse("cash")
        else:
            reserve = 0
            if qty > acct.orderable(tape.code, self.open_sell_quantity(acct, appkey, mode, tape.code)):
                raise refuse("holding")
        order = SandboxOrder(
            number=f"{next(self._numbers):010d}",
            account=acct.number,
            appkey=appkey,
            mode=mode,
            code=tape.code,
            name=tape.instrument.name,
            side=side,
            ord_dvsn=ord_dvsn,
            quantity=qty,
            price=price,
            venue=venue,
            accepted_ms=now_ms,
            tr_id=tr_id,
            cursor_ms=now_ms,
            reserved=reserve,
        )
        acct.cash -= reserve
        self.orders.append(order)
        logger.info(
            "sandbox order %s accepted (%s): %s %s x%s @%s on %s",
            order.number,
            mode,
            "buy" if order.is_buy else "sell",
            order.code,
            qty,
            price or "market",
            venue,
        )
        self._notify(order, None, now_ms)
        if tape.times.open_s * 1000 <= now_ms < tape.times.continuous_end_s * 1000:
            self._take_book(order, acct, tape, now_ms)
        return order

    # --- modify / cancel -------------------------------------------------------------------------------------
    def revise(self, *, appkey: str, mode: str, tr_id: str, params: dict[str, str], now_ms: int) -> SandboxOrder:
        """Modify or cancel the open part of an order (see the module docstring); the modify/cancel order."""
        self.advance(now_ms)  # what filled before the request stays filled
        acct = self.account(appkey, mode, params.get("CANO", ""), params.get("ACNT_PRDT_CD", ""))
        dvsn = params.get("RVSE_CNCL_DVSN_CD", "").strip()
        if dvsn not in REVISE_CODES:
            raise refuse("revise_code")
        wanted = params.get("ORGN_ODNO", "").strip().lstrip("0")
        orig = next(
            (
                o
                for o in self.orders_of(appkey, mode, acct.number)
                if o.kind != "cancel" and wanted and o.number.lstrip("0") == wanted
            ),
            None,
        )
        if orig is None:
            raise refuse("no_original")
        all_yn = params.get("QTY_ALL_ORD_YN", "").strip().upper()
        if all_yn not in ("Y", "N"):
            raise OrderRefused("OPSQ2002", "ERROR INVALID INPUT [QTY_ALL_ORD_YN]")
        tape = self.market.tape(orig.code)
        if tape is None:
            raise refuse("stock")
        if not ORDER_ENTRY_OPEN_S * 1000 <= now_ms < tape.times.close_s * 1000:
            raise refuse("session")
        if orig.remaining <= 0:
            raise refuse("nothing_open")
        qty_raw = params.get("ORD_QTY", "").strip()
        if all_yn == "Y":
            qty = orig.remaining
        elif qty_raw.isdigit() and 0 < int(qty_raw) <= orig.remaining:
            qty = int(qty_raw)
        else:
            raise refuse("quantity")
        ord_dvsn, price = orig.ord_dvsn, orig.price
        if dvsn == "01":
            ord_dvsn = params.get("ORD_DVSN", "").strip()
            if ord_dvsn not in ORDER_TYPES:
                raise refuse("type")
            price_raw = params.get("ORD_UNPR", "").strip()
            if not price_raw.isdigit() or len(price_raw) > 12:
                raise refuse("price")
            price = int(price_raw) if ord_dvsn == "00" else 0
            if ord_dvsn == "00" and (price <= 0 or not tape.grid.on_grid(price)):
                raise refuse("tick" if price > 0 else "price")
            if ord_dvsn == "00" and not tape.lower_limit <= price <= tape.upper_limit:
                raise refuse("band")
        release = 0
        if orig.is_buy:
            release = (
                orig.reserved if qty == orig.remaining else min(orig.reserved, (orig.price or tape.upper_limit) * qty)
            )
        reserve = (price or tape.upper_limit) * qty if orig.is_buy and dvsn == "01" else 0
        if reserve > acct.cash + release:
            raise refuse("cash")
        orig.cancelled += qty
        orig.reserved -= release
        acct.cash += release - reserve
        record = SandboxOrder(
            number=f"{next(self._numbers):010d}",
            account=acct.number,
            appkey=appkey,
            mode=mode,
            code=orig.code,
            name=orig.name,
            side=orig.side,
            ord_dvsn=ord_dvsn,
            quantity=qty,
            price=price,
            venue=orig.venue,
            accepted_ms=now_ms,
            tr_id=tr_id,
            cursor_ms=now_ms,
            reserved=reserve,
            cancelled=qty if dvsn == "02" else 0,
            original=orig.number,
            kind="cancel" if dvsn == "02" else "modify",
        )
        self.orders.append(record)
        logger.info("sandbox order %s %s (%s): %s of %s", orig.number, record.kind, mode, qty, orig.quantity)
        self._notify(record, None, now_ms)
        if record.kind == "modify" and tape.times.open_s * 1000 <= now_ms < tape.times.continuous_end_s * 1000:
            self._take_book(record, acct, tape, now_ms)
        return record

    def _books(self, order: SandboxOrder, tape: DayTape, now_ms: int) -> list[tuple[str, OrderBook]]:
        book = tape.order_book_at(now_ms)
        if order.venue == "KRX":
            return [("KRX", book)]
        if order.venue == "NXT":
            return [("NXT", nxt_book(book))]
        return [("KRX", book), ("NXT", nxt_book(book))]

    def _take_book(self, order: SandboxOrder, acct: Account, tape: DayTape, now_ms: int) -> None:
        """A marketable order takes the book in force (level by level, best venue first for SOR)."""
        levels: list[tuple[int, int, str]] = []
        for venue, book in self._books(order, tape, now_ms):
            prices, qtys = (book.asks, book.ask_qty) if order.is_buy else (book.bids, book.bid_qty)
            levels.extend((p, q, venue) for p, q in zip(prices, qtys, strict=True) if p and q)
        levels.sort(key=lambda lv: lv[0] if order.is_buy else -lv[0])
        for price, qty, venue in levels:
            if order.remaining <= 0 or not order.marketable(price):
                break
            self._fill(order, acct, now_ms, price, min(qty, order.remaining), venue)

    # --- matching ----------------------------------------------------------------------------------------
    def advance(self, now_ms: int) -> None:
        """Match every open order against the prints in (its cursor, ``now_ms``]."""
        for order in self.orders:
            if order.remaining <= 0 or order.cursor_ms >= now_ms:
                continue
            tape = self.market.tape(order.code)
            if tape is None:
                continue
            acct = self.accounts[(order.appkey, order.mode, order.account)]
            for tick in tape.ticks_between(order.cursor_ms, now_ms):
                if order.remaining <= 0:
                    break
                self._on_print(order, acct, tape, tick)
            order.cursor_ms = now_ms

    def _on_print(self, order: SandboxOrder, acct: Account, tape: DayTape, tick: Tick) -> None:
        auction = tick.t_ms == tape.times.open_s * 1000 or tick.t_ms >= tape.times.close_s * 1000
        in_closing_auction = order.accepted_ms >= tape.times.continuous_end_s * 1000
        if in_closing_auction and not auction:
            return  # orders of the closing auction wait for its print
        if auction:
            if order.venue == "NXT" or not order.marketable(tick.price):
                return
            self._fill(order, acct, tick.t_ms, tick.price, min(tick.volume, order.remaining), "KRX")
            return
        candidates: list[tuple[str, Tick]] = []
        if order.venue in ("KRX", "SOR"):
            candidates.append(("KRX", tick))
        if order.venue in ("NXT", "SOR"):
            mirrored = nxt_tick(tape, tick)
            if mirrored is not None:
                candidates.append(("NXT", mirrored))
        for venue, print_ in candidates:
            if order.remaining <= 0:
                return
            if order.ord_dvsn == "01":
                self._fill(order, acct, print_.t_ms, print_.price, min(print_.volume, order.remaining), venue)
            elif order.marketable(print_.price):
                # A resting limit order trades at its own price.
                self._fill(order, acct, print_.t_ms, order.price, min(print_.volume, order.remaining), venue)

    def _fill(self, order: SandboxOrder, acct: Account, t_ms: int, price: int, qty: int, venue: str) -> None:
        if qty <= 0:
            return
        order.fills.append(Fill(t_ms, price, qty, venue))
        holding = acct.holdings.setdefault(order.code, Holding())
        amount = price * qty
        if order.is_buy:
            release = min(order.reserved, (order.price or self._reserve_price(order)) * qty)
            order.reserved -= release
            acct.cash += release - amount
            holding.cost += amount
            holding.quantity += qty
            holding.bought_today += qty
            acct.buy_amount_today += amount
        else:
            avg = holding.cost // holding.quantity if holding.quantity else 0
            holding.cost -= avg * qty
            holding.quantity -= qty
            holding.sold_today += qty
            acct.cash += amount
            acct.sell_amount_today += amount
        if order.remaining == 0 and order.reserved:
            acct.cash += order.reserved
            order.reserved = 0
        self._notify(order, order.fills[-1], t_ms)

    def _reserve_price(self, order: SandboxOrder) -> int:
        tape = self.market.tape(order.code)
        return tape.upper_limit if tape is not None else 0

    # --- notices -------------------------------------------------------------------------------------------
    def _notify(self, order: SandboxOrder, fill: Fill | None, t_ms: int) -> None:
        notice = Notice(order.appkey, order.mode, notice_fields(order, fill, t_ms, "{HTS_ID}"))
        for sink in self.sinks:
            sink(notice)


def _hhmmss(t_ms: int) -> str:
    s = t_ms // 1000
    return f"{s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d}"


def notice_fields(order: SandboxOrder, fill: Fill | None, t_ms: int, hts_id: str) -> list[str]:
    """The 26 fields of one H0STCNI0/H0STCNI9 record (kis-api.md §6.7 order). An acknowledgement (``fill`` None:
    CNTG_YN 1, ACPT_YN 1) carries the order's quantity and price in fields 9/10; a fill (CNTG_YN 2, ACPT_YN 2) the
    executed quantity and price. ``ORD_EXG_GB`` is the execution's venue for a fill, the order's for an
    acknowledgement. The receipt of a modify/cancel order is its confirmation (ACPT_YN 2), with its original in
    OODER_NO and RCTF_CLS 1 (modify) / 2 (cancel)."""
    venue = fill.venue if fill else order.venue
    revision = fill is None and order.kind != "new"
    rctf = {"modify": "1", "cancel": "2"}.get(order.kind, "0") if revision else "0"
    return [
        hts_id,  # CUST_ID
        order.account,  # ACNT_NO
        order.number,  # ODER_NO
        order.original or "0" * 10,  # OODER_NO
        order.side,  # SELN_BYOV_CLS
        rctf,  # RCTF_CLS
        order.ord_dvsn,  # ODER_KIND
        "0",  # ODER_COND
        order.code,  # STCK_SHRN_ISCD
        str(fill.quantity if fill else order.quantity),  # CNTG_QTY
        str(fill.price if fill else order.price),  # CNTG_UNPR
        _hhmmss(t_ms),  # STCK_CNTG_HOUR
        "0",  # RFUS_YN
        "2" if fill else "1",  # CNTG_YN
        "2" if fill or revision else "1",  # ACPT_YN
        BRANCH,  # BRNC_NO
        str(order.quantity),  # ODER_QTY
        "HOGA SANDBOX",  # ACNT_NAME
        "0",  # ORD_COND_PRC
        VENUE_NOTICE_CODE[venue],  # ORD_EXG_GB
        "N",  # POPUP_YN
        "",  # FILLER
        "10",  # CRDT_CLS (10 = 현금; UNCONFIRMED)
        "",  # CRDT_LOAN_DATE
        order.name,  # CNTG_ISNM40
        str(order.price),  # ODER_PRC
    ]


__all__ = [
    "BUY_CODE",
    "SELL_CODE",
    "Account",
    "Notice",
    "OrderBookKeeper",
    "OrderRefused",
    "SandboxOrder",
    "notice_fields",
]
