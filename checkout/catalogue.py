"""Operator services for regions and products (the admin API's writes)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import IntegrityError, transaction

from checkout.models import Cart, Product, ProductPrice, Region
from payments import errors
from payments.models import PaymentProvider
from providers.registry import ProviderNotConfigured, get_provider

_UNSET: Any = object()


def region_get_admin(region_id: str) -> Region:
    try:
        return Region.objects.get(pk=region_id)
    except Region.DoesNotExist:
        raise errors.NotFound("No region with this id.") from None


def _installed_providers(
    provider_ids: Iterable[str], *, currency_code: str, countries: Sequence[str]
) -> list[PaymentProvider]:
    """Only installed providers that support the region's currency, and its purchase
    country where they need one, can be enabled (SPEC section 2): 422 for any other."""
    wanted = set(provider_ids)
    found = list(PaymentProvider.objects.filter(pk__in=wanted, is_installed=True))
    problems = {p: f"{p} is unknown or not installed." for p in wanted - {p.pk for p in found}}
    for provider in found:
        try:
            reason = get_provider(provider.pk).unavailable_reason(
                currency_code=currency_code, countries=tuple(countries)
            )
        except ProviderNotConfigured:
            reason = f"{provider.pk} is not installed."
        if reason:
            problems[provider.pk] = reason
    if problems:
        raise errors.ProviderNotAvailable(
            " ".join(problems[p] for p in sorted(problems)),
            fields={"payment_providers": [problems[p] for p in sorted(problems)]},
        )
    return found


def region_create(
    *,
    name: str,
    currency_code: str,
    countries: Sequence[str] = (),
    payment_providers: Sequence[str] = (),
) -> Region:
    providers = _installed_providers(
        payment_providers, currency_code=currency_code, countries=countries
    )
    with transaction.atomic():
        region = Region.objects.create(
            name=name, currency_code=currency_code, countries=list(countries)
        )
        region.payment_providers.set(providers)
    return region


def region_update(
    *,
    region_id: str,
    name: str = _UNSET,
    currency_code: str = _UNSET,
    countries: Sequence[str] = _UNSET,
    payment_providers: Sequence[str] = _UNSET,
) -> Region:
    """Change a region. Its currency cannot change once carts were priced in it (409);
    `payment_providers` replaces the enabled set (installed providers that can sell in the
    region only, 422), and the enabled set must still fit a new currency or countries."""
    with transaction.atomic():
        region = Region.objects.select_for_update().filter(pk=region_id).first()
        if region is None:
            raise errors.NotFound("No region with this id.")
        if countries is not _UNSET:
            region.countries = list(countries)
        enabled = (
            [p.pk for p in region.payment_providers.all()]
            if payment_providers is _UNSET
            else payment_providers
        )
        providers = _installed_providers(
            enabled,
            currency_code=region.currency_code if currency_code is _UNSET else currency_code,
            countries=region.countries,
        )
        if currency_code is not _UNSET and currency_code != region.currency_code:
            if Cart.objects.filter(region=region).exists():
                raise errors.InvalidState(
                    "Carts were priced in this region's currency; it cannot change."
                )
            region.currency_code = currency_code
        if name is not _UNSET:
            region.name = name
        region.save()
        if payment_providers is not _UNSET:
            region.payment_providers.set(providers)
    return region


def region_provider_add(*, region_id: str, provider_id: str) -> Region:
    region = region_get_admin(region_id)
    region.payment_providers.add(
        *_installed_providers(
            [provider_id], currency_code=region.currency_code, countries=region.countries
        )
    )
    return region


def region_provider_remove(*, region_id: str, provider_id: str) -> Region:
    """Disable a provider in the region (a no-op when it was not enabled). Carts keep their
    sessions until they next ask for sessions, which releases that provider's."""
    region = region_get_admin(region_id)
    region.payment_providers.remove(*PaymentProvider.objects.filter(pk=provider_id))
    return region


def product_create(*, title: str, sku: str, prices: Sequence[Mapping[str, Any]]) -> Product:
    """A product with one price per currency; the SKU is unique (400)."""
    currencies = [price["currency_code"] for price in prices]
    if len(set(currencies)) != len(currencies):
        message = "One price per currency."
        raise errors.InvalidData(message, fields={"prices": [message]})
    try:
        with transaction.atomic():
            product = Product.objects.create(title=title, sku=sku)
            ProductPrice.objects.bulk_create(
                ProductPrice(
                    product=product, currency_code=price["currency_code"], amount=price["amount"]
                )
                for price in prices
            )
    except IntegrityError:
        message = "A product with this SKU exists."
        raise errors.InvalidData(message, fields={"sku": [message]}) from None
    return product
