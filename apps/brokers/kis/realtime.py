"""Pure parsing and message building for the KIS real-time WebSocket (kis-api.md §6). No I/O.

Frames the server sends are either

- data frames ``<enc>|<tr_id>|<count>|<payload>`` (first character ``0`` plain / ``1`` encrypted), parsed by
  :func:`parse_frame` into :class:`~apps.brokers.base.Tick` /
  :class:`~apps.brokers.base.OrderBook`, or
- JSON control frames (first character ``{``), classified by :func:`parse_control` into :class:`Ack` or
  :class:`PingPong`.

Invariants:

- the field layouts below are written from the reference (§6.5: 46 fields, §6.6: 59 fields), not from the
  sandbox; a test asserts both agree;
- a plain payload of ``count`` records has exactly ``count * N`` ``^``-separated fields (N per TR); anything
  else is a :class:`~apps.brokers.base.BrokerProtocolError`, never a partial result;
- encrypted frames (``1|...``, only the order-notice TRs H0STCNI0/9 use them) are out of scope and raise
  :class:`EncryptedFrame`, so the caller can skip them with a log line.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
from dataclasses import dataclass, field
from typing import Any

from apps.core.krx import phases as P

from ..base import (
    KST,
    BrokerAuthError,
    BrokerError,
    BrokerProtocolError,
    ExpectedTrade,
    MarketStatus,
    OrderBook,
    PriceSign,
    Tick,
    TradeSide,
)
from ..websocket import SubscriptionLimitExceeded, SubscriptionRefused
from .parsing import parse_date, parse_decimal, parse_hhmmss, parse_int, parse_sign, signed, signed_decimal

TR_TRADES = "H0STCNT0"
TR_BOOK = "H0STASP0"
#: NXT trades (kis-api.md §7: the H0STCNT0 layout, field 21 named CNTG_CLS_CODE).
TR_NXT_TRADES = "H0NXCNT0"
#: Off-hours trades / book (kis-api.md §7). Their layouts are not in the reference: read as the H0STCNT0 and
#: H0STASP0 layouts (UNCONFIRMED; the sandbox sends those).
TR_OFF_HOURS_TRADES = "H0STOUP0"
TR_OFF_HOURS_BOOK = "H0STOAA0"
#: Expected trades of a call (the H0STCNT0 columns) and market operation (11 fields), kis-api.md §7.
TR_EXPECTED = "H0STANC0"
TR_STATUS = "H0STMKO0"
#: The trade TRs and the venue of their prints.
TRADE_VENUES = {TR_TRADES: P.KRX, TR_NXT_TRADES: P.NXT, TR_OFF_HOURS_TRADES: P.KRX}
BOOK_TRS = frozenset({TR_BOOK, TR_OFF_HOURS_BOOK})

#: NEW_MKOP_CLS_CODE → the print's phase. The first character is kis-api.md §6.5's (1 pre-open, 2 regular,
#: 3 after the close, 4 off-hours); the second is UNCONFIRMED: this is the sandbox's table
#: (``apps.sandbox.day.NEW_MKOP_BY_PHASE``; a test checks both agree). Unknown codes fall back on the first
#: character (``phase_of``).
PHASE_BY_NEW_MKOP: dict[str, str] = {
    "11": P.OPENING_AUCTION,
    "12": P.PRE_CLOSE_PRICE,
    "13": P.NXT_PRE,
    "20": P.CONTINUOUS,
    "21": P.VI_AUCTION,
    "22": P.CLOSING_AUCTION,
    "30": P.CLOSED,
    "31": P.POST_CLOSE_PRICE,
    "32": P.NXT_AFTER,
    "40": P.AFTER_HOURS_SINGLE,
}
#: HOUR_CLS_CODE of an expected price → the call building (kis-api.md §6.5: A after-close expected, B pre-open
#: expected, C after 09:00 / VI, D off-hours single price).
CALL_BY_HOUR_CLS: dict[str, str] = {
    "A": P.CLOSING_AUCTION,
    "B": P.OPENING_AUCTION,
    "C": P.VI_AUCTION,
    "D": P.AFTER_HOURS_SINGLE,
}
#: H0STMKO0 VI_CLS_CODE (UNCONFIRMED: the sandbox's codes; "Y" read as a VI of unknown kind, "dynamic").
VI_BY_CODE = {"N": "", "": "", "0": "", "1": "static", "2": "dynamic", "3": "static", "Y": "dynamic"}
#: H0STMKO0 MKOP_CLS_CODE → phase (UNCONFIRMED 3-character codes: the sandbox's table, ``MKOP_CLS_BY_PHASE``).
PHASE_BY_MKOP_CLS: dict[str, str] = {
    "110": P.OPENING_AUCTION,
    "112": P.CONTINUOUS,
    "113": P.NXT_PRE,
    "115": P.VI_AUCTION,
    "121": P.CLOSING_AUCTION,
    "129": P.CLOSED,
    "131": P.POST_CLOSE_PRICE,
    "132": P.NXT_AFTER,
    "141": P.AFTER_HOURS_SINGLE,
}


def phase_of(new_mkop: str, venue: str = P.KRX) -> str:
    """The phase of a print from its NEW_MKOP_CLS_CODE (``PHASE_BY_NEW_MKOP``, else by its first character)."""
    code = new_mkop.strip()
    found = PHASE_BY_NEW_MKOP.get(code)
    if found is not None:
        return found
    first = code[:1]
    if venue == P.NXT:
        return {"1": P.NXT_PRE, "3": P.NXT_AFTER}.get(first, P.CONTINUOUS)
    return {"1": P.OPENING_AUCTION, "3": P.POST_CLOSE_PRICE, "4": P.AFTER_HOURS_SINGLE}.get(first, P.CONTINUOUS)


PINGPONG = "PINGPONG"
#: Registrations per session / app key (§6.8); the 42nd gets OPSP0008.
MAX_REGISTRATIONS = 41

MSG_SUBSCRIBED = "OPSP0000"
MSG_UNSUBSCRIBED = "OPSP0001"
MSG_ALREADY_SUBSCRIBED = "OPSP0002"
MSG_NOT_SUBSCRIBED = "OPSP0003"
MSG_MAX_SUBSCRIBE = "OPSP0008"
MSG_KEY_IN_USE = "OPSP8996"
#: Unknown / expired approval key (the sandbox's code; KIS's own code is UNCONFIRMED, so the message is checked too).
MSG_BAD_APPROVAL = "OPSP0011"

#: H0STCNT0, §6.5 (46 fields, in order).
H0STCNT0_FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD",
    "STCK_CNTG_HOUR",
    "STCK_PRPR",
    "PRDY_VRSS_SIGN",
    "PRDY_VRSS",
    "PRDY_CTRT",
    "WGHN_AVRG_STCK_PRC",
    "STCK_OPRC",
    "STCK_HGPR",
    "STCK_LWPR",
    "ASKP1",
    "BIDP1",
    "CNTG_VOL",
    "ACML_VOL",
    "ACML_TR_PBMN",
    "SELN_CNTG_CSNU",
    "SHNU_CNTG_CSNU",
    "NTBY_CNTG_CSNU",
    "CTTR",
    "SELN_CNTG_SMTN",
    "SHNU_CNTG_SMTN",
    "CCLD_DVSN",
    "SHNU_RATE",
    "PRDY_VOL_VRSS_ACML_VOL_RATE",
    "OPRC_HOUR",
    "OPRC_VRSS_PRPR_SIGN",
    "OPRC_VRSS_PRPR",
    "HGPR_HOUR",
    "HGPR_VRSS_PRPR_SIGN",
    "HGPR_VRSS_PRPR",
    "LWPR_HOUR",
    "LWPR_VRSS_PRPR_SIGN",
    "LWPR_VRSS_PRPR",
    "BSOP_DATE",
    "NEW_MKOP_CLS_CODE",
    "TRHT_YN",
    "ASKP_RSQN1",
    "BIDP_RSQN1",
    "TOTAL_ASKP_RSQN",
    "TOTAL_BIDP_RSQN",
    "VOL_TNRT",
    "PRDY_SMNS_HOUR_ACML_VOL",
    "PRDY_SMNS_HOUR_ACML_VOL_RATE",
    "HOUR_CLS_CODE",
    "MRKT_TRTM_CLS_CODE",
    "VI_STND_PRC",
)

#: H0STASP0, §6.6 (59 fields, in order). Level 1 is the best price.
H0STASP0_FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD",
    "BSOP_HOUR",
    "HOUR_CLS_CODE",
    *(f"ASKP{i}" for i in range(1, 11)),
    *(f"BIDP{i}" for i in range(1, 11)),
    *(f"ASKP_RSQN{i}" for i in range(1, 11)),
    *(f"BIDP_RSQN{i}" for i in range(1, 11)),
    "TOTAL_ASKP_RSQN",
    "TOTAL_BIDP_RSQN",
    "OVTM_TOTAL_ASKP_RSQN",
    "OVTM_TOTAL_BIDP_RSQN",
    "ANTC_CNPR",
    "ANTC_CNQN",
    "ANTC_VOL",
    "ANTC_CNTG_VRSS",
    "ANTC_CNTG_VRSS_SIGN",
    "ANTC_CNTG_PRDY_CTRT",
    "ACML_VOL",
    "TOTAL_ASKP_RSQN_ICDC",
    "TOTAL_BIDP_RSQN_ICDC",
    "OVTM_TOTAL_ASKP_ICDC",
    "OVTM_TOTAL_BIDP_ICDC",
    "STCK_DEAL_CLS_CODE",
)

#: H0STMKO0 (장운영정보), 11 fields (official sample market_status_krx).
H0STMKO0_FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD",
    "TRHT_YN",
    "TR_SUSP_REAS_CNTT",
    "MKOP_CLS_CODE",
    "ANTC_MKOP_CLS_CODE",
    "MRKT_TRTM_CLS_CODE",
    "DIVI_APP_CLS_CODE",
    "ISCD_STAT_CLS_CODE",
    "VI_CLS_CODE",
    "OVTM_VI_CLS_CODE",
    "EXCH_CLS_CODE",
)

LAYOUTS: dict[str, tuple[str, ...]] = {
    TR_TRADES: H0STCNT0_FIELDS,
    TR_BOOK: H0STASP0_FIELDS,
    TR_NXT_TRADES: H0STCNT0_FIELDS,
    TR_OFF_HOURS_TRADES: H0STCNT0_FIELDS,
    TR_OFF_HOURS_BOOK: H0STASP0_FIELDS,
    TR_EXPECTED: H0STCNT0_FIELDS,
    TR_STATUS: H0STMKO0_FIELDS,
}
_MKO = {name: i for i, name in enumerate(H0STMKO0_FIELDS)}
_CNT = {name: i for i, name in enumerate(H0STCNT0_FIELDS)}
_ASP = {name: i for i, name in enumerate(H0STASP0_FIELDS)}
# Field indexes of the 10 ask levels then the 10 bid levels, best first, each as price, quantity
_LEVELS = tuple(
    _ASP[f"{side}{suffix}{i}"] for side in ("ASKP", "BIDP") for i in range(1, 11) for suffix in ("", "_RSQN")
)
_levels_of = operator.itemgetter(*_LEVELS)


def _level_values(fields: list[str]) -> list[int]:
    """The 40 level numbers of an H0STASP0 record (see ``_LEVELS``): plain digits, as they nearly always are,
    converted in one pass; anything else field by field through :func:`parse_int` (its errors name the field)."""
    raw = _levels_of(fields)
    joined = "".join(raw)
    if joined.isdigit() and joined.isascii() and all(raw):
        return list(map(int, raw))
    return [parse_int(fields[i], field=H0STASP0_FIELDS[i]) for i in _LEVELS]


RealtimeEvent = Tick | OrderBook | ExpectedTrade | MarketStatus
#: One registration: (tr_id, tr_key).
Registration = tuple[str, str]


# --- errors ------------------------------------------------------------------------------------------------


class EncryptedFrame(BrokerProtocolError):
    """A ``1|...`` data frame: AES-encrypted TRs (order notices) are not handled by this client."""


class ApprovalKeyInUse(BrokerAuthError):
    """OPSP8996 ALREADY IN USE appkey: another session holds this app key's WebSocket."""


