"""The admin orders API (SPEC section 6): list and detail in a fixed number of queries,
cursor pagination, the payment_status filter, and the order-level money operations."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from checkout.models import Order
from payments.models import Payment
from tests import factories
from tests.backoffice import admin_client, admin_post, pay_cart, place_order, remote, staff_user

pytestmark = pytest.mark.django_db

# Authentication, the page of orders, its items, payments (with their refunds and
# operations), refunds, swaps, their payments (with theirs), and the events of all their
# carts: the same whatever the page holds.
LIST_QUERIES = 12
DETAIL_QUERIES = 12


@pytest.fixture
def boss(db):  # type: ignore[no-untyped-def]
    return admin_client(staff_user(username="boss", superuser=True))


@pytest.fixture
def shirt(region):  # type: ignore[no-untyped-def]
    return factories.ProductFactory(title="Shirt", prices={region.currency_code: 2000})


def busy_order(boss, region, product, shirt) -> str:  # type: ignore[no-untyped-def]
    """An order with a capture, two refunds and a paid swap: rows of every kind."""
    order = place_order(region=region, items=[(product, 2), (shirt, 1)])
    admin_post(boss, f"orders/{order['id']}/capture")
    for amount in (100, 200):
        admin_post(boss, f"orders/{order['id']}/refund", {"amount": amount, "reason": "other"})
    swap = admin_post(
        boss,
        f"orders/{order['id']}/swaps",
        {
            "return_items": [{"item_id": item_of(order, product), "quantity": 1}],
            "additional_items": [{"product_id": shirt.id, "quantity": 1}],
        },
    ).json()
    pay_cart(swap["cart_id"])
    return order["id"]


def item_of(order, product) -> str:  # type: ignore[no-untyped-def]
    return next(i["id"] for i in order["items"] if i["product_id"] == product.id)


def queries(client, path: str) -> int:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, response.json()
    return len(captured.captured_queries)


def test_the_order_list_and_detail_use_a_fixed_number_of_queries(
    boss, region, product, shirt, django_assert_max_num_queries
):
    first = busy_order(boss, region, product, shirt)
    few = queries(boss, "/api/admin/orders")
    one = queries(boss, f"/api/admin/orders/{first}")
    for _ in range(4):
        busy_order(boss, region, product, shirt)
    place_order(region=region, items=[(product, 1)])

    with django_assert_max_num_queries(LIST_QUERIES):
        listed = boss.get("/api/admin/orders").json()
    with django_assert_max_num_queries(DETAIL_QUERIES):
        detail = boss.get(f"/api/admin/orders/{first}").json()

    assert queries(boss, "/api/admin/orders") == few
    assert queries(boss, f"/api/admin/orders/{first}") == one
    assert len(listed["results"]) == 6
    assert len(detail["payments"]) == 2
    assert len(detail["refunds"]) == 2
    assert len(detail["swaps"]) == 1
    assert {e["type"] for e in detail["events"]} >= {"authorize", "capture", "refund"}


def test_orders_are_listed_newest_first_a_page_at_a_time(boss, region, product):
    ids = [place_order(region=region, items=[(product, 1)])["id"] for _ in range(5)]

    seen = []
    url = "/api/admin/orders?limit=2"
    while url:
        page = boss.get(url).json()
        seen += [o["id"] for o in page["results"]]
        url = page["next"]

    assert seen == list(reversed(ids))


def test_orders_can_be_filtered_by_payment_status(boss, region, product):
    awaiting = place_order(region=region, items=[(product, 1)])["id"]
    captured = place_order(region=region, items=[(product, 1)])["id"]
    admin_post(boss, f"orders/{captured}/capture")

    only_captured = boss.get("/api/admin/orders", {"payment_status": "captured"}).json()
    only_awaiting = boss.get("/api/admin/orders", {"payment_status": "awaiting"}).json()
    bogus = boss.get("/api/admin/orders", {"payment_status": "paid"})

    assert [o["id"] for o in only_captured["results"]] == [captured]
    assert [o["id"] for o in only_awaiting["results"]] == [awaiting]
    assert bogus.status_code == 400
    assert set(bogus.json()["fields"]) == {"payment_status"}


def test_a_swap_carts_own_order_is_not_listed_but_its_payment_is_on_the_swapped_order(
    boss, region, product, shirt
):
    order_id = busy_order(boss, region, product, shirt)

    listed = boss.get("/api/admin/orders").json()["results"]

    assert [o["id"] for o in listed] == [order_id]
    assert len(listed[0]["payments"]) == 2


def test_capturing_an_order_captures_every_uncaptured_payment_in_full(boss, region, product, shirt):
    order_id = busy_order(boss, region, product, shirt)
    swap_payment = Payment.objects.get(order_id=order_id, swap__isnull=False)
    assert swap_payment.captured_at is None

    response = admin_post(boss, f"orders/{order_id}/capture")
    nothing_left = admin_post(boss, f"orders/{order_id}/capture")

    assert response.status_code == 200
    assert {p["amount_captured"] for p in response.json()["payments"]} == {5000, 500}
    assert response.json()["swaps"][0]["payment_status"] == "captured"
    assert nothing_left.status_code == 409
    assert len(remote("capture")) == 2


def test_canceling_an_order_releases_its_authorization(boss, region, product):
    order_id = place_order(region=region, items=[(product, 1)])["id"]

    response = admin_post(boss, f"orders/{order_id}/cancel")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["payment_status"]) == (
        "canceled",
        "canceled",
    )
    assert len(remote("cancel")) == 1
    assert admin_post(boss, f"orders/{order_id}/capture").status_code == 409


def test_an_order_with_captured_money_cannot_be_canceled(boss, region, product):
    order_id = place_order(region=region, items=[(product, 1)])["id"]
    admin_post(boss, f"orders/{order_id}/capture")

    response = admin_post(boss, f"orders/{order_id}/cancel")

    assert response.status_code == 409
    assert response.json()["code"] == "invalid_state"
    assert Order.objects.get(pk=order_id).status == "pending"
    assert remote("cancel") == []


def test_an_order_capture_retried_with_its_key_answers_the_same(boss, region, product):
    order_id = place_order(region=region, items=[(product, 1)])["id"]

    first = admin_post(boss, f"orders/{order_id}/capture", key="capture-order")
    again = admin_post(boss, f"orders/{order_id}/capture", key="capture-order")

    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert len(remote("capture")) == 1


def test_an_unknown_order_is_not_found(boss):
    assert boss.get("/api/admin/orders/order_nope").status_code == 404
    assert (
        admin_post(boss, "orders/order_nope/refund", {"amount": 1, "reason": "other"}).json()[
            "code"
        ]
        == "not_found"
    )
