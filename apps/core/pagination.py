"""API pagination: limit/offset with a ceiling (``API_PAGE_MAX_LIMIT``) and a bounded offset."""

from __future__ import annotations

from django.conf import settings
from rest_framework.pagination import LimitOffsetPagination

MAX_OFFSET = 2**31 - 1  # far beyond any list Hoga serves; keeps OFFSET inside PostgreSQL's bigint


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    @property
    def max_limit(self) -> int:  # read per request so a settings override applies
        return settings.API_PAGE_MAX_LIMIT

    def get_offset(self, request) -> int:
        return min(super().get_offset(request), MAX_OFFSET)
