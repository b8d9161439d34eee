"""Helpers for the back-office tests: orders placed through the storefront API as a
customer would, and admin API clients for staff users with chosen permissions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from checkout.models import Product
from providers.test.models import LedgerEntry

MONEY_PERMISSIONS = (
    "payments.capture_payment",
    "payments.refund_payment",
    "payments.cancel_payment",
)


def store(client: APIClient, method: str, path: str, body: Any = None) -> Any:
    response = getattr(client, method)(f"/api/store/{path}", body or {}, format="json")
    assert response.status_code in (200, 201), (path, response.status_code, response.content)
    return response.json()


def place_order(
    *,
    region: Any,
    items: Sequence[tuple[Product, int]],
    provider: str = "test",
    email: str = "customer@example.com",
) -> dict[str, Any]:
    """Cart, items, sessions, the provider selected, complete: the order's JSON."""
    client = APIClient()
    cart_id = store(client, "post", "carts", {"region_id": region.id, "email": email})["id"]
    for product, quantity in items:
        store(
            client,
            "post",
            f"carts/{cart_id}/line-items",
            {"product_id": product.id, "quantity": quantity},
        )
    return pay_cart(cart_id, provider=provider)["data"]


def pay_cart(cart_id: str, *, provider: str = "test") -> dict[str, Any]:
    """Sessions, the provider selected, complete: the completion's answer."""
    client = APIClient()
    store(client, "post", f"carts/{cart_id}/payment-sessions")
    store(client, "post", f"carts/{cart_id}/payment-session", {"provider_id": provider})
    return store(client, "post", f"carts/{cart_id}/complete")


def staff_user(*permissions: str, username: str = "operator", superuser: bool = False) -> User:
    user = User.objects.create_user(
        username=username, password="pw", is_staff=True, is_superuser=superuser
    )
    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def admin_client(user: User) -> APIClient:
    """A client that authenticates with the user's DRF token."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def admin_post(client: APIClient, path: str, body: Any = None, *, key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(f"/api/admin/{path}", body or {}, format="json", headers=headers)


def remote(operation: str, *, session_id: str | None = None) -> list[LedgerEntry]:
    """What reached the test provider's "remote" side for this operation."""
    entries = LedgerEntry.objects.filter(operation=operation)
    if session_id:
        entries = entries.filter(session_id=session_id)
    return list(entries.order_by("created_at", "id"))
