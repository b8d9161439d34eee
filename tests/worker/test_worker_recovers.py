"""The worker finishes what no client will (SPEC 5.6, 5.7): a real Celery worker process with
its scheduler, on Redis, against the committed test database. Nothing here calls a task or
a sweep by hand: each test sets the scene as a client would, then waits for the worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from checkout.models import Order
from payments.models import Payment, PaymentOperation, PaymentSession, Refund
from tests.backoffice import admin_client, admin_post, remote, staff_user
from tests.checkout.conftest import Storefront
from tests.worker.conftest import ROOT, Worker, eventually

pytestmark = pytest.mark.django_db(transaction=True)


def order_of(cart_id: str) -> Order | None:
    return Order.objects.filter(cart_id=cart_id).first()


def selected_session(cart_id: str) -> PaymentSession:
    return PaymentSession.objects.get(cart_id=cart_id, is_selected=True)


def paid_order(region, product, **data) -> Payment:  # type: ignore[no-untyped-def]
    store = Storefront()
    cart_id = store.cart_ready(region, product, data=data)
    assert store.complete(cart_id).status_code == 200
    return Payment.objects.get(cart_id=cart_id)


def test_a_client_that_vanishes_after_a_lost_authorization_answer_gets_its_order(
    worker, region, product
):
    store = Storefront()
    cart_id = store.cart_ready(region, product, data={"fail_after_authorize": True})

    lost = store.complete(cart_id, key="vanished")

    assert lost.status_code == 503
    eventually(lambda: order_of(cart_id) is not None, what="finish the checkout")
    session = selected_session(cart_id)
    assert len(remote("authorize", session_id=session.id)) == 1
    # The client's key holds the order: had it come back, it would have got it replayed.
    replay = store.complete(cart_id, key="vanished")
    assert (replay.status_code, replay["Idempotent-Replayed"]) == (200, "true")
    assert replay.json()["data"]["id"] == order_of(cart_id).id  # type: ignore[union-attr]


def test_a_vanished_checkout_whose_cart_then_changed_ends_canceled_not_ordered(
    worker, region, product
):
    store = Storefront()
    cart_id = store.cart_ready(region, product, data={"fail_after_authorize": True})
    session = selected_session(cart_id)
    assert store.complete(cart_id, key="vanished").status_code == 503

    changed = store.post(f"carts/{cart_id}/line-items", {"product_id": product.id, "quantity": 1})

    assert changed.status_code == 200
    authorization = PaymentOperation.objects.get(type="authorize", session_id=session.id)
    eventually(
        lambda: PaymentOperation.objects.get(pk=authorization.pk).status == "failed",
        what="settle the superseded authorization",
    )
    assert order_of(cart_id) is None
    # The old amount's hold was released at the provider with the amount change.
    held = {e.reference for e in remote("authorize", session_id=session.id)}
    released = {e.authorization for e in remote("cancel", session_id=session.id)}
    assert held and held <= released


def test_a_lost_refund_answer_is_settled_by_the_worker(worker, region, product):
    payment = paid_order(region, product, fail_after_refund=True)
    boss = admin_client(staff_user(superuser=True))
    assert admin_post(boss, f"payments/{payment.id}/capture").status_code == 200

    lost = admin_post(boss, f"payments/{payment.id}/refund", {"amount": 700, "reason": "return"})

    assert lost.status_code == 503
    eventually(lambda: Refund.objects.get(payment=payment).status == "succeeded", what="settle it")
    payment.refresh_from_db()
    assert payment.amount_refunded == 700
    assert [e.amount for e in remote("refund")] == [700]


def test_captures_and_refunds_a_provider_settles_later_settle_on_their_own(worker, region, product):
    payment = paid_order(region, product, async_operations=True, settle_after_ms=500)
    boss = admin_client(staff_user(superuser=True))

    captured = admin_post(boss, f"payments/{payment.id}/capture")

    assert (captured.status_code, captured.json()["amount_captured"]) == (200, 0)
    eventually(
        lambda: Payment.objects.get(pk=payment.pk).amount_captured == payment.amount,
        what="settle the pending capture",
    )
    refunded = admin_post(boss, f"payments/{payment.id}/refund", {"amount": 500, "reason": "other"})
    assert (refunded.status_code, refunded.json()["amount_refunded"]) == (200, 0)
    eventually(
        lambda: Payment.objects.get(pk=payment.pk).amount_refunded == 500,
        what="settle the pending refund",
    )
    assert not PaymentOperation.objects.filter(status__in=PaymentOperation.OPEN).exists()


def test_sessions_the_customer_did_not_pay_with_are_released_after_the_order(
    worker, region, product
):
    store = Storefront()
    cart_id = store.cart_ready(region, product, provider="manual")
    unselected = PaymentSession.objects.get(cart_id=cart_id, provider_id="test")

    assert store.complete(cart_id).status_code == 200

    eventually(
        lambda: PaymentSession.objects.get(pk=unselected.pk).status == "canceled",
        what="release the unselected session",
    )
    release = PaymentOperation.objects.get(type="release", session_id=unselected.id)
    assert (release.status, release.actor) == ("succeeded", "system")


def test_a_process_killed_in_the_middle_of_a_provider_call_is_resumed_with_one_effect(
    worker: Worker, region, product
):
    payment = paid_order(region, product, delay_ms=3000)
    # Another process captures; it is killed while the provider call is in flight.
    script = (
        "from payments.services import SYSTEM, payment_capture\n"
        f"payment_capture(payment_id={payment.id!r}, actor=SYSTEM)\n"
    )
    env = {**worker.env(), "CELERY_TASK_ALWAYS_EAGER": "true"}
    capturing = subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env
    )
    eventually(
        lambda: PaymentOperation.objects.filter(payment=payment, type="capture").exists(),
        what="see the capture written down",
    )
    os.kill(capturing.pid, signal.SIGKILL)
    capturing.wait()
    operation = PaymentOperation.objects.get(payment=payment, type="capture")
    assert operation.status == "requested"  # nobody knows what the provider did

    eventually(
        lambda: Payment.objects.get(pk=payment.pk).captured_at is not None,
        within=45,
        what="resume the capture once its lease lapsed",
    )
    assert [e.amount for e in remote("capture")] == [payment.amount]
    assert PaymentOperation.objects.get(pk=operation.pk).attempts == 2
