"""Pure functions turning KIS JSON (all values are strings) into typed results.

No I/O here. Every parser raises :class:`BrokerProtocolError` on a malformed value and skips empty
rows (``{}`` or rows whose key fields are blank, which chart TRs send for unknown symbols).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ..base import (
    KST,
    BrokerProtocolError,
    DailyBar,
    MarketDay,
    MinuteBar,
    PriceSign,
    Quote,
    UnknownSymbol,
)

_CODE_RE = re.compile(r"^(?:[0-9][0-9A-Z]{5}|Q[0-9]{6})$")
_INT_RE = re.compile(r"^[+-]?\d+(?:\.0*)?$")

Row = Mapping[str, Any]


def normalize_code(code: str) -> str:
    """A 6-character KRX short code (or ``Q`` + 6 digits for an ETN).

    Accepts surrounding spaces, lower case and the ``A`` prefix of the full code (``A005930``).
    Raises :class:`UnknownSymbol` for anything else, before any request is made.
    """
    text = str(code).strip().upper()
    if len(text) == 7 and text.startswith("A"):
        text = text[1:]
    if not _CODE_RE.match(text):
        raise UnknownSymbol(f"malformed stock code {code!r}", msg_cd="INVALID_CODE")
    return text


def parse_int(value: Any, *, field: str = "", default: int | None = 0) -> int:
    """``"71500"`` / ``"-500"`` / ``"+500"`` / ``"71500.00"`` → int; blank → ``default`` (or an error when None)."""
    if type(value) is str and value.isdigit() and value.isascii():  # most fields: plain digits (0-9 only)
        return int(value)
    if isinstance(value, bool):
        raise BrokerProtocolError(f"field {field or '?'} is a boolean")
    if isinstance(value, int):
        return value
    text = "" if value is None else str(value).strip().replace(",", "")
    if not text:
        if default is None:
            raise BrokerProtocolError(f"field {field or '?'} is empty")
        return default
    if not _INT_RE.match(text):
        raise BrokerProtocolError(f"field {field or '?'} is not an integer: {text!r}")
    return int(text.split(".", 1)[0])


def parse_decimal(value: Any, *, field: str = "") -> Decimal:
    """``"0.70"`` / ``"-1.25"`` → Decimal; blank → 0."""
    text = "" if value is None else str(value).strip().replace(",", "")
    if not text:
        return Decimal(0)
    try:
        result = Decimal(text)
    except InvalidOperation as exc:
        raise BrokerProtocolError(f"field {field or '?'} is not a number: {text!r}") from exc
    if not result.is_finite():
        raise BrokerProtocolError(f"field {field or '?'} is not finite: {text!r}")
    return result


def parse_sign(value: Any) -> PriceSign | None:
    """Sign code ``"1"``..``"5"`` → :class:`PriceSign`; blank → None; anything else is a protocol error."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    try:
        return PriceSign(int(text))
    except ValueError as exc:
        raise BrokerProtocolError(f"unknown sign code {text!r}") from exc


def signed(magnitude: int, sign: PriceSign | None) -> int:
    """Apply the sign code to a change that may or may not already carry a sign (``"-500"`` or ``"500"``)."""
    if sign is None:
        return magnitude
    return abs(magnitude) * sign.direction


def signed_decimal(magnitude: Decimal, sign: PriceSign | None) -> Decimal:
    if sign is None:
        return magnitude
    return abs(magnitude) * sign.direction


def parse_date(value: Any, *, field: str = "stck_bsop_date") -> dt.date:
    text = str(value or "").strip()
    try:
        if len(text) == 8 and text.isdigit() and text.isascii():  # the usual form, without strptime's cost
            return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return dt.datetime.strptime(text, "%Y%m%d").date()  # noqa: DTZ007 - a calendar date, no time zone
    except ValueError as exc:
        raise BrokerProtocolError(f"field {field} is not YYYYMMDD: {text!r}") from exc


