"""Capture, refund and cancel of a payment through the admin API (SPEC section 6)."""

from __future__ import annotations

import pytest

from checkout.models import Order
from payments.models import Payment, PaymentEvent, Refund
from providers.test.models import LedgerEntry
from tests.backoffice import admin_post, place_order, remote

pytestmark = pytest.mark.django_db


def order_row(payment: Payment) -> Order:
    return Order.objects.get(pk=payment.order_id)


def test_partial_capture_then_two_partial_refunds_then_a_refund_past_the_rest_is_refused(
    operator, payment
):
    captured = admin_post(operator, f"payments/{payment.id}/capture", {"amount": 2000})
    first = admin_post(
        operator, f"payments/{payment.id}/refund", {"amount": 500, "reason": "return"}
    )
    second = admin_post(
        operator,
        f"payments/{payment.id}/refund",
        {"amount": 700, "reason": "discount", "note": "loyalty"},
    )
    past_the_rest = admin_post(
        operator, f"payments/{payment.id}/refund", {"amount": 801, "reason": "other"}
    )

    assert captured.status_code == 200, captured.json()
    assert (captured.json()["amount_captured"], captured.json()["capturable_amount"]) == (2000, 0)
    assert first.status_code == second.status_code == 200
    assert [(r["amount"], r["reason"], r["status"]) for r in second.json()["refunds"]] == [
        (500, "return", "succeeded"),
        (700, "discount", "succeeded"),
    ]
    assert past_the_rest.status_code == 422
    assert past_the_rest.json() == {
        "code": "amount_exceeds_refundable",
        "message": "At most 800 can be refunded.",
    }
    payment.refresh_from_db()
    assert (payment.amount, payment.amount_captured, payment.amount_refunded) == (3000, 2000, 1200)
    assert [e.amount for e in remote("capture")] == [2000]
    assert [e.amount for e in remote("refund")] == [500, 700]
    order = order_row(payment)
    assert order.payment_status == "partially_refunded"


def test_the_order_answer_totals_follow_its_payment(operator, payment):
    admin_post(operator, f"payments/{payment.id}/capture", {"amount": 2000})
    admin_post(operator, f"payments/{payment.id}/refund", {"amount": 500, "reason": "return"})

    order = operator.get(f"/api/admin/orders/{payment.order_id}").json()

    assert (order["paid_total"], order["refunded_total"], order["refundable_amount"]) == (
        2000,
        500,
        1500,
    )
    assert [(e["type"], e["success"], e["actor"]) for e in order["events"]][-2:] == [
        ("capture", True, "operator"),
        ("refund", True, "operator"),
    ]


def test_a_partial_capture_leaves_the_order_partially_captured_and_a_full_one_captured(
    operator, region, product
):
    partial = Payment.objects.get(order_id=place_order(region=region, items=[(product, 2)])["id"])
    full = Payment.objects.get(order_id=place_order(region=region, items=[(product, 1)])["id"])

    admin_post(operator, f"payments/{partial.id}/capture", {"amount": 1000})
    admin_post(operator, f"payments/{full.id}/capture")

    assert order_row(partial).payment_status == "partially_captured"
    assert order_row(full).payment_status == "captured"
    full.refresh_from_db()
    assert full.amount_captured == 1500


def test_capturing_more_than_was_authorized_is_refused(operator, payment):
    response = admin_post(operator, f"payments/{payment.id}/capture", {"amount": 3001})

    assert response.status_code == 422
    assert response.json()["code"] == "amount_exceeds_capturable"
    payment.refresh_from_db()
    assert (payment.amount_captured, payment.captured_at, payment.can_capture()) == (
        0,
        None,
        True,
    )
    assert remote("capture") == []


def test_a_canceled_payment_cannot_be_captured(operator, payment):
    canceled = admin_post(operator, f"payments/{payment.id}/cancel")
    capture = admin_post(operator, f"payments/{payment.id}/capture")

    assert canceled.status_code == 200
    assert canceled.json()["canceled_at"] is not None
    assert capture.status_code == 409
    assert capture.json()["code"] == "invalid_state"
    assert [e.operation for e in LedgerEntry.objects.exclude(operation="authorize")] == ["cancel"]
    assert order_row(payment).payment_status == "canceled"


