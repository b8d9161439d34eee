"""factory_boy factories for the domain's rows."""

from __future__ import annotations

from typing import Any

import factory

from checkout.models import Cart, LineItem, Product, ProductPrice, Region
from payments.models import PaymentProvider


class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Region
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Region {n}")
    currency_code = "usd"

    @factory.post_generation
    def providers(self, create: bool, extracted: list[str] | None, **kwargs: Any) -> None:
        for identifier in extracted or []:
            provider, _ = PaymentProvider.objects.get_or_create(id=identifier)
            self.payment_providers.add(provider)


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        skip_postgeneration_save = True

    title = factory.Sequence(lambda n: f"Product {n}")
    sku = factory.Sequence(lambda n: f"SKU-{n}")

    @factory.post_generation
    def prices(self, create: bool, extracted: dict[str, int] | None, **kwargs: Any) -> None:
        for currency_code, amount in (extracted or {"usd": 1000}).items():
            ProductPrice.objects.create(product=self, currency_code=currency_code, amount=amount)


class CartFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cart

    region = factory.SubFactory(RegionFactory)
    currency_code = factory.SelfAttribute("region.currency_code")
    email = "customer@example.com"


class LineItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LineItem

    cart = factory.SubFactory(CartFactory)
    product = factory.SubFactory(ProductFactory)
    title = factory.SelfAttribute("product.title")
    unit_price = 1000
    quantity = 1
