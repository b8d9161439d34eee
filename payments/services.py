"""Services of the payment domain: every provider call, session change and payment write.

Views, admin actions, commands and webhooks all call these. Two rules hold throughout:
a provider call never runs inside an open database transaction (it is network I/O and
would hold row locks for its duration), and every provider call leaves a PaymentEvent,
success or failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from payments import errors
from payments.fields import new_id
from payments.models import Payment, PaymentEvent, PaymentProvider, PaymentSession
from providers.base import (
    AuthorizationResult,
    PaymentProviderBase,
    ProviderError,
    ProviderErrorKind,
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
        return PaymentSession.objects.get(cart_id=cart_id, provider_id=provider_id)
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


def payment_session_delete(*, session: PaymentSession, actor: Actor = STOREFRONT) -> None:
    """Release the session at the provider, then forget it (no orphaned remote payments)."""
    session_call(
        session,
        session.provider_id,
        PaymentEvent.Type.DELETE,
        lambda p: p.delete_session(session.as_input()),
        actor=actor,
    )
    PaymentSession.objects.filter(pk=session.pk).delete()


def payment_session_cancel(*, session: PaymentSession, actor: Actor = STOREFRONT) -> None:
    """Release the session at the provider and keep its row, canceled, as a record."""
    session_call(
        session,
        session.provider_id,
        PaymentEvent.Type.DELETE,
        lambda p: p.delete_session(session.as_input()),
        actor=actor,
    )
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


def provider_ids_installed() -> set[str]:
    return set(PaymentProvider.objects.filter(is_installed=True).values_list("id", flat=True))


# Money movements ----------------------------------------------------------------------


def payment_lock(payment_id: str) -> Payment:
    """Lock the payment row; it comes after the cart, key and session in the lock order."""
    try:
        return Payment.objects.select_for_update().get(pk=payment_id)
    except Payment.DoesNotExist:
        raise errors.NotFound("No payment with this id.") from None


def payment_get(payment_id: str) -> Payment:
    try:
        return Payment.objects.get(pk=payment_id)
    except Payment.DoesNotExist:
        raise errors.NotFound("No payment with this id.") from None


def provider_error_for_operation(error: ProviderError) -> errors.DomainError:
    if error.outcome_unknown:
        return errors.ProviderUnavailable(error.message)
    return errors.ProviderFailed(error.message)


def payment_cancel(*, payment_id: str, actor: Actor, idempotency_key: str | None = None) -> Payment:
    """Release an uncaptured authorization at the provider, then mark the payment canceled.

    Canceling a canceled payment is a no-op; a captured one is InvalidState. A provider
    failure changes nothing here and is raised as ProviderFailed or ProviderUnavailable.
    """
    payment = payment_get(payment_id)
    if payment.canceled_at is not None:
        return payment
    if payment.captured_at is not None:
        raise errors.InvalidState("A captured payment cannot be canceled; refund it instead.")
    key = idempotency_key or f"{payment.id}:cancel"
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
        raise provider_error_for_operation(error) from error
    with transaction.atomic():
        payment = payment_lock(payment_id)
        if payment.canceled_at is None:
            payment.canceled_at = timezone.now()
            payment.save(update_fields=["canceled_at"])
            if payment.session_id:
                PaymentSession.objects.filter(pk=payment.session_id).update(
                    status=SessionStatus.CANCELED, updated_at=payment.canceled_at
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
    return payment
