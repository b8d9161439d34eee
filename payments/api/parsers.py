"""The JSON parser of both APIs: bounded size, depth and numbers (payments.bounded_json)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from payments.bounded_json import JSONRefused, loads


class BoundedJSONParser(JSONParser):
    """DRF's JSONParser hands the body to an unbounded json.loads; this one refuses what
    `bounded_json.loads` refuses, as 400 invalid_data. DRF reads the body through Django's
    request.body, which refuses more than DATA_UPLOAD_MAX_MEMORY_SIZE (config.urls answers
    that 400); the parser keeps that bound itself should a stream ever reach it directly."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(body) > limit:
            raise ParseError(f"The body is larger than {limit} bytes.")
        try:
            return loads(body)
        except JSONRefused as error:
            raise ParseError(error.message) from None
