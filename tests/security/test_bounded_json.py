"""Finding 4 (low): JSON a hostile client sends.

b'{"a":' * 2000 or a 100,000-deep array answered 500 on every JSON endpoint (storefront,
complete's fingerprint, admin API, signed webhooks), logging a RecursionError; a 5,000-digit
integer answered a message about sys.set_int_max_str_digits(). Every body is now read
through payments.bounded_json: deeper than 64 levels, an integer of more than 30 digits or a
body over DATA_UPLOAD_MAX_MEMORY_SIZE is 400 invalid_data, in words meant for the client.
"""

from __future__ import annotations

import json
import time

import pytest
import stripe
from django.test import Client
from rest_framework.test import APIClient

from checkout.models import Order
from payments import bounded_json
from tests.backoffice import MONEY_PERMISSIONS, admin_client, staff_user
from tests.providers.stripe_fake import WEBHOOK_SECRET

pytestmark = pytest.mark.django_db

DEEP_OBJECT = b'{"a":' * 2000
DEEP_ARRAY = b"[" * 100_000
HUGE_INTEGER = b'{"quantity": ' + b"9" * 5000 + b"}"
HOSTILE = pytest.mark.parametrize(
    ("body", "words"),
    [
        (DEEP_OBJECT, "nested more than 64 levels"),
        (DEEP_ARRAY, "nested more than 64 levels"),
        (b"[" * 65 + b"]" * 65, "nested more than 64 levels"),
        (HUGE_INTEGER, "more than 30 digits"),
    ],
    ids=["deep-object", "deep-array", "65-levels", "5000-digits"],
)


def assert_refused(response, words: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["code"] == "invalid_data"
    assert words in body["message"]
    assert "sys." not in body["message"] and "Recursion" not in body["message"]


def post(client, path: str, body: bytes, **headers: str):  # type: ignore[no-untyped-def]
    return client.post(path, body, content_type="application/json", headers=headers)


@HOSTILE
def test_the_storefront_refuses_it(region, body, words):
    cart_id = post(Client(), "/api/store/carts", json.dumps({"region_id": region.id}).encode())
    cart = cart_id.json()["id"]

    assert_refused(post(Client(), "/api/store/carts", body), words)
    assert_refused(post(Client(), f"/api/store/carts/{cart}/line-items", body), words)


@HOSTILE
def test_the_admin_api_refuses_it(order: Order, body, words):
    api = admin_client(staff_user(*MONEY_PERMISSIONS, "checkout.add_region"))
    payment = order.payments.get()

    assert_refused(post(api, f"/api/admin/payments/{payment.pk}/refund", body), words)
    assert_refused(post(api, "/api/admin/regions", body), words)


@HOSTILE
def test_a_signed_stripe_webhook_refuses_it(stripe_server, body, words):
    signed_at = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(
        f"{signed_at}.{body.decode()}", WEBHOOK_SECRET
    )

    answer = post(
        Client(), "/api/hooks/stripe", body, **{"Stripe-Signature": f"t={signed_at},v1={signature}"}
    )

    assert_refused(answer, words)


def test_complete_ignores_a_hostile_body_it_only_fingerprints(region, product):
    """complete takes no body; it digests whatever comes, so a retry can be compared."""
    store = APIClient()
    cart = store.post("/api/store/carts", {"region_id": region.id}, format="json").json()["id"]
    item = {"product_id": product.id, "quantity": 1}
    store.post(f"/api/store/carts/{cart}/line-items", item, format="json")
    store.post(f"/api/store/carts/{cart}/payment-sessions")
    store.post(f"/api/store/carts/{cart}/payment-session", {"provider_id": "manual"}, format="json")

    first = post(store, f"/api/store/carts/{cart}/complete", DEEP_ARRAY, **{"Idempotency-Key": "k"})
    again = post(store, f"/api/store/carts/{cart}/complete", DEEP_ARRAY, **{"Idempotency-Key": "k"})
    other = post(
        store, f"/api/store/carts/{cart}/complete", DEEP_OBJECT, **{"Idempotency-Key": "k"}
    )

    assert first.status_code == 200 and first.json()["type"] == "order"
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_mismatch"


def test_an_admin_post_without_a_body_fingerprints_a_hostile_one_too(order: Order):
    api = admin_client(staff_user(*MONEY_PERMISSIONS))
    payment = order.payments.get()

    answer = post(api, f"/api/admin/payments/{payment.pk}/cancel", DEEP_ARRAY)

    assert answer.status_code == 200 and answer.json()["canceled_at"]


def test_a_body_over_the_size_limit_is_refused_before_it_is_parsed(settings, order: Order):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big = json.dumps({"email": "x" * 1000}).encode()
    api = admin_client(staff_user(*MONEY_PERMISSIONS))
    payment = order.payments.get()

    store = post(Client(), "/api/store/carts", big)
    admin = post(api, f"/api/admin/payments/{payment.pk}/refund", big)

    for answer in (store, admin):
        assert answer.status_code == 400
        assert answer.json() == {
            "code": "invalid_data",
            "message": "The body is larger than 1000 bytes.",
        }


def test_the_bounds_are_inclusive_and_other_numbers_pass():
    # The object is the first level: 63 more make 64.
    at_limit = "[" * 63 + "]" * 63
    value = bounded_json.loads(f'{{"n": {"9" * 30}, "f": 1e400, "deep": {at_limit}}}')

    assert value["n"] == int("9" * 30)
    assert value["f"] == float("inf")
    with pytest.raises(bounded_json.JSONRefused, match="more than 30 digits"):
        bounded_json.loads("-" + "9" * 31)
    with pytest.raises(bounded_json.JSONRefused, match="NaN is not a JSON value"):
        bounded_json.loads("[NaN]")
