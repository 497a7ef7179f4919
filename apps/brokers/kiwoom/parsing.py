"""Pure functions turning Kiwoom REST / WebSocket JSON into typed results (kiwoom-api.md Part A). No I/O.

Number formats (§A3): every value is a JSON string. Quote and chart prices carry a direction sign
(``"+61300"``, ``"-78800"``): the sign is up/down versus the previous close, never a negative price, so
prices are ``abs()``; changes (``pred_pre`` ``"-600"``) and rates (``"+0.16"``) keep their sign. Account TRs
and condition search results are zero-padded with the sign inside the width (``"-00000000000084"``,
``"000000002.98"``, ``"+00002500"``).

Codes: inputs are ``005930`` (KRX), ``005930_NX`` (NXT) or ``005930_AL`` (SOR); several outputs prefix a
one-letter type (``A005930``: A stock, J ELW, Q ETN). :func:`strip_code` turns every form into the six
characters Hoga uses.

Errors (§A5): a generic ``return_code`` with the specific code inside ``return_msg`` as ``[NNNN:...]`` in
REST and ``CODE=NNNN`` in WebSocket messages; :func:`error_code` extracts either.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ..base import (
    KST,
    AccessToken,
    BrokerProtocolError,
    ConditionAlert,
    ConditionHit,
    ConditionInfo,
    DailyBar,
    MinuteBar,
    OrderBook,
    PriceSign,
    Quote,
    Tick,
    TradeSide,
    UnknownSymbol,
)

Row = Mapping[str, Any]
RealEvent = Tick | OrderBook | ConditionAlert

#: Real types (§A6).
REAL_TRADE = "0B"
REAL_BOOK = "0D"
REAL_CONDITION = "02"

_CODE_RE = re.compile(r"^[0-9][0-9A-Z]{5}$")
_NUMBER_RE = re.compile(r"^[+-]?\d+(?:\.\d*)?$")
_REST_CODE_RE = re.compile(r"\[(\d{4}):")
_WS_CODE_RE = re.compile(r"CODE=(\w+)")
#: Stock-type prefixes of output codes (§A3): A 주식, J ELW, Q ETN.
_TYPE_PREFIXES = ("A", "J", "Q")
#: Suffixes of input codes (§A3): NXT and SOR (통합).
_MARKET_SUFFIXES = ("_NX", "_AL")


# --- codes ---------------------------------------------------------------------------------------------


def strip_code(value: Any) -> str:
    """``A005930`` / ``005930_AL`` / ``005930_NX`` / `` 005930 `` → ``005930``.

    Raises :class:`BrokerProtocolError` when what is left is not a 6-character stock code.
    """
    text = "" if value is None else str(value).strip().upper()
    for suffix in _MARKET_SUFFIXES:
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    if len(text) == 7 and text[0] in _TYPE_PREFIXES:
        text = text[1:]
    if not _CODE_RE.match(text):
        raise BrokerProtocolError(f"not a stock code: {value!r}")
    return text


def normalize_code(code: Any) -> str:
    """An input stock code as sent in ``stk_cd`` (6 characters); :class:`UnknownSymbol` before any request."""
    try:
        return strip_code(code)
    except BrokerProtocolError:
        raise UnknownSymbol(f"malformed stock code {code!r}", msg_cd="INVALID_CODE") from None


# --- numbers -------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip().replace(",", "")


def parse_number(value: Any, *, field: str = "") -> Decimal:
    """Any signed, possibly zero-padded numeric string → Decimal (blank → 0). ``"-0"`` is 0."""
    text = _text(value)
    if not text:
        return Decimal(0)
    if not _NUMBER_RE.match(text):
        raise BrokerProtocolError(f"field {field or '?'} is not a number: {text!r}")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid literals
        raise BrokerProtocolError(f"field {field or '?'} is not a number: {text!r}") from exc


def parse_int(value: Any, *, field: str = "") -> int:
    """Signed integer (``"+600"``, ``"-00000000000084"`` → -84, ``"000000260000"`` → 260000); blank → 0."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(parse_number(value, field=field))


def parse_price(value: Any, *, field: str = "") -> int:
    """A direction-signed price (``"+61300"``, ``"-78800"``, ``"61300"``) → its absolute value in KRW."""
    return abs(parse_int(value, field=field))


