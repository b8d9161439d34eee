"""The storefront API of SPEC section 4: carts, items, sessions, errors, query counts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from checkout.models import Cart
from payments.models import PaymentEvent, PaymentSession
from providers.test.models import LedgerEntry
from tests import factories

pytestmark = pytest.mark.django_db


def test_regions_list_their_installed_providers(store, region):
    assert store.get("regions").json() == [
        {
            "id": region.id,
            "name": region.name,
            "currency_code": "usd",
            "countries": [],
            "payment_providers": ["manual", "test"],
        }
    ]


def test_products_are_priced_in_the_regions_currency(store, region, eur_region):
    factories.ProductFactory(title="Shirt", prices={"usd": 1500, "eur": 1300})
    factories.ProductFactory(title="Dollar only", prices={"usd": 99})

    eur = store.get(f"products?region_id={eur_region.id}").json()

    assert [(p["title"], p["price"], p["currency_code"]) for p in eur] == [("Shirt", 1300, "eur")]
    assert store.get("products").status_code == 400
    assert store.get("products?region_id=reg_nope").json()["code"] == "invalid_data"


def test_line_items_take_their_price_from_the_catalogue_and_merge(store, region, product):
    cart_id = store.post("carts", {"region_id": region.id}).json()["id"]

    store.post(f"carts/{cart_id}/line-items", {"product_id": product.id, "quantity": 2})
    cart = store.post(
        f"carts/{cart_id}/line-items", {"product_id": product.id, "quantity": 3}
    ).json()

    assert [(i["unit_price"], i["quantity"], i["total"]) for i in cart["items"]] == [
        (1500, 5, 7500)
    ]
    assert (cart["subtotal"], cart["total"]) == (7500, 7500)
    item_id = cart["items"][0]["id"]
    assert (
        store.post(f"carts/{cart_id}/line-items/{item_id}", {"quantity": 1}).json()["total"] == 1500
    )
    assert (
        store.client.delete(f"/api/store/carts/{cart_id}/line-items/{item_id}").json()["items"]
        == []
    )


def test_a_client_sent_price_is_refused(store, region, product):
    cart_id = store.post("carts", {"region_id": region.id}).json()["id"]

    response = store.post(
        f"carts/{cart_id}/line-items", {"product_id": product.id, "quantity": 1, "unit_price": 1}
    )

    assert response.status_code == 400
    assert response.json()["fields"] == {"unit_price": ["Unknown field."]}


def test_sessions_follow_the_cart_total_at_their_provider(store, region, product):
    cart_id = store.cart_ready(region, product, quantity=1)
    session_id = PaymentSession.objects.get(cart_id=cart_id, provider_id="test").id
    store.post(f"carts/{cart_id}/payment-sessions/test", {"data": {"outcome": "authorized"}})

    cart = store.post(
        f"carts/{cart_id}/line-items", {"product_id": product.id, "quantity": 1}
    ).json()

    assert {s["amount"] for s in cart["payment_sessions"]} == {3000}
    assert cart["payment_session"]["provider_id"] == "test"
    assert PaymentEvent.objects.filter(session_id=session_id, type="update").count() == 2


def test_a_region_change_reprices_items_and_cancels_the_old_sessions(store, region, eur_region):
    product = factories.ProductFactory(prices={"usd": 1500, "eur": 1300})
    cart_id = store.cart_ready(region, product)
    # An authorization held remotely must not be orphaned by the region change.
    from payments.purchase import Purchase
    from payments.services.sessions import payment_session_authorize

    payment_session_authorize(
        session=PaymentSession.objects.get(cart_id=cart_id, provider_id="test"),
        purchase=Purchase(),
    )

    cart = store.post(f"carts/{cart_id}", {"region_id": eur_region.id}).json()

    assert (cart["currency_code"], cart["total"], cart["payment_sessions"]) == ("eur", 2600, [])
    assert LedgerEntry.objects.filter(operation="cancel").count() == 1
    assert PaymentEvent.objects.filter(cart_id=cart_id, type="release", success=True).count() == 2


def test_selecting_a_provider_not_enabled_in_the_region_is_422(store, region, product):
    cart_id = store.cart_ready(region, product)
    region.payment_providers.remove("test")

    response = store.post(f"carts/{cart_id}/payment-session", {"provider_id": "test"})
    assert response.status_code == 422
    assert response.json()["code"] == "provider_not_available"
    cart = store.post(f"carts/{cart_id}/payment-sessions").json()
    assert [s["provider_id"] for s in cart["payment_sessions"]] == ["manual"]


def test_refresh_recreates_the_session_and_keeps_it_selected(store, cart_id):
    old = PaymentSession.objects.get(cart_id=cart_id, provider_id="test")

    cart = store.post(f"carts/{cart_id}/payment-sessions/test/refresh").json()

    assert cart["payment_session"]["provider_id"] == "test"
    assert cart["payment_session"]["id"] != old.id
    deleted = store.client.delete(f"/api/store/carts/{cart_id}/payment-sessions/test").json()
    assert deleted["payment_session"] is None


def test_a_completed_cart_refuses_changes(store, cart_id, product):
    order_id = store.complete(cart_id).json()["data"]["id"]

    response = store.post(f"carts/{cart_id}", {"email": "new@example.com"})

    assert response.status_code == 409 and response.json()["code"] == "cart_completed"
    order = store.get(f"orders/{order_id}").json()
    assert order["cart_id"] == cart_id and len(order["items"]) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("carts", {"region_id": 5}),
        ("carts", {"region_id": "reg_missing"}),
        ("carts", {"region_id": "x", "email": "not-an-email"}),
        ("carts", ["a list"]),
        ("carts/{cart}/line-items", {"product_id": "{product}", "quantity": 0}),
        ("carts/{cart}/line-items", {"product_id": "{product}", "quantity": 1001}),
        ("carts/{cart}/line-items", {"product_id": "{product}", "quantity": "2"}),
        ("carts/{cart}/line-items", {"product_id": "{product}", "quantity": 2.0}),
        ("carts/{cart}/line-items", {"product_id": "{product}", "quantity": True}),
        ("carts/{cart}/line-items", {"product_id": "prod_missing", "quantity": 1}),
        ("carts/{cart}/line-items/{foreign_item}", {"quantity": 1}),
        ("carts/{cart}/payment-sessions/test", {"data": "nope"}),
        ("carts/{cart}/payment-sessions/test", {"data": {"delay_ms": 99999}}),
        ("carts/{cart}/payment-session", {"provider_id": "stripe"}),
        ("carts/cart_missing/line-items", {"product_id": "{product}", "quantity": 1}),
        ("orders/order_missing", None),
    ],
)
def test_bad_input_gets_a_4xx_with_the_contracts_body(store, region, product, path, body):
    cart_id = store.cart_ready(region, product)
    foreign = factories.LineItemFactory()
    values = {"cart": cart_id, "product": product.id, "foreign_item": foreign.id}
    path = path.format(**values)
    if isinstance(body, dict):
        body = {k: v.format(**values) if isinstance(v, str) else v for k, v in body.items()}

    response = store.get(path) if body is None else store.post(path, body)

    assert 400 <= response.status_code < 500, response.content
    assert set(response.json()) >= {"code", "message"}


def test_malformed_json_is_400(store, region):
    response = store.client.post("/api/store/carts", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_data"


def _cart_with(store, region, items: int) -> str:  # type: ignore[no-untyped-def]
    cart_id = store.post("carts", {"region_id": region.id}).json()["id"]
    for _ in range(items):
        product = factories.ProductFactory(prices={"usd": 100})
        store.post(f"carts/{cart_id}/line-items", {"product_id": product.id, "quantity": 1})
    store.post(f"carts/{cart_id}/payment-sessions")
    store.post(f"carts/{cart_id}/payment-session", {"provider_id": "manual"})
    return cart_id


def _queries(call) -> int:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as captured:
        response = call()
    assert response.status_code == 200
    return len(captured)


def test_reading_a_cart_costs_the_same_queries_whatever_its_size(
    store, region, django_assert_max_num_queries
):
    small, large = _cart_with(store, region, 1), _cart_with(store, region, 12)

    with django_assert_max_num_queries(5):
        store.get(f"carts/{large}")
    assert _queries(lambda: store.get(f"carts/{small}")) == _queries(
        lambda: store.get(f"carts/{large}")
    )


@pytest.mark.django_db(transaction=True)
def test_completing_costs_the_same_queries_whatever_the_carts_size(
    store, region, django_assert_max_num_queries
):
    small, large = _cart_with(store, region, 1), _cart_with(store, region, 12)

    small_count = _queries(lambda: store.complete(small))
    with django_assert_max_num_queries(small_count):
        store.complete(large)
    assert Cart.objects.filter(completed_at__isnull=False).count() == 2


@pytest.mark.parametrize(
    "path", ["carts/%00", "orders/%00", "products?region_id=%00", f"carts/cart_{'x' * 300}"]
)
def test_values_the_database_cannot_hold_are_400_not_500(store, path):
    response = store.get(path)

    assert response.status_code in (400, 404)
    assert set(response.json()) >= {"code", "message"}
