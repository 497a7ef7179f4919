"""Template filters of the pages: ``{% load hoga %}`` then ``{{ amount|krw }}``, ``{{ at|kst }}`` ..."""

from django import template

from apps.pages import formatting

register = template.Library()

register.filter("krw", formatting.krw)
register.filter("krw_signed", formatting.krw_signed)
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
