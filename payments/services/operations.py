"""PaymentOperation: every provider call that moves money or changes state there, written
down before it is sent, sent, and settled (SPEC 2).

    open     in the transaction that decides it (under the payment's lock for a money
             movement): the row, `requested`, leased to this attempt (`lease_until`, on
             the database's clock);
    send     outside any transaction, with the operation's provider idempotency key;
    settle   under the payment's lock: the operation's outcome, its event, and for a
             success the payment's amounts, all in one transaction (one function for
             every type, so the rules are written once).

An outcome nobody knows (the answer was lost, the process died mid-call) leaves the
operation `requested` or `unknown`: resuming it is asking the provider again with the same
key, which the provider answers with what the first call did. The worker does that for
operations nobody is attempting (their lease lapsed); so does the next money operation on
the same payment before it decides anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q
from django.db.models.functions import Now
from django.dispatch import Signal
from django.utils import timezone

from payments import errors
from payments.metrics import provider_call_observe
from payments.models import (
    MONEY_MOVEMENTS,
    OperationType,
    Payment,
    PaymentOperation,
    PaymentSession,
    Refund,
)
from payments.services.actors import SYSTEM, Actor
from payments.services.calls import (
    ensure_outside_transaction,
    error_text,
    event_record,
    installed_provider,
)
from payments.services.locks import payment_lock
from providers.base import (
    OperationInput,
    OperationResult,
    OperationStatus,
    PaymentProviderBase,
    ProviderError,
    ProviderErrorKind,
    PurchaseLine,
    RefundReason,
    SessionInput,
    SessionStatus,
)

T = TypeVar("T")
Status = PaymentOperation.Status

payment_changed = Signal()
"""Sent inside the transaction that settled an operation on a payment (or recorded that it
failed), with the payment row locked. Arguments: `payment`, `operation` (capture, refund,
cancel, webhook), `success`. Receivers may lock rows later in the lock order (the order,
its swaps): checkout keeps the order's payment status with its payments."""


# What settling writes on an operation.
SETTLED_FIELDS = ("status", "settled_at", "error", "provider_reference", "lease_until")


def lease_from_now() -> ExpressionWrapper:
    """The end of an attempt's lease, on the database's clock (app servers' clocks differ)."""
    seconds = settings.IDEMPOTENCY_LOCK_LEASE_SECONDS
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())


def lease_free() -> Q:
    return Q(lease_until__isnull=True) | Q(lease_until__lt=Now())


def operation_open(
    *,
    type: str,
    provider_id: str,
    idempotency_key: str,
    actor: Actor,
    payment: Payment | None = None,
    session_id: str = "",
    cart_id: str = "",
    amount: int | None = None,
    refund: Refund | None = None,
    params: dict[str, Any] | None = None,
) -> PaymentOperation:
    """Write the operation down, leased to the caller's attempt, in the caller's
    transaction (the one that decided it)."""
    operation = PaymentOperation.objects.create(
        type=type,
        provider_id=provider_id,
        idempotency_key=idempotency_key,
        payment=payment,
        session_id=session_id or (payment.session_id or "" if payment else ""),
        cart_id=cart_id or (payment.cart_id if payment else ""),
        amount=amount,
        refund=refund,
        params=params or {},
        attempts=1,
        lease_until=lease_from_now(),
        actor=actor.label,
        actor_user=actor.user,
    )
    operation.lease_until = None  # the database's value; nobody reads it from here
    return operation


def operation_claim(operation_id: str) -> PaymentOperation | None:
    """Lease an unresolved operation to this attempt; None when it is settled or another
    live attempt holds it. One UPDATE decides between racing claimers."""
    claimed = (
        PaymentOperation.objects.filter(pk=operation_id, status__in=PaymentOperation.UNRESOLVED)
        .filter(lease_free())
        .update(lease_until=lease_from_now(), attempts=F("attempts") + 1)
    )
    if not claimed:
        return None
    return PaymentOperation.objects.select_related("payment", "refund").get(pk=operation_id)


# Sending --------------------------------------------------------------------------------


