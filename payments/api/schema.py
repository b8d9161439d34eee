"""The OpenAPI schema's rules that hold for every operation, so a generated client is as
strict as the API (issue #16):

- operation ids from the API area, the view and its action: `store_cart_complete`;
- a response object lists every field its serializer writes as required: DRF writes each
  one on every answer (null when there is no value), so a client needs no "unset" case.
  Only a field declared `required=False` on the serializer is sometimes left out (the error
  body's `fields`);
- an input serializer refuses unknown fields (`InputSerializer`), so its request body says
  `additionalProperties: false`;
- an operation that takes an `Idempotency-Key` (`parameters=IDEMPOTENT`) documents its
  limits and answers with it (SPEC 5.1, section 6), saying when an answer is a replay;
- a 503, or a 409 in flight, carries `Retry-After`.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from payments.api.fields import InputSerializer

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"

# SPEC 5.1: 1..255 printable ASCII, bare or as a structured-field string in double quotes
# (RFC 8941: `\"` and `\\` escaped). A bare key cannot start with a quote, and spaces or
# tabs around either form are not part of it. Exactly what payments.idempotency.parse_key
# accepts, so a client validates the header as the server does.
_BARE_KEY = r"[\x21\x23-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?"
_QUOTED_KEY = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\]){1,255}"'
IDEMPOTENCY_KEY_PATTERN = rf"^[ \t]*(?:{_BARE_KEY}|{_QUOTED_KEY})[ \t]*$"

IDEMPOTENCY_KEY = OpenApiParameter(
    IDEMPOTENCY_KEY_HEADER,
    {
        "type": "string",
        "minLength": 1,
        # 255 characters, quoted with every one escaped, and the two quotes.
        "maxLength": 2 * 255 + 2,
        "pattern": IDEMPOTENCY_KEY_PATTERN,
    },
    OpenApiParameter.HEADER,
    description=(
        "1..255 printable ASCII, bare or as a structured-field string in double quotes "
        '(`"abc"`); anything else is 400 idempotency_key_invalid. Without one the server '
        "makes one and sends it back. The first final answer is stored and replayed for the "
        "same key and body (with Idempotent-Replayed: true); another body is 422 "
        "idempotency_key_mismatch, a request in flight 409. A 503 is not stored: retry "
        "with the same key."
    ),
)

# No minLength: a key of spaces (`" "` quoted) is a key, which HTTP may trim on the way.
_ECHOED_KEY = {"type": "string", "maxLength": 255}
_ECHO_DESCRIPTION = "The request's Idempotency-Key (unquoted), or the one the server made."

# Listed in this order on purpose: for a status both match, the later one wins.
_IDEMPOTENCY_RESPONSE_HEADERS = [
    # On an error the key may not be known yet (a malformed header, a body refused before
    # the key was taken, missing credentials): there, the header is optional.
    OpenApiParameter(
        IDEMPOTENCY_KEY_HEADER,
        _ECHOED_KEY,
        OpenApiParameter.HEADER,
        description=_ECHO_DESCRIPTION,
        response=True,
    ),
    OpenApiParameter(
        "Idempotent-Replayed",
        {"type": "string", "enum": ["true"]},
        OpenApiParameter.HEADER,
        description="Present when this is the stored answer of an earlier request "
        "with the same key, replayed byte for byte.",
        response=True,
    ),
]
# Every success went through the key, so it names it.
_SUCCESS_KEY_HEADER = OpenApiParameter(
    IDEMPOTENCY_KEY_HEADER,
    _ECHOED_KEY,
    OpenApiParameter.HEADER,
    required=True,
    description=_ECHO_DESCRIPTION,
    response=["200", "201"],
)
# What an operation that honours Idempotency-Key lists in `extend_schema(parameters=...)`:
# the request header and the headers of its answers.
IDEMPOTENT = [IDEMPOTENCY_KEY, *_IDEMPOTENCY_RESPONSE_HEADERS, _SUCCESS_KEY_HEADER]

_RETRY_AFTER = {"type": "string", "pattern": r"^[0-9]+$"}
_RETRY_AFTER_HEADERS = [
    # 409 idempotency_key_in_use and cart_completion_in_progress; not invalid_state.
    OpenApiParameter(
        "Retry-After",
        _RETRY_AFTER,
        OpenApiParameter.HEADER,
        description="Seconds to wait before retrying, when retrying can succeed.",
        response=["409"],
    ),
    # Every 503 means "outcome unknown, retry".
    OpenApiParameter(
        "Retry-After",
        _RETRY_AFTER,
        OpenApiParameter.HEADER,
        required=True,
        description="Seconds to wait before retrying with the same Idempotency-Key.",
        response=["503"],
    ),
]


class AutoSchema(SpectacularAutoSchema):
    def get_operation_id(self) -> str:
        action = getattr(self.view, "action", None)
        if not action:
            return super().get_operation_id()
        area = self.path.strip("/").split("/")[1]  # /api/<area>/...
        view = type(self.view).__name__.removesuffix("ViewSet").removesuffix("View")
        return f"{area}_{view.lower()}_{action}"

    def get_override_parameters(self) -> list[Any]:
        # Only the statuses an operation documents get them.
        return [*super().get_override_parameters(), *_RETRY_AFTER_HEADERS]

    def _map_basic_serializer(
        self, serializer: serializers.Serializer, direction: str
    ) -> dict[str, Any]:
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "response":
            # DRF writes every field of an output serializer, null included (nullable is
            # the field's own); a ModelSerializer's `required=False` only concerns input.
            declared = getattr(serializer, "_declared_fields", {})
            optional = {
                name for name, field in declared.items() if field._kwargs.get("required") is False
            }
            schema["required"] = sorted(set(schema.get("properties", {})) - optional)
        elif isinstance(serializer, InputSerializer) or (
            isinstance(serializer, type) and issubclass(serializer, InputSerializer)
        ):
            schema["additionalProperties"] = False
        return schema
