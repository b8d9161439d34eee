"""Swaps (SPEC sections 2 and 6): the customer pays the difference through a swap cart, or
the store refunds it; the order's totals and statuses follow."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from checkout.models import Order, Swap
from payments.models import Payment, Refund
from tests import factories
from tests.backoffice import admin_client, admin_post, pay_cart, place_order, remote, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def boss(db):  # type: ignore[no-untyped-def]
    return admin_client(staff_user(username="boss", superuser=True))


@pytest.fixture
def shirt(region):  # type: ignore[no-untyped-def]
    return factories.ProductFactory(title="Shirt", prices={region.currency_code: 2000})


@pytest.fixture
def socks(region):  # type: ignore[no-untyped-def]
    return factories.ProductFactory(title="Socks", prices={region.currency_code: 1000})


@pytest.fixture
def paid_order(boss, region, product):  # type: ignore[no-untyped-def]
    """2 x 1500 usd, captured in full."""
    order = place_order(region=region, items=[(product, 2)])
    assert admin_post(boss, f"orders/{order['id']}/capture").status_code == 200
    return order


def swap(boss, order, *, returned: int, product=None, quantity: int = 1):  # type: ignore[no-untyped-def]
    body = {
        "return_items": [{"item_id": order["items"][0]["id"], "quantity": returned}],
        "additional_items": [{"product_id": product.id, "quantity": quantity}] if product else [],
    }
    response = admin_post(boss, f"orders/{order['id']}/swaps", body)
    assert response.status_code == 201, response.json()
    return response.json()


def admin_order(boss, order_id: str):  # type: ignore[no-untyped-def]
    return boss.get(f"/api/admin/orders/{order_id}").json()


def test_a_swap_where_the_customer_owes_money_is_paid_through_a_swap_cart_and_captured(
    boss, paid_order, shirt
):
    created = swap(boss, paid_order, returned=1, product=shirt)  # -1500 + 2000

    assert (created["difference_due"], created["payment_status"]) == (500, "not_paid")
    cart = APIClient().get(f"/api/store/carts/{created['cart_id']}").json()
    assert (cart["type"], cart["total"], cart["subtotal"]) == ("swap", 500, 500)
    assert [(i["product_id"], i["unit_price"], i["total"]) for i in cart["items"]] == [
        (shirt.id, 2000, 500)
    ]

    completion = pay_cart(created["cart_id"])

    assert completion["type"] == "swap"
    assert (completion["data"]["id"], completion["data"]["payment_status"]) == (
        created["id"],
        "awaiting",
    )
    assert Order.objects.count() == 1  # a swap's cart pays the swap; it makes no order
    paid = boss.get(f"/api/admin/swaps/{created['id']}").json()
    assert (paid["payment_status"], paid["status"]) == ("awaiting", "requested")
    swap_payment = Payment.objects.get(pk=paid["payment_id"])
    assert (swap_payment.amount, swap_payment.order_id, swap_payment.swap_id) == (
        500,
        paid_order["id"],
        created["id"],
    )
    assert admin_order(boss, paid_order["id"])["payment_status"] == "partially_captured"

    processed = admin_post(boss, f"swaps/{created['id']}/process-payment")

    assert processed.status_code == 200, processed.json()
    assert (processed.json()["status"], processed.json()["payment_status"]) == (
        "completed",
        "captured",
    )
    order = admin_order(boss, paid_order["id"])
    assert (order["paid_total"], order["refunded_total"], order["refundable_amount"]) == (
        3500,
        0,
        3500,
    )
    assert (order["status"], order["payment_status"]) == ("pending", "captured")
    assert [s["id"] for s in order["swaps"]] == [created["id"]]
    assert [e.amount for e in remote("capture", session_id=swap_payment.session_id)] == [500]
    storefront = APIClient().get(f"/api/store/orders/{paid_order['id']}").json()
    assert storefront["swaps"][0]["payment_status"] == "captured"


def test_a_swap_where_the_store_owes_money_refunds_the_difference_on_the_order(
    boss, paid_order, socks
):
    created = swap(boss, paid_order, returned=2, product=socks)  # -3000 + 1000

    assert (created["difference_due"], created["cart_id"]) == (-2000, None)

    processed = admin_post(boss, f"swaps/{created['id']}/process-payment")
    again = admin_post(boss, f"swaps/{created['id']}/process-payment")

    assert processed.status_code == again.status_code == 200
    assert (processed.json()["status"], processed.json()["payment_status"]) == (
        "completed",
        "difference_refunded",
    )
    order = admin_order(boss, paid_order["id"])
    assert (order["paid_total"], order["refunded_total"], order["refundable_amount"]) == (
        3000,
        2000,
        1000,
    )
    assert order["payment_status"] == "partially_refunded"
    [refund] = order["refunds"]
    assert (refund["amount"], refund["reason"], refund["status"]) == (2000, "swap", "succeeded")
    assert created["id"] in refund["note"]
    assert [e.amount for e in remote("refund")] == [2000]


def test_a_swap_with_nothing_owed_either_way_is_settled_without_moving_money(
    boss, paid_order, product
):
    created = swap(boss, paid_order, returned=1, product=product)

    processed = admin_post(boss, f"swaps/{created['id']}/process-payment")

    assert created["difference_due"] == 0
    assert processed.json()["status"] == "completed"
    assert remote("refund") == []
    assert len(remote("capture")) == 1  # the order's own capture


def test_processing_a_swap_before_the_customer_paid_is_refused(boss, paid_order, shirt):
    created = swap(boss, paid_order, returned=1, product=shirt)

    response = admin_post(boss, f"swaps/{created['id']}/process-payment")

    assert response.status_code == 409
    assert response.json()["code"] == "invalid_state"
    assert Swap.objects.get(pk=created["id"]).status == "requested"


def test_an_order_refund_is_spread_over_the_order_and_swap_payments_oldest_first(
    boss, paid_order, shirt
):
    created = swap(boss, paid_order, returned=1, product=shirt)
    pay_cart(created["cart_id"])
    admin_post(boss, f"swaps/{created['id']}/process-payment")

    response = admin_post(
        boss, f"orders/{paid_order['id']}/refund", {"amount": 3200, "reason": "return"}
    )

    assert response.status_code == 200, response.json()
    order = response.json()
    payments = {p["id"]: p for p in order["payments"]}
    assert sorted((r["amount"], payments[r["payment_id"]]["amount"]) for r in order["refunds"]) == [
        (200, 500),
        (3000, 3000),
    ]
    assert (order["refunded_total"], order["refundable_amount"]) == (3200, 300)
    too_much = admin_post(
        boss, f"orders/{paid_order['id']}/refund", {"amount": 301, "reason": "other"}
    )
    assert too_much.status_code == 422


def test_canceling_a_swap_the_customer_paid_releases_their_payment(boss, paid_order, shirt):
    created = swap(boss, paid_order, returned=1, product=shirt)
    pay_cart(created["cart_id"])
    swap_payment = Payment.objects.get(swap_id=created["id"])

    response = admin_post(boss, f"swaps/{created['id']}/cancel")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["payment_status"]) == (
        "canceled",
        "canceled",
    )
    swap_payment.refresh_from_db()
    assert swap_payment.canceled_at is not None
    assert len(remote("cancel", session_id=swap_payment.session_id)) == 1
    assert Order.objects.get(pk=paid_order["id"]).payment_status == "captured"
    assert admin_post(boss, f"swaps/{created['id']}/process-payment").status_code == 409


def test_the_cart_of_a_canceled_swap_cannot_be_paid(boss, paid_order, shirt):
    created = swap(boss, paid_order, returned=1, product=shirt)
    assert admin_post(boss, f"swaps/{created['id']}/cancel").status_code == 200
    client = APIClient()
    cart_path = f"/api/store/carts/{created['cart_id']}"
    client.post(f"{cart_path}/payment-sessions")
    client.post(f"{cart_path}/payment-session", {"provider_id": "test"}, format="json")

    response = client.post(f"{cart_path}/complete")

    assert (response.status_code, response.json()["code"]) == (409, "invalid_state")
    assert not Payment.objects.filter(cart_id=created["cart_id"]).exists()
    assert len(remote("authorize")) == 1  # the original order's, nothing for the swap


def test_a_processed_swap_cannot_be_canceled(boss, paid_order, socks):
    created = swap(boss, paid_order, returned=2, product=socks)
    admin_post(boss, f"swaps/{created['id']}/process-payment")

    response = admin_post(boss, f"swaps/{created['id']}/cancel")

    assert response.status_code == 409
    assert Refund.objects.count() == 1


def test_items_cannot_be_returned_twice_or_beyond_what_was_bought(boss, paid_order, socks):
    item_id = paid_order["items"][0]["id"]
    swap(boss, paid_order, returned=1, product=socks)

    beyond = admin_post(
        boss,
        f"orders/{paid_order['id']}/swaps",
        {"return_items": [{"item_id": item_id, "quantity": 2}]},
    )
    unknown = admin_post(
        boss,
        f"orders/{paid_order['id']}/swaps",
        {"return_items": [{"item_id": "item_nope", "quantity": 1}]},
    )
    empty = admin_post(boss, f"orders/{paid_order['id']}/swaps", {})

    assert [r.status_code for r in (beyond, unknown, empty)] == [400, 400, 400]
    assert beyond.json()["fields"]["return_items"] == [
        f"Only 1 of {item_id} can still be returned."
    ]
    assert Swap.objects.count() == 1


def test_an_additional_product_must_be_sold_in_the_orders_currency(boss, paid_order):
    euro_only = factories.ProductFactory(prices={"eur": 900})

    response = admin_post(
        boss,
        f"orders/{paid_order['id']}/swaps",
        {"additional_items": [{"product_id": euro_only.id, "quantity": 1}]},
    )

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"additional_items"}


def test_processing_a_swap_needs_the_permission_for_the_money_it_moves(paid_order, socks, boss):
    created = swap(boss, paid_order, returned=2, product=socks)
    capturer = admin_client(
        staff_user("checkout.change_swap", "payments.capture_payment", username="capturer")
    )

    response = admin_post(capturer, f"swaps/{created['id']}/process-payment")

    assert response.status_code == 403
    assert "payments.refund_payment" in response.json()["message"]
    assert not Refund.objects.exists()


def test_the_storefront_cannot_change_a_swap_carts_items_or_region(boss, paid_order, shirt):
    created = swap(boss, paid_order, returned=1, product=shirt)
    client = APIClient()
    cart_path = f"/api/store/carts/{created['cart_id']}"
    item_id = client.get(cart_path).json()["items"][0]["id"]
    other_region = factories.RegionFactory(currency_code="usd")

    changes = [
        client.post(f"{cart_path}/line-items/{item_id}", {"quantity": 0}, format="json"),
        client.post(
            f"{cart_path}/line-items", {"product_id": shirt.id, "quantity": 1}, format="json"
        ),
        client.post(cart_path, {"region_id": other_region.id}, format="json"),
    ]

    assert [(r.status_code, r.json()["code"]) for r in changes] == [(409, "invalid_state")] * 3
    assert client.post(cart_path, {"email": "new@example.com"}, format="json").status_code == 200
    assert client.get(cart_path).json()["total"] == 500
