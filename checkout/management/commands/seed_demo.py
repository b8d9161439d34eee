import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from checkout.models import Product, ProductPrice, Region
from payments.models import PaymentProvider

OPERATOR_USERNAME = "operator"

# The roles the permissions make possible. An Operator runs the day (money actions and
# processing failed webhooks again); a Viewer reads the same pages and sees no action.
VIEW_MODELS = [
    ("checkout", ["order", "cart", "swap", "region", "product"]),
    ("payments", ["payment", "refund", "paymentprovider", "webhookevent", "paymentoperation"]),
]
OPERATOR_EXTRA = [
    ("payments", "capture_payment"),
    ("payments", "refund_payment"),
    ("payments", "cancel_payment"),
    ("payments", "change_webhookevent"),
]
ROLES = {"Operator": ("clerk", OPERATOR_EXTRA), "Viewer": ("viewer", [])}

REGIONS = [("United States", "usd"), ("Europe", "eur")]
PRODUCTS = [
    ("Linen shirt", "SHIRT-LINEN", {"usd": 4900, "eur": 4500}),
    ("Canvas tote", "TOTE-CANVAS", {"usd": 1800, "eur": 1600}),
    ("Wool socks", "SOCKS-WOOL", {"usd": 1200, "eur": 1100}),
    ("Leather belt", "BELT-LEATHER", {"usd": 6500, "eur": 5900}),
]
DEMO_PROVIDERS = ["manual", "test"]


class Command(BaseCommand):
    help = (
        "Create (or bring back) the demo store: two regions, products, an operator login "
        "(a superuser), and the groups Operator and Viewer with a login each (clerk, "
        "viewer), whose new passwords are printed. Refuses to run with DEBUG off unless "
        "--force: a demo superuser does not belong in production."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force", action="store_true", help="run even though DEBUG is off (bench, tests)"
        )
        parser.add_argument(
            "--password",
            help="the operator's password (default: a new random one, printed)",
        )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "DEBUG is off: this looks like a production deployment, and seed_demo "
                "creates a superuser. Run it with --force if you mean it."
            )
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
        operator, _ = user_model.objects.get_or_create(
            username=OPERATOR_USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        # A new password on every run, so the one printed last is the one that works; never
        # a fixed one, which anyone who read this repository would know.
        password = options["password"] or secrets.token_urlsafe(12)
        operator.set_password(password)
        operator.save()
        self.stdout.write(f"operator login: {OPERATOR_USERNAME} / {password}")
        views = [(app, f"view_{model}") for app, models in VIEW_MODELS for model in models]
        for group_name, (username, extra) in ROLES.items():
            group, _ = Group.objects.get_or_create(name=group_name)
            group.permissions.set(
                [
                    Permission.objects.get(content_type__app_label=app, codename=codename)
                    for app, codename in [*views, *extra]
                ]
            )
            user, _ = user_model.objects.get_or_create(
                username=username, defaults={"is_staff": True}
            )
            user.groups.set([group])
            role_password = options["password"] or secrets.token_urlsafe(12)
            user.set_password(role_password)
            user.save()
            self.stdout.write(f"{group_name.lower()} login: {username} / {role_password}")
