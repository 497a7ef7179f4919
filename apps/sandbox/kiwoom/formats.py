"""Kiwoom number formats (kiwoom-api.md A3, A7): every value is a JSON string.

- Quote/chart prices carry a direction sign against the previous close: ``"+61300"``, ``"-78800"``,
  unsigned when unchanged (the sign is not a negative price).
- Changes and rates are signed (``"+600"``, ``"-0.42"``); zero is unsigned (``"0"``, ``"0.00"``).
- Sign codes (``pre_sig``/``pred_pre_sig``/FID 25): 1 상한, 2 상승, 3 보합, 4 하한, 5 하락 — the same
  numbering as KIS's ``prdy_vrss_sign``, so ``apps.sandbox.quotes.sign_code`` is reused.
- Condition-search (CNSRREQ search_type 0) numbers are zero-padded to 9 characters with the sign inside
  the width (``"000201500"``, ``"+00002500"``); the rate there is ×100 (``"+00000126"`` = +1.26 %).
"""

from __future__ import annotations

from apps.sandbox.quotes import sign_code

__all__ = ["padded", "price", "rate", "rate_x100", "sign_code", "signed", "ymd_hms"]


def signed(value: int) -> str:
    """``+N`` / ``-N`` / ``0``."""
    if value > 0:
        return f"+{value}"
    return str(value)


def price(value: int, prev_close: int) -> str:
    """A price with its direction sign against ``prev_close`` (0 stays ``"0"``)."""
    if value == 0 or value == prev_close:
        return str(value)
    return f"+{value}" if value > prev_close else f"-{value}"


def rate(change: int, base: int) -> str:
    """``change / base`` in percent with 2 decimals, signed (``"0.00"`` when unchanged or base is 0)."""
    if not base or not change:
        return "0.00"
    value = round(change / base * 100, 2)
    if value == 0:
        return "0.00"
    return f"{value:+.2f}"


def rate_x100(change: int, base: int) -> int:
    """``change / base`` in hundredths of a percent (integer, rounded half away from zero)."""
    if not base:
        return 0
    scaled = abs(change) * 10000 * 2 // base
    magnitude = (scaled + 1) // 2
    return magnitude if change >= 0 else -magnitude


def padded(value: int, width: int = 9, *, sign: bool = False) -> str:
    """Zero-padded to ``width`` with the sign inside the width (``sign``: ``+`` for positive values)."""
    if value < 0:
        return "-" + str(-value).zfill(width - 1)
    if sign and value > 0:
        return "+" + str(value).zfill(width - 1)
    return str(value).zfill(width)


def ymd_hms(day_yyyymmdd: str, t_s: int) -> str:
    """``YYYYMMDDHHMMSS`` from a ``YYYYMMDD`` date and seconds of day."""
    return f"{day_yyyymmdd}{t_s // 3600:02d}{t_s // 60 % 60:02d}{t_s % 60:02d}"