def parse_hhmmss(value: Any, *, field: str = "stck_cntg_hour") -> dt.time:
    text = str(value or "").strip()
    if len(text) != 6 or not text.isdigit():
        raise BrokerProtocolError(f"field {field} is not HHMMSS: {text!r}")
    try:
        return dt.time(int(text[:2]), int(text[2:4]), int(text[4:]))
    except ValueError as exc:
        raise BrokerProtocolError(f"field {field} is not a time: {text!r}") from exc


def parse_kst_datetime(value: Any, *, field: str = "access_token_token_expired") -> dt.datetime:
    """``"2025-01-03 09:12:44"`` (KST) → aware datetime."""
    text = str(value or "").strip()
    try:
        naive = dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")  # noqa: DTZ007 - made aware on the next line
    except ValueError as exc:
        raise BrokerProtocolError(f"field {field} is not 'YYYY-MM-DD HH:MM:SS': {text!r}") from exc
    return naive.replace(tzinfo=KST)


def is_empty_row(row: Any, key: str) -> bool:
    """True for ``{}``, non-dicts and rows whose ``key`` field is blank."""
    return not isinstance(row, Mapping) or not str(row.get(key) or "").strip()


def rows_of(body: Mapping[str, Any], name: str) -> list[Row]:
    """``body[name]`` as a list of rows (an object becomes one row; missing/None → empty)."""
    value = body.get(name)
    if value is None or value == "":
        return []
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return list(value)
    raise BrokerProtocolError(f"{name} is neither an object nor an array")


# --- TR parsers ------------------------------------------------------------------------------------


def parse_quote(code: str, output: Any, *, fetched_at: dt.datetime) -> Quote:
    """FHKST01010100 ``output`` → :class:`Quote`.

    An unknown symbol may come back as ``rt_cd "0"`` with zeros (kis-api.md §3.2): a blank or zero
    ``stck_prpr`` raises :class:`UnknownSymbol`.
    """
    if not isinstance(output, Mapping) or parse_int(output.get("stck_prpr"), field="stck_prpr") <= 0:
        raise UnknownSymbol(f"unknown stock code {code}", msg_cd="NO_DATA")
    sign = parse_sign(output.get("prdy_vrss_sign")) or PriceSign.UNCHANGED
    return Quote(
        code=code,
        price=parse_int(output.get("stck_prpr"), field="stck_prpr"),
        change=signed(parse_int(output.get("prdy_vrss"), field="prdy_vrss"), sign),
        sign=sign,
        change_rate=signed_decimal(parse_decimal(output.get("prdy_ctrt"), field="prdy_ctrt"), sign),
        open=parse_int(output.get("stck_oprc"), field="stck_oprc"),
        high=parse_int(output.get("stck_hgpr"), field="stck_hgpr"),
        low=parse_int(output.get("stck_lwpr"), field="stck_lwpr"),
        volume=parse_int(output.get("acml_vol"), field="acml_vol"),
        trade_value=parse_int(output.get("acml_tr_pbmn"), field="acml_tr_pbmn"),
        upper_limit=parse_int(output.get("stck_mxpr"), field="stck_mxpr"),
        lower_limit=parse_int(output.get("stck_llam"), field="stck_llam"),
        base_price=parse_int(output.get("stck_sdpr"), field="stck_sdpr"),
        fetched_at=fetched_at.astimezone(KST),
    )


def _daily_bar(code: str, row: Row, *, with_value: bool) -> DailyBar:
    sign = parse_sign(row.get("prdy_vrss_sign"))
    return DailyBar(
        code=code,
        date=parse_date(row.get("stck_bsop_date")),
        open=parse_int(row.get("stck_oprc"), field="stck_oprc"),
        high=parse_int(row.get("stck_hgpr"), field="stck_hgpr"),
        low=parse_int(row.get("stck_lwpr"), field="stck_lwpr"),
        close=parse_int(row.get("stck_clpr"), field="stck_clpr"),
        volume=parse_int(row.get("acml_vol"), field="acml_vol"),
        trade_value=parse_int(row.get("acml_tr_pbmn"), field="acml_tr_pbmn") if with_value else None,
        change=signed(parse_int(row.get("prdy_vrss"), field="prdy_vrss"), sign),
        sign=sign,
    )


