"""Prefixed random primary keys (SPEC section 1): `cart_…`, `pay_…`, at least 80 random bits."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from django.db import models

RANDOM_BYTES = 15  # 120 bits, 24 base32 characters


def new_id(prefix: str) -> str:
    token = base64.b32encode(secrets.token_bytes(RANDOM_BYTES)).decode("ascii").lower()
    return f"{prefix}_{token}"


class PrefixedIdField(models.CharField):
    """A primary key whose default is `<prefix>_<random>`; ids are capabilities, never guessed."""

    def __init__(self, prefix: str, *args: Any, **kwargs: Any) -> None:
        self.prefix = prefix
        kwargs.setdefault("max_length", 40)
        kwargs["primary_key"] = True
        kwargs["editable"] = False
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["prefix"] = self.prefix
        for generated in ("primary_key", "editable", "max_length"):
            kwargs.pop(generated, None)
        return name, path, args, kwargs

    def has_default(self) -> bool:
        return True

    def get_default(self) -> str:
        return new_id(self.prefix)


class MoneyField(models.BigIntegerField):
    """An amount in the currency's minor units; never a float."""


class CurrencyField(models.CharField):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 3)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("max_length", None)
        return name, path, args, kwargs