class ApprovalKeyRejected(BrokerAuthError):
    """The broker does not accept the approval key (unknown or expired): obtain a new one."""


# --- control frames ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ack:
    """A subscribe/unsubscribe acknowledgement (§6.2). ``iv`` / ``key`` are AES material: kept out of repr."""

    tr_id: str
    tr_key: str
    rt_cd: str
    msg_cd: str
    msg1: str
    encrypted: bool = False
    iv: str = field(default="", repr=False)
    key: str = field(default="", repr=False)

    @property
    def is_unsubscribe(self) -> bool:
        """KIS marks unsubscribe acks by ``msg1`` starting with "UNSUB" (the official client checks ``msg1[:5]``)."""
        return self.msg1.upper().startswith("UNSUB")


@dataclass(frozen=True, slots=True)
class PingPong:
    """A keep-alive (§6.3). ``raw`` is the exact text received: it is sent back unchanged."""

    raw: str
    datetime: str


ControlFrame = Ack | PingPong


def is_data_frame(text: str) -> bool:
    """True for ``0|...`` / ``1|...`` data frames, False for JSON control frames (first character ``{``)."""
    return text[:1] in ("0", "1")


def parse_control(text: str) -> ControlFrame:
    """Classify a JSON control frame; :class:`BrokerProtocolError` when it is neither an ack nor a PINGPONG."""
    try:
        msg = json.loads(text)
    except ValueError as exc:
        raise BrokerProtocolError(f"control frame is not JSON: {text[:80]!r}") from exc
    header = msg.get("header") if isinstance(msg, dict) else None
    if not isinstance(header, dict):
        raise BrokerProtocolError(f"control frame without header: {text[:80]!r}")
    tr_id = str(header.get("tr_id") or "")
    if tr_id == PINGPONG:
        return PingPong(raw=text, datetime=str(header.get("datetime") or ""))
    body = msg.get("body")
    if not isinstance(body, dict) or "msg_cd" not in body:
        raise BrokerProtocolError(f"control frame is neither an ack nor PINGPONG: {text[:80]!r}")
    found = body.get("output")
    output: dict[str, Any] = found if isinstance(found, dict) else {}
    return Ack(
        tr_id=tr_id,
        tr_key=str(header.get("tr_key") or ""),
        rt_cd=str(body.get("rt_cd") or "").strip(),
        msg_cd=str(body.get("msg_cd") or "").strip(),
        msg1=str(body.get("msg1") or "").strip(),
        encrypted=str(header.get("encrypt") or "N").upper() == "Y",
        iv=str(output.get("iv") or ""),
        key=str(output.get("key") or ""),
    )


