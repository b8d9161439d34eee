from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from checkout.models import Product, ProductPrice, Region
from payments.models import PaymentProvider

OPERATOR_USERNAME = "operator"
OPERATOR_PASSWORD = "operator-demo-password"  # a demo login, printed by `make run`

REGIONS = [("United States", "usd"), ("Europe", "eur")]
PRODUCTS = [
    ("Linen shirt", "SHIRT-LINEN", {"usd": 4900, "eur": 4500}),
    ("Canvas tote", "TOTE-CANVAS", {"usd": 1800, "eur": 1600}),
    ("Wool socks", "SOCKS-WOOL", {"usd": 1200, "eur": 1100}),
    ("Leather belt", "BELT-LEATHER", {"usd": 6500, "eur": 5900}),
]
DEMO_PROVIDERS = ["manual", "test"]


class Command(BaseCommand):
    help = "Create (or bring back) the demo store: two regions, products and an operator login."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        providers = list(PaymentProvider.objects.filter(id__in=DEMO_PROVIDERS, is_installed=True))
        for name, currency_code in REGIONS:
            region, created = Region.objects.get_or_create(
                name=name, defaults={"currency_code": currency_code}
            )
            region.payment_providers.add(*providers)
            self.stdout.write(f"{'created' if created else 'kept'} region {name} ({currency_code})")
        for title, sku, prices in PRODUCTS:
            product, _ = Product.objects.get_or_create(sku=sku, defaults={"title": title})
            for currency_code, amount in prices.items():
                ProductPrice.objects.update_or_create(
                    product=product, currency_code=currency_code, defaults={"amount": amount}
                )
        self.stdout.write(f"{len(PRODUCTS)} products")
        user_model = get_user_model()
        operator, created = user_model.objects.get_or_create(
            username=OPERATOR_USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            operator.set_password(OPERATOR_PASSWORD)
            operator.save()
        self.stdout.write(f"operator login: {OPERATOR_USERNAME} / {OPERATOR_PASSWORD}")
