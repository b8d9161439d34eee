"""The one exception handler: every error leaves the API as `{"code", "message"[, "fields"]}`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import DataError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from payments.errors import DomainError

_DRF_CODES = {
    status.HTTP_400_BAD_REQUEST: "invalid_data",
    status.HTTP_401_UNAUTHORIZED: "not_authenticated",
    status.HTTP_403_FORBIDDEN: "permission_denied",
    status.HTTP_404_NOT_FOUND: "not_found",
    status.HTTP_405_METHOD_NOT_ALLOWED: "method_not_allowed",
    status.HTTP_406_NOT_ACCEPTABLE: "not_acceptable",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "unsupported_media_type",
    status.HTTP_429_TOO_MANY_REQUESTS: "throttled",
}


def error_body(code: str, message: str, fields: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return body


def domain_error_response(error: DomainError) -> Response:
    response = Response(error_body(error.code, error.message, error.fields), status=error.status)
    if error.retry_after is not None:
        response["Retry-After"] = str(error.retry_after)
    return response


def _flatten_fields(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested errors as `{"prices.0.amount": ["..."]}`: one list of messages per field."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for name, value in detail.items():
            flat.update(_flatten_fields(value, f"{prefix}{name}."))
        return flat
    if isinstance(detail, list) and any(isinstance(v, (dict, list)) for v in detail):
        flat = {}
        for index, value in enumerate(detail):
            if value:
                flat.update(_flatten_fields(value, f"{prefix}{index}."))
        return flat
    messages = detail if isinstance(detail, list) else [detail]
    return {prefix.rstrip(".") or "non_field_errors": [str(m) for m in messages]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return domain_error_response(exc)
    if isinstance(exc, DataError):
        if any("\x00" in str(value) for value in context.get("kwargs", {}).values()):
            # An id in the path with a NUL byte, which PostgreSQL cannot even compare: no
            # id holds one, so it is an unknown id like any other.
            return Response(error_body("not_found", "Not found."), status=404)
        # The database refused a value as given (a NUL byte, an over-long id): bad input.
        return Response(
            error_body("invalid_data", "A value in the request is not valid."), status=400
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500 handler answers (JSON, see config.urls)
    code = _DRF_CODES.get(response.status_code, "invalid_data")
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body(code, "The request is not valid.", _flatten_fields(exc.detail))
    elif isinstance(exc, exceptions.ParseError):
        response.data = error_body(code, str(exc.detail))
    else:
        detail = getattr(exc, "detail", "")
        response.data = error_body(code, str(detail))
    return response
