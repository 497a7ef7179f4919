"""The API's JSON parser: bounded size, bounded nesting, no control characters (``apps.core.jsonsafe``)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .jsonsafe import UnsafeJSON, loads_bounded


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise ParseError(f"The request body exceeds {limit} bytes.", code="body_too_large")
        if not raw.strip():
            raise ParseError("The request body is empty.", code="invalid_json")
        try:
            return loads_bounded(raw, max_depth=settings.API_JSON_MAX_DEPTH)
        except UnsafeJSON as exc:
            raise ParseError(exc.message, code=exc.code) from None
