"""Idempotency-Key on admin POSTs (SPEC section 6): one answer per key, money moved once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from checkout.models import Order
from payments.api.idempotent import admin_request
from payments.idempotency import idempotency_key_begin
from payments.models import IdempotencyKey, Payment, PaymentOperation, Refund
from tests.backoffice import (
    MONEY_PERMISSIONS,
    admin_client,
    admin_post,
    place_order,
    remote,
    staff_user,
)
from tests.payments.flaky import FlakyProvider

pytestmark = pytest.mark.django_db

REFUND = {"amount": 400, "reason": "return"}


@pytest.fixture
def captured(operator, payment):  # type: ignore[no-untyped-def]
    assert admin_post(operator, f"payments/{payment.id}/capture").status_code == 200
    return payment


def test_a_refund_post_retried_with_the_same_idempotency_key_refunds_once(operator, captured):
    path = f"payments/{captured.id}/refund"

    first = admin_post(operator, path, REFUND, key="refund-1")
    again = admin_post(operator, path, REFUND, key="refund-1")

    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert first["Idempotency-Key"] == again["Idempotency-Key"] == "refund-1"
    assert [e.amount for e in remote("refund")] == [400]
    captured.refresh_from_db()
    assert captured.amount_refunded == 400


def test_the_ledger_endpoint_shows_one_refund_for_a_retried_post(operator, captured):
    for _ in range(3):
        admin_post(operator, f"payments/{captured.id}/refund", REFUND, key="refund-1")

    ledger = operator.get(
        "/api/admin/providers/test/ledger", {"session_id": captured.session_id}
    ).json()

    assert [(e["operation"], e["amount"]) for e in ledger] == [
        ("authorize", 3000),
        ("capture", 3000),
        ("refund", 400),
    ]


def test_a_key_reused_for_another_body_is_a_mismatch(operator, captured):
    path = f"payments/{captured.id}/refund"
    admin_post(operator, path, REFUND, key="refund-1")

    other = admin_post(operator, path, {**REFUND, "amount": 500}, key="refund-1")

    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_mismatch"
    assert len(remote("refund")) == 1


def test_a_key_held_by_a_request_in_flight_answers_409(operator, operator_user, captured):
    held = admin_request(
        user_id=operator_user.pk,
        method="POST",
        path=f"/api/admin/payments/{captured.id}/refund",
        body=b'{"amount": 400, "reason": "return"}',
        header="refund-1",
    )
    idempotency_key_begin(held)  # another worker is running this very request

    response = admin_post(operator, f"payments/{captured.id}/refund", REFUND, key="refund-1")

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_in_use"
    assert response["Retry-After"]
    assert remote("refund") == []


def test_keys_are_scoped_per_staff_user(operator, operator_user, captured):
    other_user = staff_user(*MONEY_PERMISSIONS, username="other")
    other = admin_client(other_user)
    path = f"payments/{captured.id}/refund"

    mine = admin_post(operator, path, REFUND, key="same-key")
    theirs = admin_post(other, path, REFUND, key="same-key")

    assert mine.status_code == theirs.status_code == 200
    assert "Idempotent-Replayed" not in theirs
    assert len(remote("refund")) == 2
    admin_scopes = IdempotencyKey.objects.filter(key="same-key").values_list("scope", flat=True)
    assert set(admin_scopes) == {
        f"admin:{operator_user.pk}",
        f"admin:{other_user.pk}",
    }


def test_a_final_error_is_stored_and_replayed_like_a_success(operator, captured):
    path = f"payments/{captured.id}/refund"
    too_much = {"amount": 3001, "reason": "other"}

    first = admin_post(operator, path, too_much, key="k")
    admin_post(operator, path, {"amount": 3000, "reason": "other"}, key="k2")
    again = admin_post(operator, path, too_much, key="k")

    assert first.status_code == again.status_code == 422
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"


def test_a_post_without_a_key_gets_one_made_by_the_server(operator, captured):
    response = admin_post(operator, f"payments/{captured.id}/refund", REFUND)

    assert response.status_code == 200
    key = response["Idempotency-Key"]
    replay = admin_post(operator, f"payments/{captured.id}/refund", REFUND, key=key)
    assert replay["Idempotent-Replayed"] == "true"
    assert len(remote("refund")) == 1


def test_a_malformed_key_is_refused_before_anything_happens(operator, captured):
    response = admin_post(operator, f"payments/{captured.id}/refund", REFUND, key="x" * 256)

    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_invalid"
    assert not Refund.objects.exists()


def test_an_invalid_body_does_not_bind_the_key(operator, captured):
    path = f"payments/{captured.id}/refund"

    invalid = admin_post(operator, path, {"amount": -1, "reason": "other"}, key="k")
    valid = admin_post(operator, path, REFUND, key="k")

    assert invalid.status_code == 400
    assert valid.status_code == 200


# Lost answers: the outcome is unknown, the key is not stored, the retry settles it.


@pytest.fixture
def flaky_payment(flaky, product):  # type: ignore[no-untyped-def]
    """An order of 2 x 1500 usd paid through the flaky provider."""
    order = place_order(region=flaky, items=[(product, 2)], provider="flaky")
    return Payment.objects.get(order_id=order["id"])


def test_a_lost_refund_answer_is_retried_with_the_same_key_and_refunds_once(
    operator, flaky_payment
):
    path = f"payments/{flaky_payment.id}/refund"
    assert admin_post(operator, f"payments/{flaky_payment.id}/capture").status_code == 200
    FlakyProvider.lose.add("refund")

    lost = admin_post(operator, path, REFUND, key="refund-1")

    assert lost.status_code == 503
    assert lost.json()["code"] == "provider_unavailable"
    assert lost["Retry-After"]
    pending = Refund.objects.get()
    assert (pending.status, pending.amount) == ("pending", 400)
    flaky_payment.refresh_from_db()
    assert flaky_payment.amount_refunded == 0
    assert Order.objects.get(pk=flaky_payment.order_id).payment_status == "requires_action"

    retried = admin_post(operator, path, REFUND, key="refund-1")

    assert retried.status_code == 200
    assert [e.amount for e in remote("refund")] == [400]
    assert Refund.objects.get().status == "succeeded"
    flaky_payment.refresh_from_db()
    assert flaky_payment.amount_refunded == 400
    order = Order.objects.get(pk=flaky_payment.order_id)
    assert (order.status, order.payment_status) == ("pending", "partially_refunded")


def test_a_second_refund_form_after_a_lost_answer_is_refused_past_the_capture(
    operator, flaky_payment
):
    assert admin_post(operator, f"payments/{flaky_payment.id}/capture").status_code == 200
    FlakyProvider.lose.add("refund")
    lost = admin_post(
        operator, f"payments/{flaky_payment.id}/refund", {"amount": 2000, "reason": "other"}
    )

    # Another form, another key: the lost refund is first asked again under its own key.
    other = admin_post(
        operator, f"payments/{flaky_payment.id}/refund", {"amount": 1001, "reason": "other"}
    )

    assert lost.status_code == 503
    assert other.status_code == 422
    assert other.json()["message"] == "At most 1000 can be refunded."
    assert [e.amount for e in remote("refund")] == [2000]
    assert Refund.objects.get().status == "succeeded"


def test_a_lost_capture_answer_is_settled_by_the_retry_without_a_second_capture(
    operator, flaky_payment
):
    path = f"payments/{flaky_payment.id}/capture"
    FlakyProvider.lose.add("capture")

    lost = admin_post(operator, path, {"amount": 1000}, key="cap-1")
    unknown = list(
        flaky_payment.operations.filter(type="capture").values_list("type", "status", "amount")
    )
    # Another operator's cancel first asks the provider about the lost capture, under its
    # own key: it took effect, so the cancel is refused and nothing is captured twice.
    cancel_meanwhile = admin_post(operator, f"payments/{flaky_payment.id}/cancel")
    retried = admin_post(operator, path, {"amount": 1000}, key="cap-1")

    assert lost.status_code == 503
    assert unknown == [("capture", "unknown", 1000)]
    assert cancel_meanwhile.status_code == 409
    assert retried.status_code == 200
    assert retried.json()["amount_captured"] == 1000
    assert [e.amount for e in remote("capture")] == [1000]
    assert Order.objects.get(pk=flaky_payment.order_id).payment_status == "partially_captured"


def test_a_retry_while_the_worker_is_asking_about_the_lost_answer_waits_for_it(
    operator, flaky_payment
):
    path = f"payments/{flaky_payment.id}/refund"
    assert admin_post(operator, f"payments/{flaky_payment.id}/capture").status_code == 200
    FlakyProvider.lose.add("refund")
    assert admin_post(operator, path, REFUND, key="refund-1").status_code == 503
    # The worker has taken the lost refund to ask again: its lease is live.
    operation = PaymentOperation.objects.get(type="refund")
    PaymentOperation.objects.filter(pk=operation.pk).update(
        lease_until=timezone.now() + timedelta(seconds=30)
    )

    waiting = admin_post(operator, path, REFUND, key="refund-1")
    PaymentOperation.objects.filter(pk=operation.pk).update(lease_until=None)
    retried = admin_post(operator, path, REFUND, key="refund-1")

    # Not a 503 (the outcome is being asked right now) and not stored: the retry gets it.
    assert (waiting.status_code, waiting.json()["code"]) == (409, "invalid_state")
    assert int(waiting["Retry-After"]) > 0
    assert retried.status_code == 200 and retried.json()["amount_refunded"] == 400
    assert [e.amount for e in remote("refund")] == [400]
