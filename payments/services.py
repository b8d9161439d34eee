"""Services of the payment domain: every provider call, session change and payment write.

Views, admin actions, commands and webhooks all call these. Two rules hold throughout:
a provider call never runs inside an open database transaction (it is network I/O and
would hold row locks for its duration), and every provider call leaves a PaymentEvent,
success or failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import IntegrityError, connection, transaction
from django.db.models import CharField, Exists, F, OuterRef, QuerySet, Subquery, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from django.dispatch import Signal
from django.utils import timezone

from payments import errors
from payments.fields import new_id
from payments.models import Payment, PaymentEvent, PaymentSession, Refund
from providers.base import (
    AuthorizationResult,
    PaymentProviderBase,
    ProviderError,
    ProviderErrorKind,
    RefundReason,
    SessionInput,
    SessionResult,
    SessionStatus,
)
from providers.registry import ProviderNotConfigured, get_provider

T = TypeVar("T")


@dataclass(frozen=True)
class Actor:
    """Who asked for an operation, as the event ledger records it."""

    label: str
    user: User | None = None

    @classmethod
    def staff(cls, user: AbstractBaseUser | AnonymousUser) -> Actor:
        if not isinstance(user, User):
            return SYSTEM
        return cls(label=user.get_username(), user=user)


STOREFRONT = Actor("storefront")
WEBHOOK = Actor("webhook")
SYSTEM = Actor("system")


def ensure_outside_transaction() -> None:
    """Refuse a provider call inside a transaction (the test suite's own wrapper excepted)."""
    if any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks):
        raise RuntimeError("A provider call must not run inside an open database transaction.")


def installed_provider(provider_id: str) -> PaymentProviderBase:
    try:
        return get_provider(provider_id)
    except ProviderNotConfigured:
        raise errors.ProviderNotAvailable(f"Provider {provider_id!r} is not installed.") from None


def event_record(
    *,
    type: str,
    provider_id: str,
    actor: Actor,
    success: bool,
    payment: Payment | None = None,
    session_id: str = "",
    cart_id: str = "",
    amount: int | None = None,
    provider_reference: str = "",
    idempotency_key: str = "",
    error: str = "",
) -> PaymentEvent:
    return PaymentEvent.objects.create(
        type=type,
        provider_id=provider_id,
        payment=payment,
        session_id=session_id or (payment.session_id or "" if payment else ""),
        cart_id=cart_id or (payment.cart_id if payment else ""),
        amount=amount,
        success=success,
        provider_reference=provider_reference[:255],
        idempotency_key=idempotency_key,
        error=error,
        actor=actor.label,
        actor_user=actor.user,
    )


def provider_call(
    call: Callable[[PaymentProviderBase], T],
    *,
    type: str,
    provider_id: str,
    actor: Actor,
    payment: Payment | None = None,
    session_id: str = "",
    cart_id: str = "",
    amount: int | None = None,
    idempotency_key: str = "",
) -> T:
    """Call the provider outside any transaction; a failure is recorded, then re-raised.

    The success event is the caller's to write, in the same transaction as the amounts it
    changes, so the ledger and the Payment can never disagree.
    """
    ensure_outside_transaction()
    provider = installed_provider(provider_id)
    try:
        return call(provider)
    except ProviderError as error:
        event_record(
            type=type,
            provider_id=provider_id,
            actor=actor,
            success=False,
            payment=payment,
            session_id=session_id,
            cart_id=cart_id,
            amount=amount,
            provider_reference=error.provider_reference,
            idempotency_key=idempotency_key,
            error=f"{error.kind.value}: {error.message}",
        )
        raise


def session_call(
    session: PaymentSession | SessionInput,
    provider_id: str,
    type: str,
    call: Callable[[PaymentProviderBase], T],
    *,
    actor: Actor,
    amount: int | None = None,
) -> T:
    """A provider call about a session (initiate, update, delete): both outcomes recorded."""
    session_id = session.id if isinstance(session, PaymentSession) else session.session_id
    cart_id = session.cart_id
    result = provider_call(
        call,
        type=type,
        provider_id=provider_id,
        actor=actor,
        session_id=session_id,
        cart_id=cart_id,
        amount=amount,
    )
    event_record(
        type=type,
        provider_id=provider_id,
        actor=actor,
        success=True,
        session_id=session_id,
        cart_id=cart_id,
        amount=amount,
    )
    return result


# Sessions -----------------------------------------------------------------------------


