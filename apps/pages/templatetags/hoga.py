"""Template filters of the pages: ``{% load hoga %}`` then ``{{ amount|krw }}``, ``{{ at|kst }}`` ..."""

from django import template

from apps.pages import formatting, market_day

register = template.Library()

register.filter("krw", formatting.krw)
register.filter("krw_signed", formatting.krw_signed)
register.filter("won", formatting.won)
register.filter("won_signed", formatting.won_signed)
register.filter("shares", formatting.shares)
register.filter("bilingual", formatting.bilingual)
register.filter("side_label", formatting.side_label)
register.filter("translated", formatting.translated)
register.filter("account_name", formatting.account_name)
register.filter("status_label", formatting.status_label)
register.filter("order_type_label", formatting.order_type_label)
register.filter("eok_won", formatting.eok_won)
register.filter("pct_signed", formatting.pct_signed)
register.filter("direction", formatting.direction)
register.filter("arrow", formatting.arrow)
register.filter("change_text", formatting.change_text)
register.filter("kst", formatting.kst)
register.filter("kst_time", formatting.kst_time)


@register.filter
def depth_pct(quantity, maximum) -> int:
    """Width in percent of an order-book depth bar (0-100)."""
    try:
        quantity, maximum = int(quantity), int(maximum)
    except (TypeError, ValueError):
        return 0
    return 0 if maximum <= 0 or quantity <= 0 else min(100, round(quantity * 100 / maximum))


@register.filter
def phase_label(phase, venue="KRX") -> str:
    """A phase name in the pages' words (Korean, English in brackets); ``—`` when not known."""
    return market_day.phase_label(phase, venue) if phase else formatting.DASH


@register.filter
def venue_label(venue) -> str:
    return market_day.venue_label(venue)


@register.inclusion_tag("pages/_stock_badges.html")
def stock_badges(flags, code=None):
    """The halted and VI badges of a stock: ``{% stock_badges row.flags %}`` or, with a dict of flags by code,
    ``{% stock_badges flags o.stock.code %}``. The container is always there (the live pages fill it)."""
    if isinstance(flags, dict):
        flags = flags.get(code)
    if not isinstance(flags, market_day.StockFlags):
        flags = market_day.StockFlags(code=code or "")
    return {"flags": flags, "code": code or flags.code}