def provider_send(
    operation: PaymentOperation, call: Callable[[PaymentProviderBase], T], *, name: str = ""
) -> T | ProviderError:
    """Make the call outside any transaction; a provider's error is returned, not raised,
    so the caller settles it like any other outcome. Every call is timed and counted under
    `name` (default: the operation's type) in payments_provider_call_seconds."""
    ensure_outside_transaction()
    provider = installed_provider(operation.provider_id)
    return provider_call_observe(
        operation.provider_id, name or operation.type, lambda: call(provider)
    )


def _money_call(operation: PaymentOperation) -> Callable[[PaymentProviderBase], OperationResult]:
    # Re-read: a capture's answer (PayPal's capture id, say) is what a refund names.
    payment = Payment.objects.get(pk=operation.payment_id).as_input()
    key = operation.idempotency_key
    amount = operation.amount or 0
    if operation.type == OperationType.CAPTURE:
        return lambda p: p.capture(payment, amount=amount, idempotency_key=key)
    if operation.type == OperationType.REFUND:
        reason = RefundReason(operation.params.get("reason", RefundReason.OTHER))
        return lambda p: p.refund(payment, amount=amount, reason=reason, idempotency_key=key)
    if operation.type == OperationType.CANCEL:
        return lambda p: p.cancel(payment, idempotency_key=key)
    raise ValueError(f"{operation.type} is not a money movement.")


def session_params(session: SessionInput, **extra: Any) -> dict[str, Any]:
    """The session as the provider was sent it, kept on the operation so the call can be
    sent again exactly, even after the session's row is gone."""
    return {"session": dataclasses.asdict(session), **extra}


def session_of(operation: PaymentOperation) -> SessionInput:
    fields = dict(operation.params["session"])
    fields["lines"] = tuple(PurchaseLine(**line) for line in fields.get("lines") or ())
    return SessionInput(**fields)


def _release_call(operation: PaymentOperation) -> Callable[[PaymentProviderBase], OperationResult]:
    session = session_of(operation)

    def release(provider: PaymentProviderBase) -> OperationResult:
        provider.delete_session(session)
        return OperationResult(amount=0)

    return release


def operation_send(operation: PaymentOperation) -> OperationResult | ProviderError:
    """Send a money movement or a release with its own key (first time or again)."""
    if operation.type == OperationType.RELEASE:
        return provider_send(operation, _release_call(operation))
    return provider_send(operation, _money_call(operation))


# Settling -------------------------------------------------------------------------------


def operation_settle(
    operation: PaymentOperation | str, outcome: OperationResult | ProviderError, *, actor: Actor
) -> PaymentOperation:
    """Record what the provider answered, once: an operation settled meanwhile (a
    concurrent attempt, a webhook, a re-read) is left as it is. Amounts move only on
    `succeeded`, in this transaction, with the success event. Given the operation rather
    than its id, it need not look up its payment first."""
    if isinstance(operation, PaymentOperation):
        operation_id, payment_id = operation.id, operation.payment_id
        if payment_id is None and not operation.is_money_movement:
            return _settle_fenced(operation, outcome, actor)
    else:
        operation_id = operation
        payment_id = (
            PaymentOperation.objects.filter(pk=operation_id)
            .values_list("payment_id", flat=True)
            .get()
        )
    with transaction.atomic():
        payment = payment_lock(payment_id) if payment_id else None
        operation = (
            PaymentOperation.objects.select_for_update(of=("self",))
            .select_related("refund")
            .get(pk=operation_id)
        )
        if not operation.is_open:
            return operation
        if operation.status == Status.PENDING and isinstance(outcome, ProviderError):
            return operation  # a failed re-read says nothing about the operation itself
        _settle(operation, payment, outcome, actor)
        if payment is not None and operation.is_money_movement:
            payment_changed.send(
                sender=Payment,
                payment=payment,
                operation=operation.type,
                # Refused or unknown: whatever follows the payment needs a person's eye.
                success=operation.status in (Status.SUCCEEDED, Status.PENDING),
            )
    return operation


class _SettledMeanwhile(Exception):
    """Another attempt settled the operation first: this one's writes are rolled back."""


def _settle_fenced(
    operation: PaymentOperation, outcome: OperationResult | ProviderError, actor: Actor
) -> PaymentOperation:
    """Settle a session call (no payment, nothing to lock first) from the caller's copy:
    the operation's UPDATE is conditional on the row being still open, which decides
    between racing attempts without reading the row under a lock first."""
    if not operation.is_open:
        return operation
    try:
        with transaction.atomic():
            _settle(operation, None, outcome, actor, fenced=True)
    except _SettledMeanwhile:
        return PaymentOperation.objects.get(pk=operation.pk)
    return operation


