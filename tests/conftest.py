"""Small fixtures shared by every test package."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests import factories


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def region(db):  # type: ignore[no-untyped-def]
    return factories.RegionFactory(providers=["manual", "test"])


@pytest.fixture
def product(region):  # type: ignore[no-untyped-def]
    return factories.ProductFactory(prices={region.currency_code: 1500})


# The fake Stripe and PayPal servers, for checkout tests too.
from tests.providers.conftest import (  # noqa: E402, F401
    paypal_provider,
    paypal_server,
    stripe_provider,
    stripe_server,
)

# The fake Klarna server, for the provider and checkout tests.
from tests.providers.klarna_fixtures import klarna_provider, klarna_server  # noqa: E402, F401
