"""Fixtures for the money-operation tests: a paid order, operators, the flaky provider."""

from __future__ import annotations

import pytest

from payments.models import Payment
from tests import factories
from tests.backoffice import MONEY_PERMISSIONS, admin_client, place_order, staff_user
from tests.payments.flaky import PATH as FLAKY_PATH
from tests.payments.flaky import FlakyProvider


@pytest.fixture
def operator_user(db):  # type: ignore[no-untyped-def]
    """A staff user with the three money permissions."""
    return staff_user(*MONEY_PERMISSIONS)


@pytest.fixture
def operator(operator_user):  # type: ignore[no-untyped-def]
    """The operator's admin API client, on token authentication."""
    return admin_client(operator_user)


@pytest.fixture
def order(region, product):  # type: ignore[no-untyped-def]
    """An order of 2 x 1500 usd, authorized by the test provider, nothing captured."""
    return place_order(region=region, items=[(product, 2)])


@pytest.fixture
def payment(order):  # type: ignore[no-untyped-def]
    return Payment.objects.get(order_id=order["id"])


@pytest.fixture
def flaky(settings, db):  # type: ignore[no-untyped-def]
    """The flaky provider configured and enabled in a region of its own."""
    settings.PAYMENT_PROVIDERS = [*settings.PAYMENT_PROVIDERS, FLAKY_PATH]
    FlakyProvider.lose.clear()
    yield factories.RegionFactory(providers=["flaky"])
    FlakyProvider.lose.clear()
