"""Resolve the PAYMENT_PROVIDERS dotted paths once, and look providers up by identifier."""

from __future__ import annotations

import functools

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from providers.base import PaymentProviderBase


class ProviderNotConfigured(LookupError):
    """The identifier is not among the providers configured in settings."""


@functools.cache
def configured_providers() -> dict[str, PaymentProviderBase]:
    providers: dict[str, PaymentProviderBase] = {}
    for path in settings.PAYMENT_PROVIDERS:
        provider_class = import_string(path)
        if not (
            isinstance(provider_class, type) and issubclass(provider_class, PaymentProviderBase)
        ):
            raise ImproperlyConfigured(f"{path} is not a PaymentProviderBase subclass.")
        identifier = provider_class.identifier
        if not identifier:
            raise ImproperlyConfigured(f"{path} has no identifier.")
        if identifier in providers:
            raise ImproperlyConfigured(f"Two providers share the identifier {identifier!r}.")
        providers[identifier] = provider_class()
    return providers


def get_provider(identifier: str) -> PaymentProviderBase:
    try:
        return configured_providers()[identifier]
    except KeyError:
        raise ProviderNotConfigured(identifier) from None


@receiver(setting_changed)
def _forget_providers(*, setting: str, **kwargs: object) -> None:
    if setting.startswith(("PAYMENT_PROVIDERS", "STRIPE_")):
        configured_providers.cache_clear()
