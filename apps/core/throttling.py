"""API throttles. Reads are not throttled; writes (POST, PUT, PATCH, DELETE) are, per user (or per client
address when anonymous), at ``API_WRITE_RATE`` (e.g. ``120/min``), counted in the Redis cache, so every web
process shares one count. The rate is read from settings on each request."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class WriteRateThrottle(SimpleRateThrottle):
    scope = "write"

    def get_rate(self):
        return settings.API_WRITE_RATE or None

    def allow_request(self, request, view):
        if request.method in SAFE_METHODS:
            return True
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        if request.user and request.user.is_authenticated:
            ident = f"u{request.user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