def ack_error(ack: Ack, *, subscribe: bool) -> BrokerError | None:
    """The typed error an ack stands for, or None when the request's intent is fulfilled.

    Success: OPSP0000 / OPSP0001, OPSP0002 (already subscribed) for a subscribe, OPSP0003 (not subscribed)
    for an unsubscribe (the wanted state holds either way), and any other ``rt_cd == "0"``.
    """
    code, msg1 = ack.msg_cd, ack.msg1
    if code in (MSG_SUBSCRIBED, MSG_UNSUBSCRIBED):
        return None
    if subscribe and code == MSG_ALREADY_SUBSCRIBED:
        return None
    if not subscribe and code == MSG_NOT_SUBSCRIBED:
        return None
    detail = f"{code} {msg1}".strip()
    where = f"{ack.tr_id or '?'}/{ack.tr_key or '?'}"
    if code == MSG_MAX_SUBSCRIBE:
        return SubscriptionLimitExceeded(
            f"broker registration limit reached at {where}: {detail}", msg_cd=code, msg1=msg1
        )
    if code == MSG_KEY_IN_USE:
        return ApprovalKeyInUse(f"approval key / app key already in use: {detail}", msg_cd=code, msg1=msg1)
    if code == MSG_BAD_APPROVAL or "approval" in msg1.lower():
        return ApprovalKeyRejected(f"approval key refused: {detail}", msg_cd=code, msg1=msg1)
    if ack.rt_cd == "0":
        return None
    verb = "subscribe" if subscribe else "unsubscribe"
    return SubscriptionRefused(f"{verb} {where} refused: {detail}", msg_cd=code, msg1=msg1)