def test_a_captured_payment_cannot_be_canceled(operator, payment):
    admin_post(operator, f"payments/{payment.id}/capture")

    response = admin_post(operator, f"payments/{payment.id}/cancel")

    assert response.status_code == 409
    assert response.json()["code"] == "invalid_state"
    payment.refresh_from_db()
    assert payment.canceled_at is None
    assert payment.amount_captured == 3000
    assert remote("cancel") == []


def test_a_payment_is_captured_once_because_a_capture_releases_the_rest(operator, payment):
    admin_post(operator, f"payments/{payment.id}/capture", {"amount": 1000})

    again = admin_post(operator, f"payments/{payment.id}/capture", {"amount": 1000})

    assert again.status_code == 409
    assert again.json()["code"] == "invalid_state"
    assert [e.amount for e in remote("capture")] == [1000]


def test_a_refund_needs_a_positive_amount_and_a_known_reason(operator, payment):
    admin_post(operator, f"payments/{payment.id}/capture")

    zero = admin_post(operator, f"payments/{payment.id}/refund", {"amount": 0, "reason": "other"})
    bogus = admin_post(operator, f"payments/{payment.id}/refund", {"amount": 10, "reason": "gift"})
    text = admin_post(
        operator, f"payments/{payment.id}/refund", {"amount": "10", "reason": "other"}
    )

    assert [r.status_code for r in (zero, bogus, text)] == [400, 400, 400]
    assert set(zero.json()["fields"]) == {"amount"}
    assert set(bogus.json()["fields"]) == {"reason"}
    assert not Refund.objects.exists()


def test_an_unknown_payment_is_not_found(operator):
    assert operator.get("/api/admin/payments/pay_nope").json()["code"] == "not_found"
    assert admin_post(operator, "payments/pay_nope/capture").status_code == 404


def test_the_payment_answer_shows_its_refunds_and_events_with_the_authorization(operator, payment):
    admin_post(operator, f"payments/{payment.id}/capture")
    admin_post(operator, f"payments/{payment.id}/refund", {"amount": 100, "reason": "other"})

    body = operator.get(f"/api/admin/payments/{payment.id}").json()

    assert [e["type"] for e in body["events"] if e["success"]][-3:] == [
        "authorize",
        "capture",
        "refund",
    ]
    assert body["refunds"][0]["amount"] == 100
    assert (body["order_id"], body["swap_id"]) == (payment.order_id, None)


def test_a_provider_failure_on_capture_changes_no_amounts_records_a_failed_event_and_marks_the_order_requires_action(  # noqa: E501
    operator, payment
):
    # The authorization expired at the provider (voided remotely): the capture is refused.
    authorization = LedgerEntry.objects.get(operation="authorize")
    LedgerEntry.objects.create(
        reference="tstcan_expired",
        operation="cancel",
        session_id=authorization.session_id,
        authorization=authorization.reference,
        amount=authorization.amount,
        idempotency_key="expired",
    )

    response = admin_post(operator, f"payments/{payment.id}/capture")

    assert response.status_code == 502
    assert response.json()["code"] == "provider_error"
    payment.refresh_from_db()
    assert (payment.amount_captured, payment.captured_at, payment.can_capture()) == (
        0,
        None,
        True,
    )
    failed = PaymentEvent.objects.get(payment=payment, type="capture")
    assert (failed.success, failed.actor, failed.amount) == (False, "operator", 3000)
    assert failed.error.startswith("other:")
    order = order_row(payment)
    assert (order.status, order.payment_status) == ("requires_action", "requires_action")


def test_an_order_requiring_action_recovers_with_the_next_successful_operation(operator, payment):
    LedgerEntry.objects.create(
        reference="tstcan_expired",
        operation="cancel",
        session_id=payment.session_id,
        authorization=payment.data["authorization"],
        amount=payment.amount,
        idempotency_key="expired",
    )
    admin_post(operator, f"payments/{payment.id}/capture")

    # The operator releases what is left of the authorization on our side too.
    canceled = admin_post(operator, f"payments/{payment.id}/cancel")

    assert canceled.status_code == 200
    order = order_row(payment)
    assert (order.status, order.payment_status) == ("pending", "canceled")