def payment_session_create(
    *,
    cart_id: str,
    provider_id: str,
    amount: int,
    currency_code: str,
    email: str = "",
    is_selected: bool = False,
    actor: Actor = STOREFRONT,
) -> PaymentSession:
    """Open a session at the provider and store it; one per (cart, provider).

    When a concurrent request stored this provider's session first, ours is released at the
    provider (no orphaned remote session) and the existing one is returned.
    """
    draft = SessionInput(
        session_id=new_id("ps"),
        cart_id=cart_id,
        amount=amount,
        currency_code=currency_code,
        email=email,
    )
    result: SessionResult = session_call(
        draft,
        provider_id,
        PaymentEvent.Type.INITIATE,
        lambda p: p.initiate_session(draft),
        actor=actor,
        amount=amount,
    )
    session = PaymentSession(
        id=draft.session_id,
        cart_id=cart_id,
        provider_id=provider_id,
        amount=amount,
        currency_code=currency_code,
        data=dict(result.data),
        status=result.status,
        is_selected=is_selected,
    )
    try:
        with transaction.atomic():
            session.save(force_insert=True)
    except IntegrityError:
        released = SessionInput(**{**draft.__dict__, "data": dict(result.data)})
        session_call(
            released,
            provider_id,
            PaymentEvent.Type.DELETE,
            lambda p: p.delete_session(released),
            actor=actor,
        )
        existing = PaymentSession.objects.filter(cart_id=cart_id, provider_id=provider_id).first()
        if existing is None:  # the cart's selection changed meanwhile, not this provider
            raise errors.InvalidState(
                "The cart's payment sessions changed meanwhile; retry."
            ) from None
        return existing
    return session


def payment_session_update_amount(
    *, session: PaymentSession, amount: int, email: str = "", actor: Actor = STOREFRONT
) -> PaymentSession:
    """Bring the remote session to the cart's new total; an earlier authorization is void."""
    updated = SessionInput(**{**session.as_input(email=email).__dict__, "amount": amount})
    result: SessionResult = session_call(
        session,
        session.provider_id,
        PaymentEvent.Type.UPDATE,
        lambda p: p.update_session(updated),
        actor=actor,
        amount=amount,
    )
    session.amount = amount
    session.data = dict(result.data)
    session.status = result.status
    session.payment_authorized_at = None
    # The next authorization is a new one at the provider: it gets a new idempotency key.
    session.revision += 1
    PaymentSession.objects.filter(pk=session.pk).update(
        amount=amount,
        data=session.data,
        status=session.status,
        payment_authorized_at=None,
        revision=session.revision,
        updated_at=timezone.now(),
    )
    return session


def payment_session_update_data(
    *, session: PaymentSession, data: Mapping[str, Any], actor: Actor = STOREFRONT
) -> PaymentSession:
    """Pass storefront data to the provider, which validates it (INVALID is a 400)."""
    try:
        result: SessionResult = session_call(
            session,
            session.provider_id,
            PaymentEvent.Type.UPDATE,
            lambda p: p.update_session_data(session.as_input(), data),
            actor=actor,
        )
    except ProviderError as error:
        raise provider_error_for_session(error) from error
    session.data = dict(result.data)
    session.status = result.status
    PaymentSession.objects.filter(pk=session.pk).update(
        data=session.data, status=session.status, updated_at=timezone.now()
    )
    return session


def _session_release(session: PaymentSession, actor: Actor) -> None:
    """Whatever the provider holds for the session goes: no orphaned remote payments."""
    session_call(
        session,
        session.provider_id,
        PaymentEvent.Type.DELETE,
        lambda p: p.delete_session(session.as_input()),
        actor=actor,
    )


def payment_session_delete(*, session: PaymentSession, actor: Actor = STOREFRONT) -> None:
    """Release the session at the provider, then forget it."""
    _session_release(session, actor)
    PaymentSession.objects.filter(pk=session.pk).delete()


def payment_session_cancel(*, session: PaymentSession, actor: Actor = STOREFRONT) -> None:
    """Release the session at the provider and keep its row, canceled, as a record."""
    _session_release(session, actor)
    PaymentSession.objects.filter(pk=session.pk).update(
        status=SessionStatus.CANCELED, updated_at=timezone.now()
    )


def payment_session_select(*, cart_id: str, provider_id: str) -> None:
    """Select one session of the cart; the caller holds the cart's lock."""
    PaymentSession.objects.filter(cart_id=cart_id, is_selected=True).exclude(
        provider_id=provider_id
    ).update(is_selected=False)
    PaymentSession.objects.filter(cart_id=cart_id, provider_id=provider_id).update(is_selected=True)


