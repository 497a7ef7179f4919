"""``phase_bar``: the market status behind the phase bar of every signed-in page (``templates/base.html``).

Lazy: only a template that renders the bar asks for it, and a view that already read the market status for its
own content (``views._market_context``) hands it over on the request, so a page asks the clock once. Anonymous
pages (log-in, sign-up) get no bar: they never reach the market clock on behalf of an unknown visitor.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from . import selectors

REQUEST_ATTR = "hoga_market_status"


def market_status_for(request: HttpRequest) -> selectors.MarketStatus:
    """The request's market status, read once per request."""
    status = getattr(request, REQUEST_ATTR, None)
    if status is None:
        status = selectors.market_status()
        setattr(request, REQUEST_ATTR, status)
    return status


def market_day(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"phase_bar": SimpleLazyObject(lambda: market_status_for(request))}