def _settle(
    operation: PaymentOperation,
    payment: Payment | None,
    outcome: OperationResult | ProviderError,
    actor: Actor,
    *,
    fenced: bool = False,
) -> None:
    now = timezone.now()
    amount = operation.amount
    if isinstance(outcome, ProviderError):
        reference, success = outcome.provider_reference, False
        operation.error = error_text(outcome)
        if outcome.outcome_unknown:
            operation.status = Status.UNKNOWN
        else:
            operation.status, operation.settled_at = Status.FAILED, now
            _failed(operation)
    elif outcome.status is OperationStatus.PENDING:
        reference, success = outcome.provider_reference, False
        operation.status = Status.PENDING
        operation.error = ""
    elif outcome.status is OperationStatus.FAILED:
        reference, success = outcome.provider_reference, False
        operation.status, operation.settled_at = Status.FAILED, now
        operation.error = "failed: the provider settled it as refused."
        _failed(operation)
    else:
        reference, success, amount = outcome.provider_reference, True, outcome.amount
        operation.status, operation.settled_at, operation.error = Status.SUCCEEDED, now, ""
        if payment is not None:
            _succeeded(operation, payment, outcome, now)
        elif operation.type == OperationType.RELEASE:
            _session_released(operation.session_id, now)
    operation.provider_reference = (reference or operation.provider_reference)[:255]
    operation.lease_until = None
    if not fenced:
        operation.save()
    elif not PaymentOperation.objects.filter(
        pk=operation.pk, status__in=PaymentOperation.OPEN
    ).update(**{field: getattr(operation, field) for field in SETTLED_FIELDS}):
        raise _SettledMeanwhile
    error = operation.error or (
        "pending: settles later" if operation.status == Status.PENDING else ""
    )
    event_record(
        type=operation.type,
        provider_id=operation.provider_id,
        actor=actor,
        success=success,
        payment=payment,
        operation=operation,
        session_id=operation.session_id,
        cart_id=operation.cart_id,
        amount=amount,
        provider_reference=operation.provider_reference,
        idempotency_key=operation.idempotency_key,
        error=error,
        answer=outcome,
    )


def _failed(operation: PaymentOperation) -> None:
    if operation.type == OperationType.RELEASE:
        # The provider holds nothing it would release (already over): the session is done,
        # and the worker's sweep does not pick it again.
        _session_released(operation.session_id, timezone.now())
    if operation.refund is not None:
        Refund.objects.filter(pk=operation.refund_id).update(status=Refund.Status.FAILED)
        operation.refund.status = Refund.Status.FAILED


def _succeeded(
    operation: PaymentOperation, payment: Payment, result: OperationResult, now: Any
) -> None:
    fields: list[str] = []
    if operation.type == OperationType.CAPTURE and payment.captured_at is None:
        # A capture of what the provider reports: it captures once and releases the rest.
        payment.amount_captured = min(result.amount, payment.amount)
        payment.captured_at = now
        payment.data = {**payment.data, **result.data}
        fields = ["amount_captured", "captured_at", "data"]
    elif operation.type == OperationType.REFUND and operation.refund is not None:
        refund = operation.refund
        refund.status = Refund.Status.SUCCEEDED
        refund.amount = result.amount or refund.amount
        refund.provider_reference = result.provider_reference[:255]
        refund.save(update_fields=["status", "amount", "provider_reference"])
        payment.amount_refunded += refund.amount
        fields = ["amount_refunded"]
    elif (
        operation.type == OperationType.CANCEL
        and payment.canceled_at is None
        and payment.captured_at is None
    ):
        payment.canceled_at = now
        fields = ["canceled_at"]
        if payment.session_id:
            # A canceled authorization is never reused: the next one gets a new key.
            PaymentSession.objects.filter(pk=payment.session_id).update(
                status=SessionStatus.CANCELED, revision=F("revision") + 1, updated_at=now
            )
    if fields:
        payment.save(update_fields=fields)


def _session_released(session_id: str, now: Any) -> None:
    PaymentSession.objects.filter(pk=session_id).exclude(status=SessionStatus.AUTHORIZED).update(
        status=SessionStatus.CANCELED, next_action=None, updated_at=now
    )