def provider_error_for_session(error: ProviderError) -> errors.DomainError:
    if error.kind is ProviderErrorKind.INVALID:
        return errors.InvalidData(error.message, fields={"data": [error.message]})
    if error.outcome_unknown:
        return errors.ProviderUnavailable(error.message)
    return errors.ProviderFailed(error.message)


# Authorization ------------------------------------------------------------------------


def authorization_key(session: PaymentSession) -> str:
    """The provider idempotency key of a session's authorization.

    Derived from the session and its amount revision, not from the client's key: a lost
    answer retried under any client key reaches the provider with the same key, so the
    cart is authorized once; a changed amount (which voids the old authorization) gets a
    new key.
    """
    return f"{session.id}:authorize:{session.revision}"


def payment_session_authorize(
    *, session: PaymentSession, email: str = "", actor: Actor = STOREFRONT
) -> AuthorizationResult:
    """Ask the provider to authorize the session. Raises ProviderError; records both outcomes.

    Declines mark the session `error`; an unknown outcome leaves it as it was, so a retry
    asks again with the same provider key.
    """
    key = authorization_key(session)
    try:
        result = provider_call(
            lambda p: p.authorize(session.as_input(email=email), idempotency_key=key),
            type=PaymentEvent.Type.AUTHORIZE,
            provider_id=session.provider_id,
            actor=actor,
            session_id=session.id,
            cart_id=session.cart_id,
            amount=session.amount,
            idempotency_key=key,
        )
    except ProviderError as error:
        if not error.outcome_unknown:
            PaymentSession.objects.filter(pk=session.pk).update(
                status=SessionStatus.ERROR, updated_at=timezone.now()
            )
            session.status = SessionStatus.ERROR
        raise
    event_record(
        type=PaymentEvent.Type.AUTHORIZE,
        provider_id=session.provider_id,
        actor=actor,
        success=result.status is SessionStatus.AUTHORIZED,
        session_id=session.id,
        cart_id=session.cart_id,
        amount=result.amount,
        provider_reference=result.provider_reference,
        idempotency_key=key,
        error="" if result.status is SessionStatus.AUTHORIZED else result.status,
    )
    if result.status is not SessionStatus.AUTHORIZED:
        session.status = result.status
        session.data = {**session.data, **result.data}
        PaymentSession.objects.filter(pk=session.pk).update(
            status=session.status, data=session.data, updated_at=timezone.now()
        )
    return result


def payment_create_from_authorization(
    *, session: PaymentSession, authorization: AuthorizationResult
) -> Payment:
    """Store the authorized session as a Payment; the caller holds the cart's lock.

    The Payment's amount is what the provider authorized. The database refuses a second
    live payment for the cart.
    """
    now = timezone.now()
    session.status = SessionStatus.AUTHORIZED
    session.payment_authorized_at = now
    session.data = {**session.data, **authorization.data}
    PaymentSession.objects.filter(pk=session.pk).update(
        status=session.status, payment_authorized_at=now, data=session.data, updated_at=now
    )
    return Payment.objects.create(
        cart_id=session.cart_id,
        session=session,
        provider_id=session.provider_id,
        currency_code=session.currency_code,
        amount=authorization.amount,
        data={**authorization.data, "session_id": session.id},
    )


# Money movements ----------------------------------------------------------------------
#
# Capture, refund and cancel each go in three steps, so that no provider call runs inside
# a transaction and no race moves more money than the payment holds:
#
#   reserve  under the payment's lock: check the amount against what is left and record
#            the operation as pending (a pending Refund, whose id is its provider key, or
#            Payment.pending_operation with its operation_key);
#   call     the provider, outside any transaction, with that key;
#   settle   under the payment's lock again: the amounts and the success event in one
#            transaction; or, when the provider definitively refused, the reservation
#            released (provider_call has written the failed event).
#
# A lost answer (ProviderUnavailable) keeps the reservation: the next attempt, a retried
# request or `reconcile_payments --resume-pending`, asks the provider again with the same
# key, so the money moves once. Every settle and every failure sends `payment_changed` in
# its transaction, so whatever follows the payment (the order's status) moves with it.

payment_changed = Signal()
"""Sent inside the transaction that settled an operation on a payment or recorded that it
failed, with the payment row locked. Arguments: `payment`, `operation` (capture, refund,
cancel), `success`. Receivers may lock rows that come later in the lock order (the order,
its swaps); checkout keeps the order's payment status with it."""

CAPTURE = Payment.PendingOperation.CAPTURE
CANCEL = Payment.PendingOperation.CANCEL


