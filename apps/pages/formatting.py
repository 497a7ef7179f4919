"""Display formats of the pages: KRW with thousands separators, signed changes with ▲/▼, KST times.

Korean convention: a rise is red and marked ▲, a fall is blue and marked ▼ (CSS classes ``up`` / ``down``).
Pure functions, used by the template filters in ``templatetags/hoga.py`` and by the tests.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.utils import translation
from django.utils.translation import gettext

from apps.core.i18n import bilingual  # noqa: F401  (a template filter of the pages too)
from apps.core.krx.calendar import KST
from apps.trading.orders.models import OrderStatus, OrderType

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


def won(value, language: str | None = None) -> str:
    """An amount of KRW in the page's language: ``"1,234원"`` (Korean), ``"₩1,234"`` (English); ``"—"``."""
    text = krw(value)
    if text == DASH:
        return DASH
    return _with_won(text, language)


def won_signed(value, language: str | None = None) -> str:
    """``"+1,500원"`` / ``"+₩1,500"``, ``"-700원"`` / ``"-₩700"``; ``"—"`` when unknown."""
    text = krw_signed(value)
    if text == DASH:
        return DASH
    return _with_won(text, language)


def _with_won(text: str, language: str | None) -> str:
    if _korean(language):
        return f"{text}원"
    sign = text[0] if text[0] in "+-" else ""
    return f"{sign}₩{text[len(sign) :]}"


def translated(value) -> str:
    """A built-in English text kept untranslated in data (a strategy's label, a parameter's help; marked with
    gettext_noop where it is written) in the page's language."""
    return gettext(str(value)) if value else ""


def side_label(value) -> str:
    """BUY / SELL in the page's language (매수 / 매도, Buy / Sell); any other value as it is."""
    return {"BUY": gettext("Buy"), "SELL": gettext("Sell")}.get(str(value), str(value))


def status_label(value) -> str:
    """An order status code (PENDING, FILLED ...) in the page's language; any other value as it is."""
    return str(dict(OrderStatus.choices).get(str(value), value))


def order_type_label(value) -> str:
    """An order type code (LIMIT, MARKET ...) in the page's language; any other value as it is."""
    return str(dict(OrderType.choices).get(str(value), value))


DEFAULT_ACCOUNT_NAME = "모의투자"  # PaperAccount.name's default


def account_name(value) -> str:
    """A paper account's name; the default one in the page's language (모의투자 / Paper trading)."""
    return gettext("Paper trading") if value == DEFAULT_ACCOUNT_NAME else str(value)


def shares(value, language: str | None = None) -> str:
    """A number of shares: ``"1,200주"`` (Korean), ``"1,200 shares"`` (English); ``"—"`` when unknown."""
    text = krw(value)
    if text == DASH:
        return DASH
    if _korean(language):
        return f"{text}주"
    return f"{text} share" if text == "1" else f"{text} shares"


def eok_won(value, language: str | None = None) -> str:
    """An amount given in 억원 (100 million KRW): ``"1,234억"`` (Korean), ``"₩123.4B"`` (English); the sign of
    a signed figure (``"+12.3"``) is kept; ``"—"`` when unknown."""
    number = _number(str(value).replace(",", "") if isinstance(value, str) else value)
    if number is None:
        return DASH
    sign = "+" if isinstance(value, str) and value.startswith("+") else ""
    if _korean(language):
        return f"{value.strip()}억" if isinstance(value, str) else f"{krw(number)}억"
    billions = (number / 10).normalize()
    body = f"{abs(billions):,.2f}".rstrip("0").rstrip(".")
    return f"{sign}{'-' if billions < 0 else ''}₩{body}B"


def _korean(language: str | None) -> bool:
    return (language or translation.get_language() or "ko").split("-")[0] == "ko"


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
