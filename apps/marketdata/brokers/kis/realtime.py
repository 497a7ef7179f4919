"""Pure parsing and message building for the KIS real-time WebSocket (kis-api.md §6). No I/O.

Frames the server sends are either

- data frames ``<enc>|<tr_id>|<count>|<payload>`` (first character ``0`` plain / ``1`` encrypted), parsed by
  :func:`parse_frame` into :class:`~apps.marketdata.brokers.base.Tick` /
  :class:`~apps.marketdata.brokers.base.OrderBook`, or
- JSON control frames (first character ``{``), classified by :func:`parse_control` into :class:`Ack` or
  :class:`PingPong`.

Invariants:

- the field layouts below are written from the reference (§6.5: 46 fields, §6.6: 59 fields), not from the
  sandbox; a test asserts both agree;
- a plain payload of ``count`` records has exactly ``count * N`` ``^``-separated fields (N per TR); anything
  else is a :class:`~apps.marketdata.brokers.base.BrokerProtocolError`, never a partial result;
- encrypted frames (``1|...``, only the order-notice TRs H0STCNI0/9 use them) are out of scope and raise
  :class:`EncryptedFrame`, so the caller can skip them with a log line.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from ..base import (
    KST,
    BrokerAuthError,
    BrokerBusinessError,
    BrokerError,
    BrokerProtocolError,
    BrokerTransientError,
    OrderBook,
    PriceSign,
    Tick,
    TradeSide,
)
from .parsing import parse_date, parse_decimal, parse_hhmmss, parse_int, parse_sign, signed, signed_decimal

TR_TRADES = "H0STCNT0"
TR_BOOK = "H0STASP0"
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

LAYOUTS: dict[str, tuple[str, ...]] = {TR_TRADES: H0STCNT0_FIELDS, TR_BOOK: H0STASP0_FIELDS}
_CNT = {name: i for i, name in enumerate(H0STCNT0_FIELDS)}
_ASP = {name: i for i, name in enumerate(H0STASP0_FIELDS)}

RealtimeEvent = Tick | OrderBook
#: One registration: (tr_id, tr_key).
Registration = tuple[str, str]


# --- errors ------------------------------------------------------------------------------------------------


class EncryptedFrame(BrokerProtocolError):
    """A ``1|...`` data frame: AES-encrypted TRs (order notices) are not handled by this client."""


class SubscriptionLimitExceeded(BrokerBusinessError):
    """More registrations than allowed: ``kind="local_limit"`` when refused here before sending,
    ``msg_cd="OPSP0008"`` when the broker refused it (MAX SUBSCRIBE OVER)."""


class SubscriptionRefused(BrokerBusinessError):
    """The broker refused a subscribe/unsubscribe with an error ack (``msg_cd`` / ``msg1`` set)."""


class ApprovalKeyInUse(BrokerAuthError):
    """OPSP8996 ALREADY IN USE appkey: another session holds this app key's WebSocket."""


class ApprovalKeyRejected(BrokerAuthError):
    """The broker does not accept the approval key (unknown or expired): obtain a new one."""


class RealtimeConnectionLost(BrokerTransientError):
    """The WebSocket closed (or could not be opened) while a request was outstanding."""


class AckTimeout(BrokerTransientError):
    """No acknowledgement for a subscribe/unsubscribe within the ack timeout."""


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
    output = body.get("output") if isinstance(body.get("output"), dict) else {}
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


def parse_tick(fields: list[str], *, received_at: dt.datetime) -> Tick:
    """One H0STCNT0 record (46 fields) → :class:`Tick`. ``change`` / ``change_rate`` are signed by the sign code."""

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
    )


def parse_order_book(fields: list[str], *, received_at: dt.datetime, day: dt.date) -> OrderBook:
    """One H0STASP0 record (59 fields) → :class:`OrderBook`; ``day`` supplies the date the frame lacks."""

    def num(name: str) -> int:
        return parse_int(fields[_ASP[name]], field=name)

    clock = parse_hhmmss(fields[_ASP["BSOP_HOUR"]], field="BSOP_HOUR")
    return OrderBook(
        code=fields[_ASP["MKSC_SHRN_ISCD"]].strip(),
        at=dt.datetime.combine(day, clock, tzinfo=KST),
        asks=tuple((num(f"ASKP{i}"), num(f"ASKP_RSQN{i}")) for i in range(1, 11)),
        bids=tuple((num(f"BIDP{i}"), num(f"BIDP_RSQN{i}")) for i in range(1, 11)),
        total_ask_qty=num("TOTAL_ASKP_RSQN"),
        total_bid_qty=num("TOTAL_BIDP_RSQN"),
        cum_volume=num("ACML_VOL"),
        session=fields[_ASP["HOUR_CLS_CODE"]].strip(),
        received_at=received_at,
    )


def parse_frame(
    text: str, *, received_at: dt.datetime | None = None, book_date: dt.date | None = None
) -> list[RealtimeEvent]:
    """Every record of a plain H0STCNT0 / H0STASP0 data frame, in frame order.

    ``received_at`` defaults to now (KST). Order-book records carry no date: ``book_date`` is used, else the
    KST date of ``received_at``. Raises :class:`BrokerProtocolError` (or its subclass :class:`EncryptedFrame`)
    for anything that does not parse; no partial list is returned.
    """
    when = received_at or dt.datetime.now(KST)
    tr_id, records = split_records(text)
    try:
        if tr_id == TR_TRADES:
            return [parse_tick(rec, received_at=when) for rec in records]
        day = book_date or when.astimezone(KST).date()
        return [parse_order_book(rec, received_at=when, day=day) for rec in records]
    except BrokerProtocolError as exc:
        raise BrokerProtocolError(f"{tr_id}: {exc}", kind="bad_record") from exc