def payment_lock(payment_id: str) -> Payment:
    """Lock the payment row; it comes after the cart, key and session in the lock order."""
    try:
        return Payment.objects.select_for_update().get(pk=payment_id)
    except Payment.DoesNotExist:
        raise errors.NotFound("No payment with this id.") from None


def payments_lock(payment_ids: Iterable[str]) -> list[Payment]:
    """Lock several payments in id order, so two requests locking overlapping sets of
    payments (an order's, say) take them in the same order and never deadlock."""
    ids = list(payment_ids)
    return list(Payment.objects.select_for_update().filter(pk__in=ids).order_by("pk"))


def payment_get(payment_id: str) -> Payment:
    try:
        return Payment.objects.get(pk=payment_id)
    except Payment.DoesNotExist:
        raise errors.NotFound("No payment with this id.") from None


def provider_error_for_operation(error: ProviderError) -> errors.DomainError:
    if error.outcome_unknown:
        return errors.ProviderUnavailable(
            f"{error.message} The outcome is unknown: retry with the same Idempotency-Key."
        )
    return errors.ProviderFailed(error.message)


def _operation_key(payment: Payment, operation: str, request_key: str) -> str:
    """The provider key of a capture or cancel. Derived from the request when there is one,
    so a retried request recognizes its own settled operation; fresh otherwise (a provider
    replays a refused key's refusal, so an attempt after a refusal needs a new key)."""
    return f"{payment.id}:{operation}:{request_key or new_id('op')}"


def payment_captured_by(payment: Payment, request_key: str) -> bool:
    """Whether the capture that took effect on this payment was asked by this request."""
    return (
        bool(request_key)
        and payment.captured_at is not None
        and payment.operation_key == _operation_key(payment, CAPTURE, request_key)
    )


def _pending_set(payment: Payment, operation: str, amount: int | None, key: str) -> None:
    payment.pending_operation = operation
    payment.pending_amount = amount
    payment.pending_since = timezone.now()
    payment.operation_key = key
    payment.save(
        update_fields=["pending_operation", "pending_amount", "pending_since", "operation_key"]
    )


def _pending_clear(payment: Payment) -> list[str]:
    """Forget the reservation (the key stays: it names the last settled operation)."""
    payment.pending_operation = ""
    payment.pending_amount = None
    payment.pending_since = None
    return ["pending_operation", "pending_amount", "pending_since"]


def _settling(payment: Payment, operation: str, key: str) -> bool:
    """Whether this payment still waits for the outcome of this very attempt."""
    return payment.pending_operation == operation and payment.operation_key == key


def _resume(payment: Payment, operation: str, request_key: str) -> None:
    """Let this attempt ask again for the operation pending on the payment, or refuse.

    The request that reserved it may (its retry after a lost answer), and so may anyone
    once it has been pending longer than a request may live (IDEMPOTENCY_LOCK_LEASE_SECONDS:
    its client is gone). A racing request may not: two calls with one key at once can
    make the provider refuse one of them. The clock restarts, so one attempt resumes.
    """
    mine = bool(request_key) and payment.operation_key == _operation_key(
        payment, operation, request_key
    )
    lease = timedelta(seconds=settings.IDEMPOTENCY_LOCK_LEASE_SECONDS)
    stale = payment.pending_since is not None and payment.pending_since < timezone.now() - lease
    if not (mine or stale):
        raise errors.InvalidState(f"A {operation} of this payment is in progress.")
    payment.pending_since = timezone.now()
    payment.save(update_fields=["pending_since"])


def _changed(payment: Payment, operation: str, *, success: bool) -> None:
    payment_changed.send(sender=Payment, payment=payment, operation=operation, success=success)


def _operation_failed(
    payment_id: str, operation: str, key: str, error: ProviderError, *, refund_id: str = ""
) -> None:
    """After a failed call, under the payment's lock: a definitive refusal releases the
    reservation (nothing moved); a lost answer keeps it for the retry. Either way the
    payment's followers hear of it (the order then requires action)."""
    with transaction.atomic():
        payment = payment_lock(payment_id)
        if not error.outcome_unknown:
            if refund_id:
                Refund.objects.filter(pk=refund_id, status=Refund.Status.PENDING).delete()
            elif _settling(payment, operation, key):
                payment.save(update_fields=_pending_clear(payment))
        _changed(payment, operation, success=False)


# Capture