def parse_signed_price(value: Any, *, field: str = "") -> tuple[int, int]:
    """``"+61300"`` → (61300, 1); ``"-78800"`` → (78800, -1); ``"61300"`` → (61300, 0)."""
    text = _text(value)
    amount = parse_price(text, field=field)
    direction = 1 if text.startswith("+") else -1 if text.startswith("-") else 0
    return amount, (direction if amount else 0)


def parse_rate(value: Any, *, field: str = "") -> Decimal:
    """A signed percentage (``"+0.16"``, ``"-0.42"``) → Decimal."""
    return parse_number(value, field=field)


def parse_sign(value: Any) -> PriceSign | None:
    """``pre_sig`` / ``pred_pre_sig`` / FID 25 (``1`` 상한 … ``5`` 하락) → PriceSign; blank → None."""
    text = _text(value)
    if not text:
        return None
    try:
        return PriceSign(int(text))
    except ValueError:
        raise BrokerProtocolError(f"unknown sign code {text!r}") from None


def sign_from_change(change: int) -> PriceSign:
    return PriceSign.UP if change > 0 else PriceSign.DOWN if change < 0 else PriceSign.UNCHANGED


def parse_account_number(value: Any, *, field: str = "") -> Decimal:
    """Zero-padded account amounts (``"000000000017534"``, ``"-00000000000084"``, ``"000000002.98"``)."""
    return parse_number(value, field=field)


# --- dates and times -------------------------------------------------------------------------------------


def parse_date(value: Any, *, field: str = "dt") -> dt.date:
    text = _text(value)
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()  # noqa: DTZ007 - a calendar date, no time zone
    except ValueError:
        raise BrokerProtocolError(f"field {field} is not YYYYMMDD: {text!r}") from None


def parse_hhmmss(value: Any, *, field: str = "20") -> dt.time:
    text = _text(value)
    if len(text) != 6 or not text.isdigit():
        raise BrokerProtocolError(f"field {field} is not HHMMSS: {text!r}")
    hour, minute, second = int(text[:2]), int(text[2:4]), int(text[4:])
    if hour > 23 or minute > 59 or second > 59:
        raise BrokerProtocolError(f"field {field} is not a time: {text!r}")
    return dt.time(hour, minute, second)


def parse_kst_stamp(value: Any, *, field: str) -> dt.datetime:
    """``YYYYMMDDHHMMSS`` in KST (``expires_dt``, ``cntr_tm``) → aware datetime."""
    text = _text(value)
    try:
        return dt.datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=KST)
    except ValueError:
        raise BrokerProtocolError(f"field {field} is not YYYYMMDDHHMMSS: {text!r}") from None


# --- errors ------------------------------------------------------------------------------------------------


def error_code(message: Any) -> str:
    """The specific code in a REST ``[NNNN:...]`` or a WebSocket ``CODE=NNNN`` message, else ``""``."""
    text = "" if message is None else str(message)
    match = _REST_CODE_RE.search(text) or _WS_CODE_RE.search(text)
    return match.group(1) if match else ""


def return_code(body: Mapping[str, Any]) -> int:
    """``return_code`` as int (0 = OK); a missing code counts as 0, an unparsable one is a protocol error."""
    raw = body.get("return_code", 0)
    try:
        return int(str(raw).strip() or "0")
    except ValueError:
        raise BrokerProtocolError(f"return_code is not an integer: {raw!r}") from None


# --- token -------------------------------------------------------------------------------------------------


def parse_token(body: Any, *, now: dt.datetime) -> AccessToken:
    """au10001 response → AccessToken. ``token`` (not access_token), ``expires_dt`` KST ``YYYYMMDDHHMMSS``,
    ``token_type`` compared case-insensitively (§A2)."""
    if not isinstance(body, Mapping):
        raise BrokerProtocolError("token response is not a JSON object")
    token = str(body.get("token") or "").strip()
    if not token:
        raise BrokerProtocolError("token response without token")
    scheme = str(body.get("token_type") or "bearer").strip().lower()
    if scheme != "bearer":
        raise BrokerProtocolError(f"unexpected token_type {scheme!r}")
    expires_at = parse_kst_stamp(body.get("expires_dt"), field="expires_dt")
    if expires_at <= now:
        raise BrokerProtocolError("token already expired on arrival")
    return AccessToken(token=token, expires_at=expires_at, issued_at=now)


# --- REST TRs ----------------------------------------------------------------------------------------------


