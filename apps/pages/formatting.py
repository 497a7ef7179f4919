"""Display formats of the pages: KRW with thousands separators, signed changes with ▲/▼, KST times.

Korean convention: a rise is red and marked ▲, a fall is blue and marked ▼ (CSS classes ``up`` / ``down``).
Pure functions, used by the template filters in ``templatetags/hoga.py`` and by the tests.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from apps.marketdata.calendar import KST

DASH = "—"  # shown for a value that is not known (never a made-up zero)


def _number(value) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def krw(value) -> str:
    """``1234567`` -> ``"1,234,567"`` (whole won, half up); unknown -> ``"—"``."""
    number = _number(value)
    if number is None:
        return DASH
    return f"{int(number.quantize(Decimal(1), rounding=ROUND_HALF_UP)):,}"


def krw_signed(value) -> str:
    """``1500`` -> ``"+1,500"``, ``-1500`` -> ``"-1,500"``, ``0`` -> ``"0"``."""
    number = _number(value)
    if number is None:
        return DASH
    whole = int(number.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return f"+{whole:,}" if whole > 0 else f"{whole:,}"


def pct_signed(value, places: int = 2) -> str:
    """``1.234`` -> ``"+1.23%"``, ``-0.5`` -> ``"-0.50%"``, ``0`` -> ``"0.00%"``."""
    number = _number(value)
    if number is None:
        return DASH
    rounded = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = f"{rounded:.{places}f}%"
    return f"+{text}" if rounded > 0 else text


def direction(value) -> str:
    """CSS class of a change: ``"up"`` (red), ``"down"`` (blue) or ``""``."""
    number = _number(value)
    if number is None or number == 0:
        return ""
    return "up" if number > 0 else "down"


def arrow(value) -> str:
    """``"▲"`` for a rise, ``"▼"`` for a fall, ``""`` otherwise."""
    return {"up": "▲", "down": "▼"}.get(direction(value), "")


def change_text(value) -> str:
    """A change as shown in a quote table: ``"▲ 1,500"``, ``"▼ 700"``, ``"0"``."""
    number = _number(value)
    if number is None:
        return DASH
    mark = arrow(number)
    return f"{mark} {krw(abs(number))}" if mark else "0"


def as_kst(value) -> dt.datetime | None:
    """An aware datetime (or ISO 8601 text) in Asia/Seoul; naive datetimes are taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(KST)


def kst(value, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """``"2026-02-20 09:00:05 KST"``; unknown -> ``"—"``."""
    moment = as_kst(value)
    return f"{moment.strftime(fmt)} KST" if moment else DASH


def kst_time(value) -> str:
    """``"09:00:05"`` (KST, time of day only)."""
    moment = as_kst(value)
    return moment.strftime("%H:%M:%S") if moment else DASH