def payment_capture(
    *, payment_id: str, amount: int | None = None, actor: Actor, request_key: str = ""
) -> Payment:
    """Capture `amount` of the authorization, all of it by default. The rest is released,
    as Stripe does, so a payment is captured once.

    A capture whose answer was lost stays pending: a later capture with the same amount, or
    none, asks the provider again with the same key. A retry under the same `request_key`
    of a capture that took effect returns the payment.

    Raises NotFound; InvalidState (409) for a canceled or captured payment or one with
    another operation pending; AmountExceedsCapturable (422); ProviderFailed (502, nothing
    changed) and ProviderUnavailable (503, the capture stays pending).
    """
    with transaction.atomic():
        payment = payment_lock(payment_id)
        if not _capture_reserve(payment, amount, request_key):
            return payment
    return _capture_call(payment, actor=actor)


def _capture_reserve(payment: Payment, amount: int | None, request_key: str) -> bool:
    """Check and reserve, under the lock; False when this request's capture took effect."""
    if payment.canceled_at is not None:
        raise errors.InvalidState("A canceled payment cannot be captured.")
    if payment.captured_at is not None:
        if payment_captured_by(payment, request_key):
            return False
        raise errors.InvalidState("This payment was captured already; a capture releases the rest.")
    if payment.pending_operation == CANCEL:
        raise errors.InvalidState("A cancel of this payment is pending; retry the cancel.")
    if payment.pending_operation == CAPTURE:
        if amount is not None and amount != payment.pending_amount:
            raise errors.InvalidState(
                f"A capture of {payment.pending_amount} is pending; retry that capture first."
            )
        _resume(payment, CAPTURE, request_key)
        return True
    amount = payment.amount if amount is None else amount
    if amount <= 0:
        raise errors.InvalidState("There is nothing to capture.")
    if amount > payment.amount:
        raise errors.AmountExceedsCapturable(f"At most {payment.amount} can be captured.")
    _pending_set(payment, CAPTURE, amount, _operation_key(payment, CAPTURE, request_key))
    return True


def _capture_call(payment: Payment, *, actor: Actor) -> Payment:
    key, amount = payment.operation_key, payment.pending_amount or 0
    try:
        result = provider_call(
            lambda p: p.capture(payment.as_input(), amount=amount, idempotency_key=key),
            type=PaymentEvent.Type.CAPTURE,
            provider_id=payment.provider_id,
            actor=actor,
            payment=payment,
            amount=amount,
            idempotency_key=key,
        )
    except ProviderError as error:
        _operation_failed(payment.id, CAPTURE, key, error)
        raise provider_error_for_operation(error) from error
    with transaction.atomic():
        payment = payment_lock(payment.id)
        fields = _pending_clear(payment) if _settling(payment, CAPTURE, key) else []
        # The provider says the capture took effect: record it, once (a webhook or a
        # concurrent attempt with this key may have recorded it first).
        if payment.captured_at is None:
            payment.amount_captured = result.amount
            payment.captured_at = timezone.now()
            fields += ["amount_captured", "captured_at"]
            event_record(
                type=PaymentEvent.Type.CAPTURE,
                provider_id=payment.provider_id,
                actor=actor,
                success=True,
                payment=payment,
                amount=result.amount,
                provider_reference=result.provider_reference,
                idempotency_key=key,
            )
        if fields:
            payment.save(update_fields=fields)
        _changed(payment, CAPTURE, success=True)
    return payment


# Cancel


