"""Capture, refund and cancel: each decided under the payment's lock, written down as a
PaymentOperation in that transaction, then sent and settled (payments.services.operations).

Racing requests decide one after the other under the lock and see each other's
operations, so together they never move more than the payment holds; refunds in flight
count against what may still be refunded. A request retried under the same `request_key`
finds what its first attempt decided instead of deciding again.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from payments import errors
from payments.models import OperationType, Payment, PaymentOperation, Refund
from payments.services.actors import Actor
from payments.services.locks import payment_get, payment_lock
from payments.services.operations import (
    operation_execute,
    operation_open,
    operation_settle,
    payment_settle_unresolved,
)
from providers.base import ProviderError, ProviderErrorKind, RefundReason

Status = PaymentOperation.Status


def _operations(payment: Payment, type: str) -> list[PaymentOperation]:
    return list(PaymentOperation.objects.filter(payment=payment, type=type).order_by("created_at"))


def _requested_by(operations: list[PaymentOperation], request_key: str) -> PaymentOperation | None:
    if not request_key:
        return None
    return next((op for op in operations if op.params.get("request_key") == request_key), None)


def payment_captured_by(payment: Payment, request_key: str) -> bool:
    """Whether the capture that took effect on this payment was asked by this request."""
    done = [
        op for op in _operations(payment, OperationType.CAPTURE) if op.status == Status.SUCCEEDED
    ]
    return payment.captured_at is not None and _requested_by(done, request_key) is not None


# Capture


def payment_capture(
    *, payment_id: str, amount: int | None = None, actor: Actor, request_key: str = ""
) -> Payment:
    """Capture `amount` of the authorization, all of it by default. The rest is released,
    as Stripe does, so a payment is captured once.

    Raises NotFound; InvalidState (409) for a canceled or captured payment, one with a
    capture or cancel in flight, or one the provider is not ready to capture;
    AmountExceedsCapturable (422); ProviderFailed (502, nothing changed) and
    ProviderUnavailable (503, asked again with the same key by the next attempt or the
    worker). A capture the provider settles later leaves the payment awaiting it.
    """
    payment_settle_unresolved(payment_id=payment_id, actor=actor)
    with transaction.atomic():
        payment = payment_lock(payment_id)
        operation = _capture_open(payment, amount, actor, request_key)
    if operation is not None:
        operation_execute(operation, actor=actor)
    return payment_get(payment_id)


def _capture_open(
    payment: Payment, amount: int | None, actor: Actor, request_key: str
) -> PaymentOperation | None:
    """Check and write the capture down, under the lock; None when this request's capture
    took effect already."""
    captures = _operations(payment, OperationType.CAPTURE)
    if payment.canceled_at is not None:
        raise errors.InvalidState("A canceled payment cannot be captured.")
    if payment.captured_at is not None:
        if payment_captured_by(payment, request_key):
            return None
        raise errors.InvalidState("This payment was captured already; a capture releases the rest.")
    if any(op.is_open for op in captures):
        raise errors.InvalidState("A capture of this payment is settling at the provider.")
    if any(op.is_open for op in _operations(payment, OperationType.CANCEL)):
        raise errors.InvalidState("A cancel of this payment is settling at the provider.")
    amount = payment.amount if amount is None else amount
    if amount <= 0:
        raise errors.InvalidState("There is nothing to capture.")
    if amount > payment.amount:
        raise errors.AmountExceedsCapturable(f"At most {payment.amount} can be captured.")
    return operation_open(
        type=OperationType.CAPTURE,
        provider_id=payment.provider_id,
        # One capture per payment: its key is the payment's, numbered past refused ones.
        idempotency_key=f"{payment.id}:capture:{len(captures)}",
        actor=actor,
        payment=payment,
        amount=amount,
        params={"request_key": request_key},
    )


# Cancel


def payment_cancel(*, payment_id: str, actor: Actor, request_key: str = "") -> Payment:
    """Release an uncaptured authorization at the provider, then mark the payment canceled.

    Canceling a canceled payment is a no-op. Raises InvalidState (409) for a captured
    payment or one whose capture is in flight, ProviderFailed (502, nothing changed) and
    ProviderUnavailable (503, the cancel is asked again with the same key).
    """
    payment_settle_unresolved(payment_id=payment_id, actor=actor)
    with transaction.atomic():
        payment = payment_lock(payment_id)
        if payment.canceled_at is not None:
            return payment
        if payment.captured_at is not None:
            raise errors.InvalidState("A captured payment cannot be canceled; refund it instead.")
        if any(op.is_open for op in _operations(payment, OperationType.CAPTURE)):
            raise errors.InvalidState("A capture of this payment is settling at the provider.")
        cancels = _operations(payment, OperationType.CANCEL)
        if any(op.is_open for op in cancels):
            return payment  # asked already; it settles by webhook or re-read
        operation = operation_open(
            type=OperationType.CANCEL,
            provider_id=payment.provider_id,
            idempotency_key=f"{payment.id}:cancel:{len(cancels)}",
            actor=actor,
            payment=payment,
            amount=payment.amount,
            params={"request_key": request_key},
        )
    operation_execute(operation, actor=actor)
    return payment_get(payment_id)


# Refund


def payment_refund(
    *,
    payment_id: str,
    amount: int,
    reason: str,
    note: str = "",
    actor: Actor,
    request_key: str = "",
) -> Payment:
    """Give back `amount` of what the payment captured; a payment takes any number of
    partial refunds.

    Raises NotFound, InvalidData, AmountExceedsRefundable (422, counting refunds in
    flight), ProviderFailed (502, nothing refunded) and ProviderUnavailable (503, the
    refund stays reserved and is asked again with the same key).
    """
    payment_settle_unresolved(payment_id=payment_id, actor=actor)
    with transaction.atomic():
        payment = payment_lock(payment_id)
        refunds = refunds_reserve(
            payments=[payment],
            amount=amount,
            reason=reason,
            note=note,
            request_key=request_key,
            actor=actor,
        )
    refunds_execute(refunds, actor=actor)
    return payment_get(payment_id)


def refunds_reserve(
    *,
    payments: Sequence[Payment],
    amount: int,
    reason: str,
    actor: Actor,
    note: str = "",
    request_key: str = "",
) -> list[Refund]:
    """Reserve `amount` of refunds over the payments, oldest first, each with the
    operation that will ask for it; the caller holds the payments' locks (payments_lock).

    Refunds made or reserved under `request_key` count toward the amount, so a retried
    request reserves only what is missing, usually nothing. Returns every refund of the
    request, oldest first. Raises InvalidData and AmountExceedsRefundable (422).
    """
    if amount <= 0:
        raise errors.InvalidData("Refund a positive amount.", fields={"amount": ["Must be > 0."]})
    if reason not in {r.value for r in RefundReason}:
        raise errors.InvalidData("Unknown refund reason.", fields={"reason": ["Unknown reason."]})
    payments = sorted(payments, key=lambda p: (p.created_at, p.id))
    ids = [p.id for p in payments]
    existing = (
        list(
            Refund.objects.filter(payment_id__in=ids, request_key=request_key).exclude(
                status=Refund.Status.FAILED
            )
        )
        if request_key
        else []
    )
    missing = amount - sum(r.amount for r in existing)
    if missing < 0:
        raise errors.InvalidState("This request refunded another amount already.")
    plan: list[tuple[Payment, int]] = []
    if missing:
        room = {p.id: max(p.refundable_amount, 0) for p in payments}
        available = sum(room.values())
        if missing > available:
            raise errors.AmountExceedsRefundable(f"At most {available} can be refunded.")
        for payment in payments:
            take = min(room[payment.id], missing)
            if take:
                plan.append((payment, take))
                missing -= take
    created = []
    for payment, take in plan:
        refund = Refund.objects.create(
            payment=payment,
            order_id=payment.order_id,
            amount=take,
            reason=reason,
            note=note,
            status=Refund.Status.PENDING,
            request_key=request_key,
        )
        operation_open(
            type=OperationType.REFUND,
            provider_id=payment.provider_id,
            # The refund's own id: the provider's webhook names it back (Stripe metadata).
            idempotency_key=refund.id,
            actor=actor,
            payment=payment,
            amount=take,
            refund=refund,
            params={"reason": reason, "request_key": request_key},
        )
        created.append(refund)
    return sorted(existing + created, key=lambda r: (r.created_at, r.id))


def refunds_execute(refunds: Sequence[Refund], *, actor: Actor) -> None:
    """Send each refund's operation in turn. After a definitive refusal the ones not sent
    yet are settled as failed (never sent, so nothing moved); after a lost answer they stay
    for the retry or the worker. Raises the first refusal or unknown outcome."""
    operations = list(
        PaymentOperation.objects.filter(
            refund_id__in=[r.id for r in refunds], status=Status.REQUESTED
        ).order_by("created_at", "id")
    )
    for index, operation in enumerate(operations):
        try:
            operation_execute(operation, actor=actor)
        except errors.ProviderFailed:
            not_sent = ProviderError(
                ProviderErrorKind.OTHER, "Not sent: an earlier refund of the request failed."
            )
            for later in operations[index + 1 :]:
                operation_settle(later, not_sent, actor=actor)
            raise
