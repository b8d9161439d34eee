"""`make soak`'s end checks pass on honest money and fail on doubled, lost or unfinished
money: they read the committed database with their own connection, as the soak does."""

from __future__ import annotations

import pytest
from django.db import connection

from bench import soak_checks
from payments.models import Payment, PaymentOperation
from providers.test.models import LedgerEntry
from tests.backoffice import admin_client, admin_post, staff_user
from tests.checkout.conftest import Storefront

pytestmark = pytest.mark.django_db(transaction=True)


def dsn() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def failed(checks: list[dict]) -> set[str]:
    return {c["check"] for c in checks if c["status"] == "fail"}


@pytest.fixture
def refunded(region, product) -> Payment:  # type: ignore[no-untyped-def]
    """A `test` payment captured in full and refunded in part, as the soak's operator does."""
    store = Storefront()
    cart_id = store.cart_ready(region, product)
    assert store.complete(cart_id).status_code == 200
    payment = Payment.objects.get(cart_id=cart_id)
    operator = admin_client(
        staff_user("payments.capture_payment", "payments.refund_payment", username="op")
    )
    assert admin_post(operator, f"payments/{payment.id}/capture").status_code == 200
    refund = {"amount": payment.amount // 4, "reason": "other"}
    assert admin_post(operator, f"payments/{payment.id}/refund", refund).status_code == 200
    payment.refresh_from_db()
    return payment


def test_honest_money_passes_every_check(refunded):
    checks = soak_checks.money_checks(dsn()) + soak_checks.database_checks(dsn())
    expected = {refunded.id: (refunded.amount, refunded.amount // 4)}
    checks += soak_checks.expectation_checks(dsn(), expected)

    assert failed(checks) == set()


def test_a_refund_doubled_at_the_provider_is_reported(refunded):
    authorization = refunded.data["authorization"]
    first = LedgerEntry.objects.get(operation="refund", authorization=authorization)
    first.pk, first.reference, first.idempotency_key = None, "doubled", "doubled"
    first.save()

    assert failed(soak_checks.money_checks(dsn())) == {
        "per payment: amount_refunded == remote refunds (test provider)"
    }


def test_a_refund_the_operator_asked_for_that_never_happened_is_reported(refunded):
    expected = {refunded.id: (refunded.amount, refunded.amount // 4 * 2)}

    assert failed(soak_checks.expectation_checks(dsn(), expected)) == {
        "the operator's captures and refunds all took effect, once"
    }


def test_an_operation_left_unknown_is_reported_and_not_drained(refunded):
    PaymentOperation.objects.filter(payment=refunded, type="refund").update(
        status="unknown", settled_at=None
    )

    assert "no operation left requested or unknown" in failed(soak_checks.database_checks(dsn()))
    _, left = soak_checks.drain(dsn(), lease_seconds=10, timeout=0)
    assert left["operations requested or unknown"] == 1


def test_a_second_live_authorization_for_a_cart_is_reported(refunded):
    first = LedgerEntry.objects.get(operation="authorize", session_id=refunded.session_id)
    first.pk, first.reference, first.idempotency_key = None, "again", "again"
    first.authorization = "again"
    first.save()

    assert failed(soak_checks.database_checks(dsn())) >= {
        "zero carts with more than one live remote authorization",
        "zero sessions with more than one remote authorization",
        "every remote authorization has an order or a cancel",
    }