def rows_of(body: Mapping[str, Any], name: str) -> list[Row]:
    """``body[name]`` as a list of dict rows (missing/None → empty; a non-list is a protocol error)."""
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BrokerProtocolError(f"{name} is not a list")
    return [row for row in value if isinstance(row, Mapping) and row]


def parse_quote(code: str, body: Row, *, fetched_at: dt.datetime) -> Quote:
    """ka10001 (flat body) → Quote. ``trade_value`` is ``trde_prica`` (백만원 → KRW) when present, else 0."""
    price = parse_price(body.get("cur_prc"), field="cur_prc")
    if price <= 0:
        raise UnknownSymbol(f"no price for {code}", msg_cd="NO_DATA")
    change = parse_int(body.get("pred_pre"), field="pred_pre")
    sign = parse_sign(body.get("pre_sig")) or sign_from_change(change)
    change = abs(change) * sign.direction
    return Quote(
        code=code,
        price=price,
        change=change,
        sign=sign,
        change_rate=parse_rate(body.get("flu_rt"), field="flu_rt"),
        open=parse_price(body.get("open_pric"), field="open_pric"),
        high=parse_price(body.get("high_pric"), field="high_pric"),
        low=parse_price(body.get("low_pric"), field="low_pric"),
        volume=parse_int(body.get("trde_qty"), field="trde_qty"),
        trade_value=parse_int(body.get("trde_prica"), field="trde_prica") * 1_000_000,
        upper_limit=parse_price(body.get("upl_pric"), field="upl_pric"),
        lower_limit=parse_price(body.get("lst_pric"), field="lst_pric"),
        base_price=parse_price(body.get("base_pric"), field="base_pric"),
        fetched_at=fetched_at,
    )


def parse_daily_rows(code: str, rows: Iterable[Row]) -> list[DailyBar]:
    """ka10081 ``stk_dt_pole_chart_qry`` (newest first) → DailyBar in the same order.

    ``trde_prica`` is in 백만원 (§A4) → KRW. Rows without ``dt`` are skipped.
    """
    bars = []
    for row in rows:
        if not _text(row.get("dt")):
            continue
        change = parse_int(row.get("pred_pre"), field="pred_pre")
        sign = parse_sign(row.get("pred_pre_sig"))
        if sign is not None:
            change = abs(change) * sign.direction
        bars.append(
            DailyBar(
                code=code,
                date=parse_date(row.get("dt")),
                open=parse_price(row.get("open_pric"), field="open_pric"),
                high=parse_price(row.get("high_pric"), field="high_pric"),
                low=parse_price(row.get("low_pric"), field="low_pric"),
                close=parse_price(row.get("cur_prc"), field="cur_prc"),
                volume=parse_int(row.get("trde_qty"), field="trde_qty"),
                trade_value=parse_int(row.get("trde_prica"), field="trde_prica") * 1_000_000,
                change=change,
                sign=sign,
            )
        )
    return bars


def parse_minute_rows(code: str, rows: Iterable[Row]) -> list[MinuteBar]:
    """ka10080 ``stk_min_pole_chart_qry`` (newest first, signed prices) → MinuteBar in the same order.

    ka10080 has no traded value per row (§A4): ``cum_trade_value`` is 0 for these bars.
    """
    bars = []
    for row in rows:
        if not _text(row.get("cntr_tm")):
            continue
        bars.append(
            MinuteBar(
                code=code,
                at=parse_kst_stamp(row.get("cntr_tm"), field="cntr_tm"),
                open=parse_price(row.get("open_pric"), field="open_pric"),
                high=parse_price(row.get("high_pric"), field="high_pric"),
                low=parse_price(row.get("low_pric"), field="low_pric"),
                close=parse_price(row.get("cur_prc"), field="cur_prc"),
                volume=parse_int(row.get("trde_qty"), field="trde_qty"),
                cum_trade_value=0,
            )
        )
    return bars


# --- WebSocket: REAL pushes (§A6) --------------------------------------------------------------------------


def _values(entry: Row) -> Mapping[str, Any]:
    values = entry.get("values")
    if not isinstance(values, Mapping):
        raise BrokerProtocolError("REAL entry without a values object")
    return values


def _at(values: Mapping[str, Any], fid: str, trade_date: dt.date) -> dt.datetime:
    return dt.datetime.combine(trade_date, parse_hhmmss(values.get(fid), field=fid), tzinfo=KST)


