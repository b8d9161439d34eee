"""Every list endpoint of both APIs costs the same number of queries whatever it lists
(issue 15: "every list endpoint a fixed number"). The order list, with its payments,
refunds and swaps, has its own test in test_admin_orders.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests import factories
from tests.backoffice import admin_client, staff_user

pytestmark = pytest.mark.django_db


def queries(get: Callable[[], object]) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = get()
    assert response.status_code == 200, response.content  # type: ignore[attr-defined]
    return len(captured.captured_queries)


def grow(n: int) -> None:
    """n more regions, each offering two providers and selling one more product."""
    for _ in range(n):
        factories.RegionFactory(providers=["manual", "test"], countries=["us"])
        factories.ProductFactory(prices={"usd": 1500, "eur": 1400})


STOREFRONT = ["/api/store/regions", "/api/store/products?region_id={region}"]
ADMIN = ["/api/admin/regions", "/api/admin/payment-providers"]


@pytest.mark.parametrize("path", STOREFRONT)
def test_a_storefront_list_costs_the_same_queries_for_one_row_or_many(path: str) -> None:
    region = factories.RegionFactory(providers=["manual"])
    factories.ProductFactory(prices={"usd": 1000})
    client = Client()
    url = path.format(region=region.id)

    few = queries(lambda: client.get(url))
    grow(6)
    many = queries(lambda: client.get(url))

    assert many == few
    assert len(client.get(url).json()) > 1


@pytest.mark.parametrize("path", ADMIN)
def test_an_admin_list_costs_the_same_queries_for_one_row_or_many(path: str) -> None:
    factories.RegionFactory(providers=["manual"])
    operator = admin_client(staff_user(username="boss", superuser=True))
    operator.get(path)  # the token's first use is not the list's cost

    few = queries(lambda: operator.get(path))
    grow(6)
    many = queries(lambda: operator.get(path))

    assert many == few
