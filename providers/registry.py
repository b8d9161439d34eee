"""Resolve PAYMENT_PROVIDERS once, and look providers up by identifier.

An entry is the id of a provider shipped here (KNOWN_PROVIDERS) or the dotted path of a
provider class. A provider package that lands here adds one line to KNOWN_PROVIDERS (and,
for a real provider, one to the credentials that switch it on in config/settings/base.py).
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from providers.base import PaymentProviderBase

KNOWN_PROVIDERS = {
    "manual": "providers.manual.ManualProvider",
    "stripe": "providers.stripe.StripeProvider",
    "paypal": "providers.paypal.PayPalProvider",
    "klarna": "providers.klarna.KlarnaProvider",
    # The sandbox: installed only where PAYMENT_PROVIDERS names it (SPEC section 10).
    "test": "providers.test.provider.TestProvider",
}


class ProviderNotConfigured(LookupError):
    """The identifier is not among the providers configured in settings."""


def provider_class_path(entry: str) -> str:
    """The dotted path of a PAYMENT_PROVIDERS entry: a known id, or a path as it is."""
    entry = entry.strip()
    if entry in KNOWN_PROVIDERS:
        return KNOWN_PROVIDERS[entry]
    if "." not in entry:
        known = ", ".join(sorted(KNOWN_PROVIDERS))
        raise ImproperlyConfigured(
            f"PAYMENT_PROVIDERS: unknown provider {entry!r}; use one of {known} "
            "or the dotted path of a provider class."
        )
    return entry


@functools.cache
def configured_providers() -> dict[str, PaymentProviderBase]:
    providers: dict[str, PaymentProviderBase] = {}
    for entry in settings.PAYMENT_PROVIDERS:
        path = provider_class_path(entry)
        try:
            provider_class = import_string(path)
        except ImportError as error:
            raise ImproperlyConfigured(
                f"PAYMENT_PROVIDERS: cannot import {path}: {error}"
            ) from None
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
    if setting.startswith(("PAYMENT_PROVIDERS", "STRIPE_", "PAYPAL_", "KLARNA_")):
        configured_providers.cache_clear()
