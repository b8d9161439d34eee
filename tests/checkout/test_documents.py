"""The plain-dict cart and order documents say exactly what their serializers (the OpenAPI
schema's source) say, in every state a storefront sees."""

from __future__ import annotations

import json

import pytest
from rest_framework.renderers import JSONRenderer

from checkout.api.documents import cart_document, order_document
from checkout.api.serializers import CartSerializer, OrderSerializer
from checkout.selectors import order_get
from checkout.services import cart_get
from tests.backoffice import admin_client, admin_post, staff_user
from tests.checkout.test_admin_orders import busy_order

pytestmark = pytest.mark.django_db


def rendered(data: object) -> bytes:
    return JSONRenderer().render(data)


def assert_cart_documents_agree(cart_id: str) -> None:
    cart = cart_get(cart_id)
    assert rendered(cart_document(cart)) == rendered(CartSerializer(cart).data)


def test_a_cart_document_is_its_serializers_output_at_every_step(store, region, product):
    created = store.post("carts", {"region_id": region.id, "email": "c@example.com"}).json()
    cart_id = created["id"]
    assert_cart_documents_agree(cart_id)
    store.post(f"carts/{cart_id}/line-items", {"product_id": product.id, "quantity": 2})
    assert_cart_documents_agree(cart_id)
    store.post(f"carts/{cart_id}/payment-sessions")
    assert_cart_documents_agree(cart_id)
    store.post(f"carts/{cart_id}/payment-sessions/test", {"data": {"outcome": "requires_more"}})
    store.post(f"carts/{cart_id}/payment-session", {"provider_id": "test"})
    assert_cart_documents_agree(cart_id)
    needs_customer = store.complete(cart_id, key="k").json()
    assert needs_customer["type"] == "cart"
    assert_cart_documents_agree(cart_id)
    assert cart_get(cart_id).selected_session.next_action is not None

    store.post(f"carts/{cart_id}/payment-sessions/test", {"data": {"outcome": "authorized"}})
    assert store.complete(cart_id, key="k").json()["type"] == "order"
    assert_cart_documents_agree(cart_id)
    assert cart_document(cart_get(cart_id))["order_id"]


def test_an_order_document_is_its_serializers_output_new_and_after_refunds_and_swaps(
    store, cart_id, region, product
):
    completion = store.complete(cart_id, key="k")
    order_id = completion.json()["data"]["id"]
    order = order_get(order_id)
    assert rendered(order_document(order)) == rendered(OrderSerializer(order).data)
    # What the completion stored (rendered from the rows it had just written) is the order
    # as read back.
    assert json.loads(completion.content)["data"] == json.loads(rendered(order_document(order)))

    boss = admin_client(staff_user(username="boss", superuser=True))
    admin_post(boss, f"orders/{order_id}/capture")
    order = order_get(order_id)
    assert rendered(order_document(order)) == rendered(OrderSerializer(order).data)

    from tests import factories

    shirt = factories.ProductFactory(title="Shirt", prices={region.currency_code: 2000})
    busy = order_get(busy_order(boss, region, product, shirt))
    assert busy.refunds.all() and busy.swaps.all()
    assert rendered(order_document(busy)) == rendered(OrderSerializer(busy).data)
