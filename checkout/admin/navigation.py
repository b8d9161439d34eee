"""The back office's sidebar, in the order of an operator's day: what needs doing, the
orders and the money, what failed, then the store's setup; the machinery's own tables
under Developer, for superusers only. Each link shows only to whom may open it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.templatetags.static import static
from django.urls import reverse


def _item(request: HttpRequest, title: str, icon: str, url: str, permission: str | None) -> Any:
    user = request.user
    allowed = user.is_active and (user.has_perm(permission) if permission else user.is_superuser)
    return {"title": title, "icon": icon, "link": url, "permission": lambda request: allowed}


def sidebar(request: HttpRequest) -> list[dict[str, Any]]:
    def changelist(model: str) -> str:
        return reverse(f"admin:{model}_changelist")

    def item(title: str, icon: str, url: str, permission: str | None) -> Any:
        return _item(request, title, icon, url, permission)

    return [
        {
            "title": "Today",
            "items": [
                {"title": "Dashboard", "icon": "dashboard", "link": reverse("admin:index")},
            ],
        },
        {
            "title": "Sales",
            "items": [
                item("Orders", "shopping_bag", changelist("checkout_order"), "checkout.view_order"),
                item(
                    "Payments", "payments", changelist("payments_payment"), "payments.view_payment"
                ),
                item("Refunds", "undo", changelist("payments_refund"), "payments.view_refund"),
                item("Swaps", "swap_horiz", changelist("checkout_swap"), "checkout.view_swap"),
            ],
        },
        {
            "title": "Needs attention",
            "items": [
                item(
                    "Failed webhooks",
                    "webhook",
                    changelist("payments_webhookevent") + "?status__exact=failed",
                    "payments.view_webhookevent",
                ),
                item(
                    "Operations with no answer",
                    "help",
                    changelist("payments_paymentoperation") + "?attention=open",
                    "payments.view_paymentoperation",
                ),
            ],
        },
        {
            "title": "Regions & providers",
            "items": [
                item("Regions", "public", changelist("checkout_region"), "checkout.view_region"),
                item(
                    "Payment providers",
                    "account_balance",
                    changelist("payments_paymentprovider"),
                    "payments.view_paymentprovider",
                ),
                item(
                    "Products",
                    "inventory_2",
                    changelist("checkout_product"),
                    "checkout.view_product",
                ),
                item("Carts", "shopping_cart", changelist("checkout_cart"), "checkout.view_cart"),
            ],
        },
        {
            "title": "Team",
            "items": [
                item("Users", "person", changelist("auth_user"), "auth.view_user"),
                item("Groups", "group", changelist("auth_group"), "auth.view_group"),
            ],
        },
        {
            "title": "Developer",
            "collapsible": True,
            "items": [
                item("Event ledger", "receipt_long", changelist("payments_paymentevent"), None),
                item("All operations", "sync_alt", changelist("payments_paymentoperation"), None),
                item("Webhook events", "webhook", changelist("payments_webhookevent"), None),
                item("Idempotency keys", "key", changelist("payments_idempotencykey"), None),
                item("Payment sessions", "pending", changelist("payments_paymentsession"), None),
                item("Sandbox ledger", "science", changelist("test_provider_ledgerentry"), None),
                item("API tokens", "token", changelist("authtoken_tokenproxy"), None),
            ],
        },
    ]


def stylesheet(request: HttpRequest) -> str:
    """The few styles of our own pages (money pages, bulk capture, dashboard), beside the
    theme's compiled ones, which hold only the classes the theme itself uses."""
    return static("backoffice/backoffice.css")