def subscription_message(approval_key: str, tr_id: str, tr_key: str, *, subscribe: bool, custtype: str = "P") -> str:
    """The §6.1 request: ``tr_type`` "1" subscribe / "2" unsubscribe. Contains the approval key: never log it."""
    return json.dumps(
        {
            "header": {
                "approval_key": approval_key,
                "custtype": custtype,
                "tr_type": "1" if subscribe else "2",
                "content-type": "utf-8",
            },
            "body": {"input": {"tr_id": tr_id, "tr_key": tr_key}},
        },
        separators=(",", ":"),
    )


# --- data frames -------------------------------------------------------------------------------------------


def split_records(text: str) -> tuple[str, list[list[str]]]:
    """``(tr_id, records)`` of a plain data frame whose TR has a known layout.

    Raises :class:`EncryptedFrame` for ``1|...`` and :class:`BrokerProtocolError` for a malformed header, an
    unknown tr_id, or a field count that is not ``count * N``.
    """
    parts = text.split("|", 3)
    if len(parts) != 4 or parts[0] not in ("0", "1"):
        raise BrokerProtocolError(f"not a data frame: {text[:40]!r}", kind="bad_frame")
    enc, tr_id, count_text, payload = parts
    if enc == "1":
        raise EncryptedFrame(f"encrypted {tr_id} frame: not supported by this client", kind="encrypted_frame")
    layout = LAYOUTS.get(tr_id)
    if layout is None:
        raise BrokerProtocolError(f"data frame for unsupported tr_id {tr_id!r}", kind="unknown_tr")
    if not count_text.isdigit():
        raise BrokerProtocolError(f"{tr_id}: record count {count_text!r} is not a number", kind="bad_frame")
    count, width = int(count_text), len(layout)
    fields = payload.split("^")
    if count < 1 or len(fields) % width != 0 or len(fields) // width != count:
        raise BrokerProtocolError(f"{tr_id}: {len(fields)} fields for {count} record(s) of {width}", kind="bad_frame")
    return tr_id, [fields[i * width : (i + 1) * width] for i in range(count)]


