"""A storefront client that walks the SPEC's flow, for the checkout tests."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, TestCase

from tests import factories


class Storefront:
    def __init__(self, client: Client | None = None) -> None:
        self.client = client or Client()

    def post(self, path: str, body: Any = None, **headers: str):  # type: ignore[no-untyped-def]
        # The test's own transaction never commits: run what the request queued for after
        # its commit (the worker's tasks, eager here) as a real commit would.
        with TestCase.captureOnCommitCallbacks(execute=True):
            return self.client.post(
                f"/api/store/{path}",
                body if body is not None else {},
                content_type="application/json",
                headers=headers,
            )

    def get(self, path: str):  # type: ignore[no-untyped-def]
        return self.client.get(f"/api/store/{path}")

    def cart_ready(
        self,
        region: Any,
        product: Any,
        *,
        provider: str = "test",
        quantity: int = 2,
        data: dict[str, Any] | None = None,
    ) -> str:
        """A cart with items and the given provider's session selected; returns its id."""
        cart_id = self.post("carts", {"region_id": region.id, "email": "c@example.com"}).json()[
            "id"
        ]
        assert (
            self.post(
                f"carts/{cart_id}/line-items", {"product_id": product.id, "quantity": quantity}
            ).status_code
            == 200
        )
        assert self.post(f"carts/{cart_id}/payment-sessions").status_code == 200
        if data is not None:
            response = self.post(f"carts/{cart_id}/payment-sessions/{provider}", {"data": data})
            assert response.status_code == 200, response.json()
        assert (
            self.post(f"carts/{cart_id}/payment-session", {"provider_id": provider}).status_code
            == 200
        )
        return cart_id

    def complete(self, cart_id: str, key: str | None = None, body: Any = None):  # type: ignore[no-untyped-def]
        headers = {"Idempotency-Key": key} if key is not None else {}
        return self.post(f"carts/{cart_id}/complete", body, **headers)


@pytest.fixture
def store() -> Storefront:
    return Storefront()


@pytest.fixture
def cart_id(store, region, product) -> str:  # type: ignore[no-untyped-def]
    return store.cart_ready(region, product)


@pytest.fixture
def eur_region(db):  # type: ignore[no-untyped-def]
    return factories.RegionFactory(currency_code="eur", providers=["manual", "test"])


@pytest.fixture
def stripe_region(stripe_server):  # type: ignore[no-untyped-def]
    """A region paid with Stripe (the fake server), for the Stripe and the signals tests."""
    return factories.RegionFactory(currency_code="usd", providers=["stripe", "manual"])