def tick_from_values(
    code: str, values: Mapping[str, Any], *, received_at: dt.datetime, trade_date: dt.date | None = None
) -> Tick:
    """0B 주식체결 FIDs (§A6) → Tick. The frame has no date: ``at`` is FID 20 on ``trade_date`` (the market
    clock's trading date, which differs from the wall date on a replayed market), else the KST date of reception.

    FID 15 (거래량) is signed: ``+`` buyer-initiated, ``-`` seller-initiated. FID 14 (누적거래대금) is in 백만원
    as in OpenAPI+ (unit UNCONFIRMED for the REST push) and becomes KRW. ``session`` is FID 290 (장구분) as sent.
    """
    price, _direction = parse_signed_price(values.get("10"), field="10")
    if price <= 0:
        raise BrokerProtocolError(f"0B for {code} without a price")
    change = parse_int(values.get("11"), field="11")
    sign = parse_sign(values.get("25")) or sign_from_change(change)
    volume_text = _text(values.get("15"))
    side = TradeSide.BUY if volume_text.startswith("+") else TradeSide.SELL if volume_text.startswith("-") else None
    return Tick(
        code=code,
        at=_at(values, "20", trade_date or received_at.astimezone(KST).date()),
        price=price,
        change=abs(change) * sign.direction,
        sign=sign,
        change_rate=parse_rate(values.get("12"), field="12"),
        volume=abs(parse_int(volume_text, field="15")),
        cum_volume=parse_int(values.get("13"), field="13"),
        cum_value=parse_int(values.get("14"), field="14") * 1_000_000,
        open=parse_price(values.get("16"), field="16"),
        high=parse_price(values.get("17"), field="17"),
        low=parse_price(values.get("18"), field="18"),
        ask1=parse_price(values.get("27"), field="27"),
        bid1=parse_price(values.get("28"), field="28"),
        side=side,
        session=_text(values.get("290")),
        received_at=received_at,
    )


def book_from_values(
    code: str, values: Mapping[str, Any], *, received_at: dt.datetime, trade_date: dt.date | None = None
) -> OrderBook:
    """0D 주식호가잔량 FIDs (§A6) → OrderBook: asks 41–50 / 61–70, bids 51–60 / 71–80, totals 121 / 125,
    FID 13 누적거래량, FID 215 장운영구분 as ``session``. Empty levels (``"-0"``, ``"0"``, absent) are ``(0, 0)``."""
    asks = tuple(
        (parse_price(values.get(str(40 + i)), field=str(40 + i)), parse_int(values.get(str(60 + i)), field=str(60 + i)))
        for i in range(1, 11)
    )
    bids = tuple(
        (parse_price(values.get(str(50 + i)), field=str(50 + i)), parse_int(values.get(str(70 + i)), field=str(70 + i)))
        for i in range(1, 11)
    )
    return OrderBook(
        code=code,
        at=_at(values, "21", trade_date or received_at.astimezone(KST).date()),
        asks=tuple((p, abs(q)) if p else (0, 0) for p, q in asks),
        bids=tuple((p, abs(q)) if p else (0, 0) for p, q in bids),
        total_ask_qty=abs(parse_int(values.get("121"), field="121")),
        total_bid_qty=abs(parse_int(values.get("125"), field="125")),
        cum_volume=parse_int(values.get("13"), field="13"),
        session=_text(values.get("215")),
        received_at=received_at,
    )


def condition_alert(
    seq: Any, code: Any, kind: Any, hhmmss: Any, *, received_at: dt.datetime, trade_date: dt.date | None = None
) -> ConditionAlert:
    """One condition event from its parts (REAL 02 FIDs 841 / 9001 / 843 / 20, or OnReceiveRealCondition).

    ``kind`` ``I`` → ``"IN"`` (편입), ``D`` → ``"OUT"`` (이탈); ``IN``/``OUT`` are accepted as well.
    """
    seq_text = _text(seq)
    if not seq_text:
        raise BrokerProtocolError("condition alert without a condition seq (841)")
    kind_text = _text(kind).upper()
    kinds = {"I": "IN", "IN": "IN", "D": "OUT", "OUT": "OUT"}
    if kind_text not in kinds:
        raise BrokerProtocolError(f"condition alert kind (843) is not I/D: {kind_text!r}")
    received = received_at.astimezone(KST)
    at = (
        dt.datetime.combine(trade_date or received.date(), parse_hhmmss(hhmmss, field="20"), tzinfo=KST)
        if _text(hhmmss)
        else received
    )
    return ConditionAlert(seq=seq_text, code=strip_code(code), kind=kinds[kind_text], at=at, received_at=received_at)


