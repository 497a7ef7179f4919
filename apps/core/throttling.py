"""API throttles. Reads are not throttled; writes (POST, PUT, PATCH, DELETE) are, per user (or per client
address when anonymous), at ``API_WRITE_RATE`` (e.g. ``120/min``): a fixed window counted in Redis with one
round trip per request (``apps.core.ratelimits.window_hit``), so every web process shares one count. The rate
is read from settings on each request. Redis trouble lets the write through, with a warning."""

from __future__ import annotations

import logging

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from .ratelimits import window_hit

logger = logging.getLogger(__name__)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class WriteRateThrottle(SimpleRateThrottle):
    scope = "write"
    reads = False  # GET, HEAD and OPTIONS pass

    def __init__(self):  # the rate is read per request (SimpleRateThrottle reads it once, from THROTTLE_RATES)
        self._left = 0

    def get_rate(self):
        return settings.API_WRITE_RATE or None

    def allow_request(self, request, view):
        if request.method in SAFE_METHODS and not self.reads:
            return True
        rate = self.get_rate()
        if rate is None:
            return True
        num_requests, duration = self.parse_rate(rate)
        try:
            count, self._left = window_hit(f"api-{self.scope}", self.get_ident_key(request), window=int(duration))
        except Exception:
            logger.warning("API %s throttle unavailable (Redis); allowing", self.scope)
            return True
        return count <= num_requests

    def wait(self):
        return max(self._left, 1)

    def get_ident_key(self, request) -> str:
        if request.user and request.user.is_authenticated:
            return f"u{request.user.pk}"
        return self.get_ident(request)


class SearchRateThrottle(WriteRateThrottle):
    """Stock search (type-ahead: one request per keystroke) at ``API_SEARCH_RATE`` per user or client address,
    reads included, besides the write throttle."""

    scope = "search"
    reads = True

    def get_rate(self):
        return settings.API_SEARCH_RATE or None