def payment_cancel(*, payment_id: str, actor: Actor, request_key: str = "") -> Payment:
    """Release an uncaptured authorization at the provider, then mark the payment canceled.

    Canceling a canceled payment is a no-op. Raises InvalidState (409) for a captured
    payment or one whose capture is pending, ProviderFailed (502, nothing changed) and
    ProviderUnavailable (503, the cancel stays pending; any later cancel asks again with
    the same key).
    """
    with transaction.atomic():
        payment = payment_lock(payment_id)
        if payment.canceled_at is not None:
            return payment
        if payment.captured_at is not None:
            raise errors.InvalidState("A captured payment cannot be canceled; refund it instead.")
        if payment.pending_operation == CAPTURE:
            raise errors.InvalidState("A capture of this payment is pending; retry the capture.")
        if payment.pending_operation == CANCEL:
            _resume(payment, CANCEL, request_key)
        else:
            _pending_set(payment, CANCEL, None, _operation_key(payment, CANCEL, request_key))
    key = payment.operation_key
    try:
        result = provider_call(
            lambda p: p.cancel(payment.as_input(), idempotency_key=key),
            type=PaymentEvent.Type.CANCEL,
            provider_id=payment.provider_id,
            actor=actor,
            payment=payment,
            amount=payment.amount,
            idempotency_key=key,
        )
    except ProviderError as error:
        _operation_failed(payment.id, CANCEL, key, error)
        raise provider_error_for_operation(error) from error
    with transaction.atomic():
        # The session comes before the payment in the lock order.
        list(PaymentSession.objects.select_for_update().filter(pk=payment.session_id))
        payment = payment_lock(payment_id)
        fields = _pending_clear(payment) if _settling(payment, CANCEL, key) else []
        if payment.canceled_at is None and payment.captured_at is None:
            payment.canceled_at = timezone.now()
            fields.append("canceled_at")
            if payment.session_id:
                # A canceled authorization is never reused: the next one gets a new key.
                PaymentSession.objects.filter(pk=payment.session_id).update(
                    status=SessionStatus.CANCELED,
                    revision=F("revision") + 1,
                    updated_at=payment.canceled_at,
                )
            event_record(
                type=PaymentEvent.Type.CANCEL,
                provider_id=payment.provider_id,
                actor=actor,
                success=True,
                payment=payment,
                amount=result.amount,
                provider_reference=result.provider_reference,
                idempotency_key=key,
            )
        if fields:
            payment.save(update_fields=fields)
        _changed(payment, CANCEL, success=True)
    return payment


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

    Refunds racing on one payment reserve one after the other under its lock, so together
    they never exceed the capture: the loser gets AmountExceedsRefundable (422). A retry
    under the same `request_key` finds its refund instead of making another. Raises
    NotFound, InvalidData, ProviderFailed (502, nothing refunded) and ProviderUnavailable
    (503, the refund stays pending and reserved).
    """
    with transaction.atomic():
        payment = payment_lock(payment_id)
        refunds = refunds_reserve(
            payments=[payment], amount=amount, reason=reason, note=note, request_key=request_key
        )
    refunds_execute(refunds, actor=actor)
    return payment_get(payment_id)


def refunds_reserve(
    *,
    payments: Sequence[Payment],
    amount: int,
    reason: str,
    note: str = "",
    request_key: str = "",
) -> list[Refund]:
    """Reserve `amount` of refunds over the payments, oldest first; the caller holds their
    locks (payments_lock).

    Refunds already made or reserved under `request_key` count toward the amount, so a
    retried request reserves only what is missing, usually nothing. Returns every refund
    of the request, oldest first; the pending ones are still to be asked of the provider.
    Raises InvalidData and AmountExceedsRefundable (422).
    """
    if amount <= 0:
        raise errors.InvalidData("Refund a positive amount.", fields={"amount": ["Must be > 0."]})
    if reason not in {r.value for r in RefundReason}:
        raise errors.InvalidData("Unknown refund reason.", fields={"reason": ["Unknown reason."]})
    payments = sorted(payments, key=lambda p: (p.created_at, p.id))
    ids = [p.id for p in payments]
    existing = (
        list(Refund.objects.filter(payment_id__in=ids, request_key=request_key))
        if request_key
        else []
    )
    missing = amount - sum(r.amount for r in existing)
    if missing < 0:
        raise errors.InvalidState("This request refunded another amount already.")
    plan: list[tuple[Payment, int]] = []
    if missing:
        pending = dict(
            Refund.objects.filter(payment_id__in=ids, status=Refund.Status.PENDING)
            .order_by()
            .values("payment_id")
            .annotate(total=Sum("amount"))
            .values_list("payment_id", "total")
        )
        room = {p.id: p.refundable_amount - pending.get(p.id, 0) for p in payments}
        available = sum(max(r, 0) for r in room.values())
        if missing > available:
            raise errors.AmountExceedsRefundable(f"At most {available} can be refunded.")
        for payment in payments:
            take = min(max(room[payment.id], 0), missing)
            if take:
                plan.append((payment, take))
                missing -= take
    created = [
        Refund.objects.create(
            payment=payment,
            order_id=payment.order_id,
            amount=take,
            reason=reason,
            note=note,
            status=Refund.Status.PENDING,
            request_key=request_key,
        )
        for payment, take in plan
    ]
    return sorted(existing + created, key=lambda r: (r.created_at, r.id))


def refunds_execute(refunds: Sequence[Refund], *, actor: Actor) -> None:
    """Ask the provider for each pending refund in turn. After a definitive refusal the
    ones not asked yet are released; after a lost answer they stay pending for the retry."""
    pending = [r.id for r in refunds if r.status == Refund.Status.PENDING]
    for index, refund_id in enumerate(pending):
        try:
            refund_execute(refund_id=refund_id, actor=actor)
        except errors.ProviderFailed:
            refunds_release(pending[index + 1 :])
            raise


def refunds_release(refund_ids: Sequence[str]) -> None:
    """Give back reservations that will not be asked of the provider."""
    if not refund_ids:
        return
    with transaction.atomic():
        payments_lock(Refund.objects.filter(pk__in=refund_ids).values_list("payment_id", flat=True))
        Refund.objects.filter(pk__in=refund_ids, status=Refund.Status.PENDING).delete()


def refund_execute(*, refund_id: str, actor: Actor) -> Refund:
    """Ask the provider for a reserved refund, then settle it. Its id is the provider key.

    Raises ProviderFailed (502: the reservation is released, nothing moved) and
    ProviderUnavailable (503: it stays pending; calling this again asks with the same key).
    """
    refund = Refund.objects.select_related("payment").filter(pk=refund_id).first()
    if refund is None:
        raise errors.NotFound("No refund with this id.")
    if refund.status == Refund.Status.SUCCEEDED:
        return refund
    payment = refund.payment
    try:
        result = provider_call(
            lambda p: p.refund(
                payment.as_input(),
                amount=refund.amount,
                reason=RefundReason(refund.reason),
                idempotency_key=refund.id,
            ),
            type=PaymentEvent.Type.REFUND,
            provider_id=payment.provider_id,
            actor=actor,
            payment=payment,
            amount=refund.amount,
            idempotency_key=refund.id,
        )
    except ProviderError as error:
        _operation_failed(
            payment.id, PaymentEvent.Type.REFUND, refund.id, error, refund_id=refund.id
        )
        raise provider_error_for_operation(error) from error
    with transaction.atomic():
        payment = payment_lock(payment.id)
        current = Refund.objects.select_for_update().filter(pk=refund_id).first()
        if current is not None and current.status == Refund.Status.SUCCEEDED:
            return current  # a concurrent attempt with the same key settled it
        if result.provider_reference and (
            Refund.objects.filter(payment=payment, provider_reference=result.provider_reference)
            .exclude(pk=refund_id)
            .exists()
        ):
            # A provider webhook recorded this very refund first: keep that one.
            Refund.objects.filter(pk=refund_id).delete()
            return refund
        refund.status = Refund.Status.SUCCEEDED
        refund.amount = result.amount
        refund.provider_reference = result.provider_reference[:255]
        # The provider says it took effect: record it even if a concurrent refusal of the
        # same key (which a provider should never give) removed the reservation meanwhile.
        refund.save(force_insert=current is None)
        payment.amount_refunded += result.amount
        payment.save(update_fields=["amount_refunded"])
        event_record(
            type=PaymentEvent.Type.REFUND,
            provider_id=payment.provider_id,
            actor=actor,
            success=True,
            payment=payment,
            amount=result.amount,
            provider_reference=result.provider_reference,
            idempotency_key=refund.id,
        )
        _changed(payment, PaymentEvent.Type.REFUND, success=True)
    return refund


# The ledger


@dataclass(frozen=True)
class Discrepancy:
    """A payment whose stored amounts disagree with its event ledger."""

    payment_id: str
    differences: dict[str, tuple[object, object]]  # field -> (stored, from the ledger)


def payments_with_ledger(queryset: QuerySet[Payment] | None = None) -> QuerySet[Payment]:
    """Payments annotated with their amounts rebuilt from successful events, in one query:
    `ledger_amount` (the last authorization of the session before the payment existed),
    `ledger_captured`, `ledger_refunded`, `ledger_is_captured`, `ledger_is_canceled`."""
    ok = PaymentEvent.objects.filter(payment=OuterRef("pk"), success=True).order_by()

    def total(type: str) -> Coalesce:
        sums = ok.filter(type=type).values("payment").annotate(total=Sum("amount")).values("total")
        return Coalesce(Subquery(sums), 0)

    authorization = (
        PaymentEvent.objects.filter(
            payment__isnull=True,
            type=PaymentEvent.Type.AUTHORIZE,
            success=True,
            session_id=OuterRef("ledger_session_id"),
            created_at__lte=OuterRef("created_at"),
        )
        .order_by("-created_at", "-id")
        .values("amount")[:1]
    )
    return (
        (queryset if queryset is not None else Payment.objects.all())
        .annotate(
            ledger_session_id=Coalesce(
                F("session_id"), KT("data__session_id"), output_field=CharField()
            )
        )
        .annotate(
            ledger_amount=Subquery(authorization),
            ledger_captured=total(PaymentEvent.Type.CAPTURE),
            ledger_refunded=total(PaymentEvent.Type.REFUND),
            ledger_is_captured=Exists(ok.filter(type=PaymentEvent.Type.CAPTURE)),
            ledger_is_canceled=Exists(ok.filter(type=PaymentEvent.Type.CANCEL)),
        )
    )


def _differences(payment: Any) -> dict[str, tuple[object, object]]:
    pairs: dict[str, tuple[object, object]] = {
        "amount": (payment.amount, payment.ledger_amount),
        "amount_captured": (payment.amount_captured, payment.ledger_captured),
        "amount_refunded": (payment.amount_refunded, payment.ledger_refunded),
        "captured": (payment.captured_at is not None, payment.ledger_is_captured),
        "canceled": (payment.canceled_at is not None, payment.ledger_is_canceled),
    }
    return {field: pair for field, pair in pairs.items() if pair[0] != pair[1]}


def payments_reconcile(*, payment_ids: Iterable[str] | None = None) -> list[Discrepancy]:
    """Every payment (or those given) whose stored amounts disagree with its ledger: a bug,
    or a row changed behind the services' back. Reads in one query."""
    queryset = Payment.objects.order_by("created_at", "id")
    if payment_ids is not None:
        queryset = queryset.filter(pk__in=list(payment_ids))
    found = []
    for payment in payments_with_ledger(queryset).iterator(chunk_size=1000):
        differences = _differences(payment)
        if differences:
            found.append(Discrepancy(payment_id=payment.pk, differences=differences))
    return found