def parse_tick(fields: list[str], *, received_at: dt.datetime, venue: str = P.KRX) -> Tick:
    """One H0STCNT0 / H0NXCNT0 / H0STOUP0 record (46 fields) → :class:`Tick`. ``change`` / ``change_rate`` are
    signed by the sign code; ``phase`` from NEW_MKOP_CLS_CODE (``phase_of``), ``halted`` from TRHT_YN,
    ``vi_reference`` from VI_STND_PRC."""

    def get(name: str) -> str:
        return fields[_CNT[name]]

    day = parse_date(get("BSOP_DATE"), field="BSOP_DATE")
    clock = parse_hhmmss(get("STCK_CNTG_HOUR"), field="STCK_CNTG_HOUR")
    change_raw = parse_int(get("PRDY_VRSS"), field="PRDY_VRSS")
    sign = parse_sign(get("PRDY_VRSS_SIGN"))
    if sign is None:
        sign = PriceSign.UP if change_raw > 0 else PriceSign.DOWN if change_raw < 0 else PriceSign.UNCHANGED
    side_text = get("CCLD_DVSN").strip()
    side = TradeSide(int(side_text)) if side_text in ("1", "5") else None
    return Tick(
        code=get("MKSC_SHRN_ISCD").strip(),
        at=dt.datetime.combine(day, clock, tzinfo=KST),
        price=parse_int(get("STCK_PRPR"), field="STCK_PRPR", default=None),
        change=signed(change_raw, sign),
        sign=sign,
        change_rate=signed_decimal(parse_decimal(get("PRDY_CTRT"), field="PRDY_CTRT"), sign),
        volume=parse_int(get("CNTG_VOL"), field="CNTG_VOL"),
        cum_volume=parse_int(get("ACML_VOL"), field="ACML_VOL"),
        cum_value=parse_int(get("ACML_TR_PBMN"), field="ACML_TR_PBMN"),
        open=parse_int(get("STCK_OPRC"), field="STCK_OPRC"),
        high=parse_int(get("STCK_HGPR"), field="STCK_HGPR"),
        low=parse_int(get("STCK_LWPR"), field="STCK_LWPR"),
        ask1=parse_int(get("ASKP1"), field="ASKP1"),
        bid1=parse_int(get("BIDP1"), field="BIDP1"),
        side=side,
        session=get("HOUR_CLS_CODE").strip(),
        received_at=received_at,
        venue=venue,
        phase=phase_of(get("NEW_MKOP_CLS_CODE"), venue),
        halted=get("TRHT_YN").strip().upper() == "Y",
        vi_reference=parse_int(get("VI_STND_PRC"), field="VI_STND_PRC"),
    )


def parse_expected(fields: list[str], *, received_at: dt.datetime) -> ExpectedTrade:
    """One H0STANC0 record (the H0STCNT0 columns): STCK_PRPR the expected price, CNTG_VOL the expected quantity,
    HOUR_CLS_CODE the call (``CALL_BY_HOUR_CLS``; else the phase of NEW_MKOP_CLS_CODE)."""

    def get(name: str) -> str:
        return fields[_CNT[name]]

    day = parse_date(get("BSOP_DATE"), field="BSOP_DATE")
    clock = parse_hhmmss(get("STCK_CNTG_HOUR"), field="STCK_CNTG_HOUR")
    hour_cls = get("HOUR_CLS_CODE").strip()
    return ExpectedTrade(
        code=get("MKSC_SHRN_ISCD").strip(),
        at=dt.datetime.combine(day, clock, tzinfo=KST),
        price=parse_int(get("STCK_PRPR"), field="STCK_PRPR"),
        quantity=parse_int(get("CNTG_VOL"), field="CNTG_VOL"),
        phase=CALL_BY_HOUR_CLS.get(hour_cls) or phase_of(get("NEW_MKOP_CLS_CODE")),
        received_at=received_at,
    )