def operation_error(
    operation: PaymentOperation, outcome: OperationResult | ProviderError
) -> errors.DomainError | None:
    """The answer for whoever asked: None when the operation took (or was taken) effect."""
    if not isinstance(outcome, ProviderError):
        if operation.status == Status.FAILED:
            return errors.ProviderFailed("The provider refused the operation.")
        return None
    if outcome.outcome_unknown:
        return errors.ProviderUnavailable(
            f"{outcome.message} The outcome is unknown: retry with the same Idempotency-Key."
        )
    if outcome.kind is ProviderErrorKind.NOT_READY:
        return errors.InvalidState(outcome.message)
    return errors.ProviderFailed(outcome.message)


def operation_execute(operation: PaymentOperation, *, actor: Actor) -> PaymentOperation:
    """Send, settle, and raise what the caller must hear: ProviderFailed (502, nothing
    moved), InvalidState (409, the provider is not ready for it) or ProviderUnavailable
    (503, the outcome is unknown; it stays to be asked again with the same key)."""
    outcome = operation_send(operation)
    settled = operation_settle(operation, outcome, actor=actor)
    error = operation_error(settled, outcome)
    if error is not None:
        raise error
    return settled


# Resuming ---------------------------------------------------------------------------------


def operation_resume(*, operation_id: str, actor: Actor = SYSTEM) -> PaymentOperation:
    """Ask the provider again, with the same key, for an operation whose outcome nobody
    knows; one attempt at a time. Returns the operation as it now stands."""
    operation = operation_claim(operation_id)
    if operation is None:
        return PaymentOperation.objects.get(pk=operation_id)
    if operation.type not in (*MONEY_MOVEMENTS, OperationType.RELEASE):
        # Session calls and authorizations resume through their own flows (the next
        # storefront call, the stalled-checkout sweep); give the lease back.
        PaymentOperation.objects.filter(pk=operation_id).update(lease_until=None)
        return operation
    return operation_settle(operation, operation_send(operation), actor=actor)


def operation_refresh(*, operation_id: str, actor: Actor = SYSTEM) -> PaymentOperation:
    """Re-read a pending operation at the provider; settle it if the provider has."""
    operation = PaymentOperation.objects.select_related("payment").get(pk=operation_id)
    if operation.status != Status.PENDING or operation.payment is None:
        return operation
    asked = OperationInput(
        type=operation.type,
        amount=operation.amount or 0,
        idempotency_key=operation.idempotency_key,
        provider_reference=operation.provider_reference,
    )
    payment = operation.payment.as_input()
    outcome = provider_send(
        operation,
        lambda p: p.operation_status(payment, asked),
        # A re-read, not the movement itself: counted apart ("refund_status", say).
        name=f"{operation.type}_status",
    )
    if isinstance(outcome, ProviderError) or outcome.status is OperationStatus.PENDING:
        return operation
    return operation_settle(operation_id, outcome, actor=actor)


def payment_settle_unresolved(*, payment_id: str, actor: Actor) -> None:
    """Before a new money operation decides anything (SPEC 6): each earlier one on the
    payment whose outcome nobody knows is asked again under its own key, so an answer lost
    once never turns into a second refund.

    Raises ProviderUnavailable (503) when the provider still cannot say, and InvalidState
    (409, Retry-After) while another attempt (the worker's, say) is asking right now: the
    caller retries and then sees the outcome. A refund another request is sending for the
    first time is left to it: it is reserved, and counts against what may be refunded.
    """
    unresolved = PaymentOperation.objects.filter(
        payment_id=payment_id, status__in=PaymentOperation.UNRESOLVED, type__in=MONEY_MOVEMENTS
    ).order_by("created_at", "id")
    for operation_id, type, status in unresolved.values_list("id", "type", "status"):
        claimed = operation_claim(operation_id)
        if claimed is None:
            if type == OperationType.REFUND and status == Status.REQUESTED:
                continue
            busy = errors.InvalidState(f"A {type} of this payment is being asked; retry shortly.")
            busy.retry_after = 1
            raise busy
        if operation_settle(claimed, operation_send(claimed), actor=actor).status == (
            Status.UNKNOWN
        ):
            raise errors.ProviderUnavailable(
                f"The outcome of an earlier {type} is still unknown; retry shortly."
            )