def payment_rebuild_from_ledger(*, payment_id: str) -> Payment:
    """Overwrite a payment's stored amounts with what its ledger says, under its lock.

    For an operator who found a discrepancy and trusts the ledger; the database still
    refuses amounts out of order (the ledger itself would then be wrong: InvalidState).
    """
    with transaction.atomic():
        payment_lock(payment_id)
        payment: Any = payments_with_ledger(Payment.objects.filter(pk=payment_id)).get()
        if payment.ledger_amount is None:
            raise errors.InvalidState("The ledger holds no authorization for this payment.")
        events = PaymentEvent.objects.filter(payment=payment, success=True).order_by("created_at")
        first = {e.type: e.created_at for e in reversed(list(events))}
        payment.amount = payment.ledger_amount
        payment.amount_captured = payment.ledger_captured
        payment.amount_refunded = payment.ledger_refunded
        if payment.ledger_is_captured != (payment.captured_at is not None):
            payment.captured_at = first.get(PaymentEvent.Type.CAPTURE)
        if payment.ledger_is_canceled != (payment.canceled_at is not None):
            payment.canceled_at = first.get(PaymentEvent.Type.CANCEL)
        try:
            with transaction.atomic():
                payment.save(
                    update_fields=[
                        "amount",
                        "amount_captured",
                        "amount_refunded",
                        "captured_at",
                        "canceled_at",
                    ]
                )
        except IntegrityError:
            raise errors.InvalidState(
                "The ledger's amounts are out of order; it needs a person, not a rebuild."
            ) from None
    return payment