def parse_status(fields: list[str], *, received_at: dt.datetime, day: dt.date) -> MarketStatus:
    """One H0STMKO0 record (11 fields; no time: ``received_at``'s time of day on ``day``) → :class:`MarketStatus`."""

    def get(name: str) -> str:
        return fields[_MKO[name]].strip()

    vi = VI_BY_CODE.get(get("VI_CLS_CODE").upper(), "dynamic")
    phase = PHASE_BY_MKOP_CLS.get(get("MKOP_CLS_CODE"), "")
    if vi and phase in ("", P.CONTINUOUS):
        phase = P.VI_AUCTION
    local = received_at.astimezone(KST)
    return MarketStatus(
        code=get("MKSC_SHRN_ISCD"),
        at=dt.datetime.combine(day, local.time(), tzinfo=KST),
        phase=phase,
        halted=get("TRHT_YN").upper() == "Y",
        vi=vi,
        received_at=received_at,
    )


def parse_order_book(fields: list[str], *, received_at: dt.datetime, day: dt.date) -> OrderBook:
    """One H0STASP0 / H0STOAA0 record (59 fields) → :class:`OrderBook`; ``day`` supplies the date the frame lacks.
    While a call builds, ANTC_CNPR / ANTC_CNQN are its expected price and quantity (``expected_price`` > 0) and
    HOUR_CLS_CODE names the call (``CALL_BY_HOUR_CLS``)."""

    def num(name: str) -> int:
        return parse_int(fields[_ASP[name]], field=name)

    values = _level_values(fields)
    clock = parse_hhmmss(fields[_ASP["BSOP_HOUR"]], field="BSOP_HOUR")
    expected = max(0, num("ANTC_CNPR"))
    return OrderBook(
        code=fields[_ASP["MKSC_SHRN_ISCD"]].strip(),
        at=dt.datetime.combine(day, clock, tzinfo=KST),
        asks=tuple(zip(values[0:20:2], values[1:20:2], strict=True)),
        bids=tuple(zip(values[20:40:2], values[21:40:2], strict=True)),
        total_ask_qty=num("TOTAL_ASKP_RSQN"),
        total_bid_qty=num("TOTAL_BIDP_RSQN"),
        cum_volume=num("ACML_VOL"),
        session=fields[_ASP["HOUR_CLS_CODE"]].strip(),
        received_at=received_at,
        expected_price=expected,
        expected_qty=num("ANTC_CNQN") if expected else 0,
        phase=CALL_BY_HOUR_CLS.get(fields[_ASP["HOUR_CLS_CODE"]].strip(), "") if expected else "",
    )


def parse_frame(
    text: str, *, received_at: dt.datetime | None = None, book_date: dt.date | None = None
) -> list[RealtimeEvent]:
    """Every record of a plain data frame of a TR in ``LAYOUTS``, in frame order: trades (H0STCNT0, H0NXCNT0,
    H0STOUP0) → :class:`Tick`, books (H0STASP0, H0STOAA0) → :class:`OrderBook`, H0STANC0 → :class:`ExpectedTrade`,
    H0STMKO0 → :class:`MarketStatus`.

    ``received_at`` defaults to now (KST). Order-book records carry no date: ``book_date`` is used, else the
    KST date of ``received_at``. Raises :class:`BrokerProtocolError` (or its subclass :class:`EncryptedFrame`)
    for anything that does not parse; no partial list is returned.
    """
    when = received_at or dt.datetime.now(KST)
    tr_id, records = split_records(text)
    try:
        venue = TRADE_VENUES.get(tr_id)
        if venue is not None:
            return [parse_tick(rec, received_at=when, venue=venue) for rec in records]
        if tr_id == TR_EXPECTED:
            return [parse_expected(rec, received_at=when) for rec in records]
        day = book_date or when.astimezone(KST).date()
        if tr_id == TR_STATUS:
            return [parse_status(rec, received_at=when, day=day) for rec in records]
        return [parse_order_book(rec, received_at=when, day=day) for rec in records]
    except BrokerProtocolError as exc:
        raise BrokerProtocolError(f"{tr_id}: {exc}", kind="bad_record") from exc
