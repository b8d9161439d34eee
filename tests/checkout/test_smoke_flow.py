import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_storefront_flow_turns_a_cart_into_an_order(api, region, product):
    cart = api.post("/api/store/carts", {"region_id": region.id, "email": "a@b.co"}, format="json")
    assert cart.status_code == 201, cart.json()
    cart_id = cart.json()["id"]
    r = api.post(
        f"/api/store/carts/{cart_id}/line-items",
        {"product_id": product.id, "quantity": 2},
        format="json",
    )
    assert r.status_code == 200, r.json()
    r = api.post(f"/api/store/carts/{cart_id}/payment-sessions")
    assert r.status_code == 200, r.json()
    r = api.post(
        f"/api/store/carts/{cart_id}/payment-session", {"provider_id": "test"}, format="json"
    )
    assert r.status_code == 200, r.json()
    r = api.post(f"/api/store/carts/{cart_id}/complete", HTTP_IDEMPOTENCY_KEY="k1")
    assert r.status_code == 200, r.content
    print(r.json())
