"""Payment operations on an order, and the order's payment status.

An order's money lives in its payments (the checkout's, and those of its swaps): capturing
an order captures each payment, a refund is spread over the captured ones. The payment
services do the provider calls and their locking; the order's `payment_status` follows its
payments through `payments.services.payment_changed`, in the same transaction as each
change, so it never disagrees with them.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from checkout.models import Order, Swap
from payments import errors
from payments.models import OperationType, Payment, PaymentOperation
from payments.services import (
    Actor,
    payment_cancel,
    payment_capture,
    payment_captured_by,
    payments_lock,
    refunds_execute,
    refunds_reserve,
)
from payments.services.operations import payment_settle_unresolved

Status = Order.Status
PaymentStatus = Order.PaymentStatus


def order_get(order_id: str) -> Order:
    try:
        return Order.objects.get(pk=order_id)
    except Order.DoesNotExist:
        raise errors.NotFound("No order with this id.") from None


def order_lock(order_id: str) -> Order:
    """Lock the order row: after its payments in the lock order (a payment's change
    updates its order's status while holding the payment)."""
    try:
        return Order.objects.select_for_update().get(pk=order_id)
    except Order.DoesNotExist:
        raise errors.NotFound("No order with this id.") from None


def order_payment_status(payments: Iterable[Payment]) -> str:
    """An order's payment status, from its payments alone.

    `partially_captured` means less is captured than the live payments authorized: some
    payment is still to capture, or a partial capture released the rest.
    """
    payments = list(payments)
    live = [p for p in payments if p.canceled_at is None]
    if not payments:
        return PaymentStatus.NOT_PAID
    if not live:
        return PaymentStatus.CANCELED
    captured = sum(p.amount_captured for p in payments)
    refunded = sum(p.amount_refunded for p in payments)
    uncaptured = any(p.captured_at is None for p in live)
    if refunded:
        return (
            PaymentStatus.REFUNDED
            if refunded == captured and not uncaptured
            else PaymentStatus.PARTIALLY_REFUNDED
        )
    if not captured:
        return PaymentStatus.AWAITING
    if captured < sum(p.amount for p in live):
        return PaymentStatus.PARTIALLY_CAPTURED
    return PaymentStatus.CAPTURED


def order_status_refresh(order: Order, *, failed: bool = False) -> None:
    """Bring a locked order's statuses to its payments.

    A failed provider operation (refused, or its outcome unknown) makes the order
    `requires_action` until an operation on it succeeds; a canceled order stays canceled.
    """
    if failed:
        order.payment_status = PaymentStatus.REQUIRES_ACTION
        if order.status != Status.CANCELED:
            order.status = Status.REQUIRES_ACTION
    else:
        order.payment_status = order_payment_status(Payment.objects.filter(order=order))
        if order.status == Status.REQUIRES_ACTION:
            order.status = Status.PENDING
    Order.objects.filter(pk=order.pk).update(
        status=order.status, payment_status=order.payment_status
    )


def order_follow_payment(*, payment: Payment, success: bool) -> None:
    """A payment of the order changed (the caller holds the payment's lock)."""
    if payment.order_id is not None:
        order_status_refresh(order_lock(payment.order_id), failed=not success)


# Operations ---------------------------------------------------------------------------


def order_capture(*, order_id: str, actor: Actor, request_key: str = "") -> Order:
    """Capture every uncaptured payment of the order in full.

    Raises NotFound; InvalidState (409) when the order is canceled or nothing is left to
    capture; the payment errors (502, 503) of the first payment that fails; the payments
    captured before it stay captured.
    """
    order = order_get(order_id)
    if order.status == Status.CANCELED:
        raise errors.InvalidState("A canceled order cannot be captured.")
    live = Payment.objects.filter(order=order, canceled_at__isnull=True).order_by("created_at")
    to_capture = [p for p in live if p.captured_at is None]
    if not to_capture:
        if any(payment_captured_by(p, request_key) for p in live):
            return order_get(order_id)  # this request captured them already: a retry
        raise errors.InvalidState("Nothing is left to capture on this order.")
    for payment in to_capture:
        payment_capture(payment_id=payment.pk, actor=actor, request_key=request_key)
    return order_get(order_id)


def order_refund(
    *,
    order_id: str,
    amount: int,
    reason: str,
    note: str = "",
    actor: Actor,
    request_key: str = "",
) -> Order:
    """Refund `amount` spread over the order's captured payments, oldest first.

    All of it is reserved at once under the payments' locks (422 amount_exceeds_refundable
    when the order cannot give that much back), then asked of the providers one refund at
    a time. When a provider refuses, the refunds already made stand and the rest is
    released (502); a lost answer leaves the rest pending for a retry under the same
    `request_key` (503).
    """
    ids = list(Payment.objects.filter(order_id=order_id).values_list("pk", flat=True))
    for payment_id in ids:
        # An earlier refund whose answer was lost is settled first, under its own key.
        payment_settle_unresolved(payment_id=payment_id, actor=actor)
    with transaction.atomic():
        payments = payments_lock(ids)
        order_lock(order_id)  # after the payments, as the lock order wants
        refunds = refunds_reserve(
            payments=[p for p in payments if p.captured_at is not None],
            amount=amount,
            reason=reason,
            note=note,
            request_key=request_key,
            actor=actor,
        )
    refunds_execute(refunds, actor=actor)
    return order_get(order_id)


def order_cancel(*, order_id: str, actor: Actor, request_key: str = "") -> Order:
    """Cancel the order: its authorizations are released and its open swaps canceled.

    Raises InvalidState (409) once money was captured on it (refund it instead), and the
    payment errors (502, 503) of a cancel the provider did not take; canceling a canceled
    order is a no-op.
    """
    order = order_get(order_id)
    if order.status == Status.CANCELED:
        return order
    with transaction.atomic():
        payments = payments_lock(Payment.objects.filter(order=order).values_list("pk", flat=True))
        capturing = PaymentOperation.objects.filter(
            payment__in=payments, type=OperationType.CAPTURE, status__in=PaymentOperation.OPEN
        )
        if any(p.amount_captured for p in payments) or capturing.exists():
            raise errors.InvalidState("Money was captured on this order; refund it instead.")
    for payment in payments:
        if payment.canceled_at is None:
            payment_cancel(payment_id=payment.pk, actor=actor, request_key=request_key)
    with transaction.atomic():
        payments_lock(p.pk for p in payments)
        order = order_lock(order_id)
        Swap.objects.filter(order=order).exclude(
            status__in=[Swap.Status.COMPLETED, Swap.Status.CANCELED]
        ).update(
            status=Swap.Status.CANCELED,
            payment_status=Swap.PaymentStatus.CANCELED,
            canceled_at=timezone.now(),
        )
        order.status = Status.CANCELED
        order_status_refresh(order)
    return order_get(order_id)
