"""The Payment's amounts are rebuilt from the PaymentEvent ledger (SPEC section 2)."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from payments.models import Payment, PaymentOperation, Refund
from payments.services import (
    SYSTEM,
    payment_cancel,
    payment_capture,
    payment_refund,
)
from payments.services.ledger import payments_reconcile
from tests.backoffice import place_order, remote
from tests.payments.flaky import FlakyProvider

pytestmark = pytest.mark.django_db


def reconcile(*args: str) -> tuple[str, bool]:
    out = StringIO()
    try:
        call_command("reconcile_payments", *args, stdout=out)
    except CommandError:
        return out.getvalue(), False
    return out.getvalue(), True


@pytest.fixture
def worked(payment):  # type: ignore[no-untyped-def]
    """A payment captured in part and refunded twice."""
    payment_capture(payment_id=payment.id, amount=2500, actor=SYSTEM)
    payment_refund(payment_id=payment.id, amount=300, reason="return", actor=SYSTEM)
    payment_refund(payment_id=payment.id, amount=200, reason="other", actor=SYSTEM)
    return payment


def test_amounts_written_by_the_services_agree_with_the_ledger(worked, region, product):
    canceled = Payment.objects.get(order_id=place_order(region=region, items=[(product, 1)])["id"])
    payment_cancel(payment_id=canceled.id, actor=SYSTEM)

    output, clean = reconcile()

    assert clean
    assert payments_reconcile() == []
    assert output.strip().endswith("0 payment(s) disagree with the ledger")


def test_reconcile_payments_finds_a_payment_tampered_with_in_sql(worked):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE payments_payment SET amount_refunded = 100 WHERE id = %s", [worked.id]
        )

    output, clean = reconcile()

    assert not clean
    assert f"{worked.id}: amount_refunded stored 100 ledger 500" in output
    [found] = payments_reconcile()
    assert found.differences == {"amount_refunded": (100, 500)}


def test_a_tampered_payment_is_rebuilt_from_its_ledger_on_request(worked):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE payments_payment SET amount_captured = 3000, amount_refunded = 0 WHERE id = %s",
            [worked.id],
        )

    output, clean = reconcile("--fix")

    assert clean
    assert f"{worked.id}: rebuilt from the ledger" in output
    worked.refresh_from_db()
    assert (worked.amount, worked.amount_captured, worked.amount_refunded) == (3000, 2500, 500)
    assert payments_reconcile() == []


def test_a_capture_that_never_reached_the_ledger_is_reported(payment):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE payments_payment SET amount_captured = 3000, captured_at = now() WHERE id = %s",
            [payment.id],
        )

    [found] = payments_reconcile()

    assert found.differences == {"amount_captured": (3000, 0), "captured": (True, False)}


def test_resume_pending_settles_a_refund_whose_answer_was_lost(flaky, product):
    order = place_order(region=flaky, items=[(product, 1)], provider="flaky")
    payment = Payment.objects.get(order_id=order["id"])
    payment_capture(payment_id=payment.id, actor=SYSTEM)
    FlakyProvider.lose.add("refund")
    with pytest.raises(Exception, match="outcome is unknown"):
        payment_refund(payment_id=payment.id, amount=500, reason="other", actor=SYSTEM)
    operation = PaymentOperation.objects.get(type="refund")

    output, clean = reconcile("--resume-pending")

    assert clean
    assert f"{operation.id} refund: succeeded" in output
    payment.refresh_from_db()
    assert payment.amount_refunded == 500
    assert Refund.objects.get().status == "succeeded"
    assert [e.amount for e in remote("refund")] == [500]


def test_resume_pending_takes_over_a_capture_whose_process_died_mid_call(flaky, product):
    order = place_order(region=flaky, items=[(product, 2)], provider="flaky")
    payment = Payment.objects.get(order_id=order["id"])
    FlakyProvider.lose.add("capture")
    with pytest.raises(Exception, match="outcome is unknown"):
        payment_capture(payment_id=payment.id, amount=1000, actor=SYSTEM, request_key="gone")
    # As if the process had died during the call: still `requested`, its lease held.
    operation = PaymentOperation.objects.get(type="capture")
    PaymentOperation.objects.filter(pk=operation.pk).update(
        status="requested", lease_until=timezone.now() + timedelta(minutes=1)
    )
    with pytest.raises(Exception, match="being asked; retry"):
        payment_capture(payment_id=payment.id, actor=SYSTEM)  # a racing request waits
    output, _ = reconcile("--resume-pending")
    assert f"{operation.id} capture" not in output  # nobody takes over a live attempt
    PaymentOperation.objects.filter(pk=operation.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )

    output, clean = reconcile("--resume-pending")

    assert clean
    assert f"{operation.id} capture: succeeded" in output
    payment.refresh_from_db()
    assert (payment.amount_captured, payment.open_operations()) == (1000, [])
    assert [e.amount for e in remote("capture")] == [1000]