@dataclass(frozen=True)
class ResumeOutcome:
    subject: str  # a payment or refund id
    operation: str
    result: str  # "settled", or the error code that stopped it


def payments_resume_pending(*, older_than: timedelta, actor: Actor = SYSTEM) -> list[ResumeOutcome]:
    """Settle operations that a lost answer left pending, by asking the provider again with
    the same key: the outcome it answers is recorded, so nothing stays reserved forever."""
    cutoff = timezone.now() - older_than
    outcomes = []
    stalled = Payment.objects.filter(pending_since__lt=cutoff).order_by("pending_since")
    for payment in stalled:
        operation = payment.pending_operation
        try:
            if operation == CAPTURE:
                payment_capture(payment_id=payment.pk, actor=actor)
            else:
                payment_cancel(payment_id=payment.pk, actor=actor)
            result = "settled"
        except errors.DomainError as error:
            result = error.code
        outcomes.append(ResumeOutcome(subject=payment.pk, operation=operation, result=result))
    refunds = Refund.objects.filter(status=Refund.Status.PENDING, created_at__lt=cutoff)
    for refund_id in refunds.order_by("created_at").values_list("pk", flat=True):
        try:
            refund_execute(refund_id=refund_id, actor=actor)
            result = "settled"
        except errors.DomainError as error:
            result = error.code
        outcomes.append(ResumeOutcome(subject=refund_id, operation="refund", result=result))
    return outcomes