def parse_chart_daily_rows(code: str, rows: Iterable[Any]) -> list[DailyBar]:
    """FHKST03010100 ``output2`` (newest first, may contain ``{}``) → bars in the same order."""
    return [_daily_bar(code, r, with_value=True) for r in rows if not is_empty_row(r, "stck_bsop_date")]


def parse_daily_price_rows(code: str, rows: Iterable[Any]) -> list[DailyBar]:
    """FHKST01010400 ``output`` (newest first) → bars (no trade value in this TR)."""
    return [_daily_bar(code, r, with_value=False) for r in rows if not is_empty_row(r, "stck_bsop_date")]


def parse_minute_rows(code: str, rows: Iterable[Any]) -> list[MinuteBar]:
    """FHKST03010200 ``output2`` (newest first) → minute bars in the same order."""
    bars: list[MinuteBar] = []
    for row in rows:
        if is_empty_row(row, "stck_cntg_hour") or is_empty_row(row, "stck_bsop_date"):
            continue
        day = parse_date(row.get("stck_bsop_date"))
        at = dt.datetime.combine(day, parse_hhmmss(row.get("stck_cntg_hour")), tzinfo=KST)
        bars.append(
            MinuteBar(
                code=code,
                at=at,
                open=parse_int(row.get("stck_oprc"), field="stck_oprc"),
                high=parse_int(row.get("stck_hgpr"), field="stck_hgpr"),
                low=parse_int(row.get("stck_lwpr"), field="stck_lwpr"),
                close=parse_int(row.get("stck_prpr"), field="stck_prpr"),
                volume=parse_int(row.get("cntg_vol"), field="cntg_vol"),
                cum_trade_value=parse_int(row.get("acml_tr_pbmn"), field="acml_tr_pbmn"),
            )
        )
    return bars


def parse_yn(value: Any, *, field: str) -> bool:
    """``"Y"`` / ``"N"`` → bool; anything else is a protocol error (a guess would corrupt the calendar)."""
    text = str(value or "").strip().upper()
    if text not in ("Y", "N"):
        raise BrokerProtocolError(f"field {field} is not Y/N: {text!r}")
    return text == "Y"


def parse_market_days(rows: Iterable[Any]) -> list[MarketDay]:
    """CTCA0903R ``output`` (one row per date, oldest first) → :class:`MarketDay` s; empty rows are skipped."""
    days: list[MarketDay] = []
    for row in rows:
        if is_empty_row(row, "bass_dt"):
            continue
        days.append(
            MarketDay(
                date=parse_date(row.get("bass_dt"), field="bass_dt"),
                weekday_code=str(row.get("wday_dvsn_cd") or "").strip(),
                business_day=parse_yn(row.get("bzdy_yn"), field="bzdy_yn"),
                trading_day=parse_yn(row.get("tr_day_yn"), field="tr_day_yn"),
                is_open=parse_yn(row.get("opnd_yn"), field="opnd_yn"),
                settlement_day=parse_yn(row.get("sttl_day_yn"), field="sttl_day_yn"),
            )
        )
    return days


def parse_token(body: Any, *, now: dt.datetime) -> tuple[str, dt.datetime]:
    """tokenP response → (access_token, expiry). Relies on ``access_token_token_expired`` (§2.1);
    ``expires_in`` is used only when that field is missing."""
    if not isinstance(body, Mapping) or not str(body.get("access_token") or "").strip():
        raise BrokerProtocolError("token response without access_token")
    token = str(body["access_token"]).strip()
    if body.get("access_token_token_expired"):
        return token, parse_kst_datetime(body["access_token_token_expired"])
    seconds = parse_int(body.get("expires_in"), field="expires_in", default=None)
    return token, (now + dt.timedelta(seconds=seconds)).astimezone(KST)


def is_more(tr_cont: str | None) -> bool:
    """Response header ``tr_cont``: F/M = more pages follow, D/E/blank = last page (§3.3)."""
    return (tr_cont or "").strip().upper() in ("F", "M")
