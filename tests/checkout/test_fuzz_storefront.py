"""Hypothesis throws arbitrary JSON at every storefront endpoint: never a 5xx, always the
contract's error body (SPEC section 1)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.django_db

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=8,
)
field_names = st.sampled_from(
    ["region_id", "email", "product_id", "quantity", "provider_id", "data", "outcome", "amount"]
)
bodies = json_values | st.dictionaries(field_names, json_values, max_size=4)
paths = st.sampled_from(
    [
        "carts",
        "carts/{cart}",
        "carts/{cart}/line-items",
        "carts/{cart}/line-items/{item}",
        "carts/{cart}/line-items/item_unknown",
        "carts/{cart}/payment-sessions",
        "carts/{cart}/payment-session",
        "carts/{cart}/payment-sessions/test",
        "carts/{cart}/payment-sessions/manual",
        "carts/{cart}/payment-sessions/nope/refresh",
        "carts/cart_unknown/complete",
    ]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=paths, body=bodies, raw=st.binary(max_size=40) | st.none())
def test_arbitrary_bodies_never_reach_a_server_error(store, region, product, path, body, raw):
    cart_id = store.cart_ready(region, product)
    item_id = store.get(f"carts/{cart_id}").json()["items"][0]["id"]
    url = "/api/store/" + path.format(cart=cart_id, item=item_id)
    payload = raw if raw is not None else json.dumps(body)

    response = store.client.post(url, payload, content_type="application/json")

    assert response.status_code < 500, (url, payload, response.content)
    if response.status_code >= 400:
        error = response.json()
        assert isinstance(error["code"], str) and isinstance(error["message"], str)
