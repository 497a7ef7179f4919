"""The single DRF exception handler: every API error has the shape

{"error": {"code": "...", "message": "...", "fields": {...}}}
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, RawPostDataException
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .exceptions import ApplicationError

logger = logging.getLogger(__name__)


def _error(code: str, message: str, fields: dict | None, http_status: int) -> Response:
    return Response({"error": {"code": code, "message": message, "fields": fields or {}}}, status=http_status)


def _flatten_detail(detail) -> dict:
    """DRF ValidationError detail -> {field: [messages]} (non-field errors under "non_field_errors")."""
    if isinstance(detail, dict):
        return {key: [str(m) for m in (value if isinstance(value, list) else [value])] for key, value in detail.items()}
    if isinstance(detail, list):
        return {"non_field_errors": [str(m) for m in detail]}
    return {"non_field_errors": [str(detail)]}


def api_exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return _error(exc.code, exc.message, exc.fields, exc.status_code)
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return _error("validation_error", "Invalid input.", fields, status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, (TooManyFieldsSent, RequestDataTooBig)):
        return _error("body_too_large", "The request body has too many fields or is too large.", None, 400)
    if isinstance(exc, RawPostDataException):
        # The body was consumed by an earlier failed parse (a form over the field limit read by the CSRF check).
        return _error("malformed_body", "The request body could not be read.", None, status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, SuspiciousOperation):
        return _error("bad_request", "The request was refused.", None, status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        return _error("not_found", "Not found.", None, status.HTTP_404_NOT_FOUND)
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: let Django log it and answer 500
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten_detail(exc.detail)
        return _error("validation_error", "Invalid input.", fields, response.status_code)
    if isinstance(exc, exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        error = _error(str(code), str(exc.detail), None, response.status_code)
        for header in ("WWW-Authenticate", "Retry-After", "Allow"):
            if header in response:
                error[header] = response[header]
        return error
    return response
