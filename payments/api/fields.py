"""Input fields and base serializer shared by the storefront and admin APIs."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request

from payments.money import KNOWN_CURRENCIES, MAX_AMOUNT


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer and nothing else: no "12" strings, no 12.0 floats, no booleans."""

    default_error_messages = {"invalid": "A JSON integer is required."}

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail("invalid")
        return super().to_internal_value(data)


class AmountField(StrictIntegerField):
    """An amount in minor units, 0 <= amount <= 10^12 (SPEC section 1)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", MAX_AMOUNT)
        super().__init__(**kwargs)


class CurrencyCodeField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_length", 3)
        kwargs.setdefault("max_length", 3)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        code = super().to_internal_value(data)
        if code not in KNOWN_CURRENCIES:
            raise serializers.ValidationError("A lowercase ISO 4217 currency code is required.")
        return code


class InputSerializer(serializers.Serializer):
    """Refuses fields it does not know: a typo is a 400, not a silently ignored value."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


# The contract's error body, for the schema ("fields" cannot be a declared serializer field).
ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "code": serializers.CharField(),
        "message": serializers.CharField(),
        "fields": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()), required=False
        ),
    },
)


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """The contract's error body under each of these statuses, for the schema."""
    return {status: OpenApiResponse(ErrorSerializer) for status in statuses}


def validated(serializer_class: type[serializers.Serializer], request: Request) -> Any:
    """The request body validated by one input serializer; a 400 otherwise."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