def parse_real(
    message: Row, *, received_at: dt.datetime, trade_date: dt.date | None = None
) -> tuple[list[RealEvent], list[str]]:
    """A ``REAL`` frame (``data`` may batch several entries) → (events, errors).

    Types 0B / 0D / 02 become Tick / OrderBook / ConditionAlert; other types are ignored. An entry that
    does not parse is reported in ``errors`` (one line each) and the others are still returned. Times carry
    no date: they are placed on ``trade_date`` when given (see :func:`tick_from_values`).
    """
    data = message.get("data")
    if not isinstance(data, list):
        return [], ["REAL frame without a data list"]
    events: list[RealEvent] = []
    errors: list[str] = []
    for entry in data:
        if not isinstance(entry, Mapping):
            errors.append("REAL entry is not an object")
            continue
        kind = _text(entry.get("type"))
        try:
            if kind == REAL_TRADE:
                events.append(
                    tick_from_values(
                        strip_code(entry.get("item")), _values(entry), received_at=received_at, trade_date=trade_date
                    )
                )
            elif kind == REAL_BOOK:
                events.append(
                    book_from_values(
                        strip_code(entry.get("item")), _values(entry), received_at=received_at, trade_date=trade_date
                    )
                )
            elif kind == REAL_CONDITION:
                values = _values(entry)
                events.append(
                    condition_alert(
                        values.get("841"),
                        values.get("9001") or entry.get("item"),
                        values.get("843"),
                        values.get("20"),
                        received_at=received_at,
                        trade_date=trade_date,
                    )
                )
        except BrokerProtocolError as exc:
            errors.append(f"{kind or '?'} {entry.get('item')!r}: {exc}")
    return events, errors


# --- WebSocket: condition search (§A7) ---------------------------------------------------------------------


def parse_condition_list(message: Row) -> list[ConditionInfo]:
    """CNSRLST ``data``: ``[[seq, name], ...]`` (``{"seq":..,"name":..}`` objects accepted too)."""
    data = message.get("data") or []
    if not isinstance(data, list):
        raise BrokerProtocolError("CNSRLST data is not a list")
    result = []
    for item in data:
        if isinstance(item, Mapping):
            seq, name = item.get("seq"), item.get("name")
        elif isinstance(item, list | tuple) and len(item) >= 2:
            seq, name = item[0], item[1]
        else:
            raise BrokerProtocolError(f"CNSRLST entry is not [seq, name]: {item!r}")
        seq_text = _text(seq)
        if not seq_text:
            raise BrokerProtocolError("CNSRLST entry without a seq")
        result.append(ConditionInfo(seq=seq_text, name=str(name or "").strip()))
    return result


def parse_condition_hits(message: Row) -> list[ConditionHit]:
    """CNSRREQ ``search_type`` 0 ``data`` rows: 9001 code (``A000660``), 302 name, 10 price, 12 rate, 13 volume.

    Values are zero-padded with the sign inside the width (``"+00000126"``). FID 12 is taken as the rate in
    percent when it has a decimal point, else as the rate ×100 (the inferred layout of §A7).
    """
    data = message.get("data") or []
    if not isinstance(data, list):
        raise BrokerProtocolError("CNSRREQ data is not a list")
    hits = []
    for row in data:
        if not isinstance(row, Mapping):
            raise BrokerProtocolError("CNSRREQ row is not an object")
        rate_text = _text(row.get("12"))
        rate = parse_number(rate_text, field="12")
        if rate_text and "." not in rate_text:
            rate = rate / 100
        hits.append(
            ConditionHit(
                code=strip_code(row.get("9001") or row.get("jmcode")),
                name=str(row.get("302") or "").strip(),
                price=parse_price(row.get("10"), field="10"),
                change_rate=rate,
                volume=abs(parse_int(row.get("13"), field="13")),
            )
        )
    return hits


def parse_condition_codes(message: Row) -> list[str]:
    """CNSRREQ ``search_type`` 1 initial response ``data``: ``[{"jmcode": "A005930"}, ...]`` → codes."""
    data = message.get("data") or []
    if not isinstance(data, list):
        raise BrokerProtocolError("CNSRREQ data is not a list")
    return [strip_code(row.get("jmcode") or row.get("9001")) for row in data if isinstance(row, Mapping)]
