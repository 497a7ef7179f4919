"""Domain errors. Services raise these; one DRF handler turns them into 4xx JSON responses."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A business-rule failure the caller can act on.

    ``code`` is a stable machine-readable identifier, ``message`` a human sentence and ``fields``
    maps input field names to lists of messages.
    """

    status_code = 400
    default_code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, fields: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.fields = fields or {}


class ValidationFailed(ApplicationError):
    default_code = "validation_error"


class NotFound(ApplicationError):
    status_code = 404
    default_code = "not_found"


class Conflict(ApplicationError):
    status_code = 409
    default_code = "conflict"


class ServiceUnavailable(ApplicationError):
    status_code = 503
    default_code = "service_unavailable"


MAX_ID = 2**63 - 1  # PostgreSQL bigint: an id beyond it names no row


def parse_id(value) -> int | None:
    """A positive database id from client input (text or int), or None when it cannot name a row."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isdecimal() or len(value) > 19:
            return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number <= MAX_ID else None
