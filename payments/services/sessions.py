"""Payment sessions at their providers: initiate, follow the cart's total, take the
storefront's data, release, authorize.

Every call that changes something at the provider is a PaymentOperation written down first,
with a key derived from what it does (`<session>:initiate`, `<session>:update:<revision>`,
`<session>:authorize:<revision>`), so a call repeated after a lost answer finds the remote
object the first one made. A provider that fails marks only its own session `error`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from payments import errors
from payments.models import OperationType, Payment, PaymentOperation, PaymentSession
from payments.purchase import Purchase
from payments.services.actors import STOREFRONT, SYSTEM, Actor
from payments.services.calls import event_record, installed_provider
from payments.services.operations import (
    operation_claim,
    operation_open,
    operation_send,
    operation_settle,
    provider_send,
    session_of,
    session_params,
)
from providers.base import (
    AuthorizationResult,
    OperationResult,
    PaymentProviderBase,
    ProviderError,
    ProviderErrorKind,
    SessionInput,
    SessionResult,
    SessionStatus,
)

Status = PaymentOperation.Status
REDIRECT_KEYS = ("return_url", "cancel_url")


def provider_error_for_session(error: ProviderError) -> errors.DomainError:
    if error.kind is ProviderErrorKind.INVALID:
        return errors.InvalidData(error.message, fields={"data": [error.message]})
    if error.outcome_unknown:
        return errors.ProviderUnavailable(error.message)
    return errors.ProviderFailed(error.message)


def _session_operation(
    session: PaymentSession,
    type: str,
    base: str,
    actor: Actor,
    request: SessionInput,
    amount: int | None,
) -> PaymentOperation:
    """The operation for this call: an earlier attempt under its key taken over (its answer
    was lost), or a new one written down, numbered past refused attempts (a provider replays
    a refusal for its key). One indexed read of the session's calls of this type."""
    earlier = [
        op
        for op in PaymentOperation.objects.filter(session_id=session.id, type=type)
        if op.idempotency_key == base or op.idempotency_key.startswith(f"{base}:")
    ]
    unresolved = next((op for op in earlier if op.status in PaymentOperation.UNRESOLVED), None)
    if unresolved is not None:
        claimed = operation_claim(unresolved.id)
        if claimed is None:
            raise errors.InvalidState("This session is being changed; retry.")
        return claimed
    failed = sum(op.status == Status.FAILED for op in earlier)
    key = base if not failed else f"{base}:{failed}"
    done = next((op for op in earlier if op.idempotency_key == key), None)
    if done is not None:
        return done  # answered already: sending it again only re-reads the remote session
    try:
        # One INSERT, committed on its own: written down before it is sent.
        return operation_open(
            type=type,
            provider_id=session.provider_id,
            idempotency_key=key,
            actor=actor,
            session_id=session.id,
            cart_id=session.cart_id,
            amount=amount,
            params=session_params(request, revision=session.revision),
        )
    except IntegrityError:
        raise errors.InvalidState("This session is being changed; retry.") from None


def _session_call(
    *,
    session: PaymentSession,
    type: str,
    base: str,
    actor: Actor,
    call: Callable[[PaymentProviderBase, str], SessionResult],
    request: SessionInput,
    amount: int | None = None,
    operation: PaymentOperation | None = None,
) -> SessionResult:
    """Write the call down (or take over its earlier attempt), send it with the operation's
    key, and record the outcome; raises the ProviderError after recording it. The request
    is kept on the operation, so the worker can send it again if this process dies."""
    if operation is None:
        operation = _session_operation(session, type, base, actor, request, amount)
    key = operation.idempotency_key
    outcome: SessionResult | ProviderError = provider_send(operation, lambda p: call(p, key))
    if operation.is_open:
        settled = (
            outcome
            if isinstance(outcome, ProviderError)
            else OperationResult(amount=amount or 0, raw=outcome.raw, request_id=outcome.request_id)
        )
        operation_settle(operation, settled, actor=actor)
    if isinstance(outcome, ProviderError):
        raise outcome
    return outcome


def _store_result(session: PaymentSession, result: SessionResult) -> None:
    session.data = {**_redirects(session.data), **result.data}
    session.status = result.status
    session.next_action = result.next_action.as_json() if result.next_action else None
    PaymentSession.objects.filter(pk=session.pk).update(
        data=session.data,
        status=session.status,
        next_action=session.next_action,
        updated_at=timezone.now(),
    )


def _mark_error(session: PaymentSession, error: ProviderError) -> None:
    session.status = SessionStatus.ERROR
    if error.next_action is not None:
        session.next_action = error.next_action.as_json()
    PaymentSession.objects.filter(pk=session.pk).update(
        status=session.status, next_action=session.next_action, updated_at=timezone.now()
    )


def _redirects(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in REDIRECT_KEYS if key in data}


# Initiate ---------------------------------------------------------------------------------


def payment_session_create(
    *,
    cart_id: str,
    provider_id: str,
    amount: int,
    currency_code: str,
    purchase: Purchase,
    is_selected: bool = False,
    data: Mapping[str, Any] | None = None,
    actor: Actor = STOREFRONT,
) -> PaymentSession:
    """Store the session, then open it at the provider; one per (cart, provider).

    The row comes first, so a racing request finds it and sends nothing. A provider that
    fails leaves the session `error` and raises (ProviderUnavailable, ProviderFailed): the
    caller decides whether the customer needs to hear it.
    """
    installed_provider(provider_id)
    session = PaymentSession(
        cart_id=cart_id,
        provider_id=provider_id,
        amount=amount,
        currency_code=currency_code,
        is_selected=is_selected,
        data=_redirects(data or {}),
    )
    request = session.as_input(purchase)
    try:
        with transaction.atomic():
            session.save(force_insert=True)
            # A new session has no earlier call: its initiate is written down with it.
            operation = operation_open(
                type=OperationType.INITIATE,
                provider_id=provider_id,
                idempotency_key=f"{session.id}:initiate",
                actor=actor,
                session_id=session.id,
                cart_id=cart_id,
                amount=amount,
                params=session_params(request, revision=session.revision),
            )
    except IntegrityError:
        existing = PaymentSession.objects.filter(cart_id=cart_id, provider_id=provider_id).first()
        if existing is None:  # the cart's selection changed meanwhile, not this provider
            raise errors.InvalidState(
                "The cart's payment sessions changed meanwhile; retry."
            ) from None
        return existing
    return payment_session_initiate(
        session=session, purchase=purchase, actor=actor, operation=operation
    )


def payment_session_initiate(
    *,
    session: PaymentSession,
    purchase: Purchase,
    actor: Actor = STOREFRONT,
    operation: PaymentOperation | None = None,
) -> PaymentSession:
    """Open the session at the provider; after a lost answer the same key is sent again,
    so the provider finds the remote object its first call made."""
    request = session.as_input(purchase)
    try:
        result = _session_call(
            session=session,
            type=OperationType.INITIATE,
            base=f"{session.id}:initiate",
            actor=actor,
            amount=session.amount,
            call=lambda p, key: p.initiate_session(request, idempotency_key=key),
            request=request,
            operation=operation,
        )
    except ProviderError as error:
        _mark_error(session, error)
        raise provider_error_for_session(error) from error
    _store_result(session, result)
    return session


def session_is_initiated(session: PaymentSession) -> bool:
    return PaymentOperation.objects.filter(
        session_id=session.id, type=OperationType.INITIATE, status=Status.SUCCEEDED
    ).exists()


# Amount and data --------------------------------------------------------------------------


def payment_session_update_amount(
    *, session: PaymentSession, amount: int, purchase: Purchase, actor: Actor = STOREFRONT
) -> PaymentSession:
    """Bring the remote session to the cart's new total. The revision moves first, in the
    database (F()): an authorization asked for the old amount can no longer be taken for
    this one, and the next authorization gets a new key."""
    now = timezone.now()
    with transaction.atomic():
        PaymentSession.objects.filter(pk=session.pk).update(
            amount=amount,
            revision=F("revision") + 1,
            status=SessionStatus.PENDING,
            payment_authorized_at=None,
            updated_at=now,
        )
        session.refresh_from_db(fields=["amount", "revision", "status", "payment_authorized_at"])
    if not session_is_initiated(session):
        return payment_session_initiate(session=session, purchase=purchase, actor=actor)
    request = session.as_input(purchase)
    try:
        result = _session_call(
            session=session,
            type=OperationType.UPDATE,
            base=f"{session.id}:update:{session.revision}",
            actor=actor,
            amount=amount,
            call=lambda p, _key: p.update_session(request),
            request=request,
        )
    except ProviderError as error:
        _mark_error(session, error)
        raise provider_error_for_session(error) from error
    _store_result(session, result)
    return session


def storefront_url_check(name: str, value: Any) -> str:
    """A return or cancel URL must lead back to one of our storefronts (no open redirect)."""
    if not isinstance(value, str) or len(value) > 2000:
        raise errors.InvalidData(f"{name} must be a URL.", fields={name: ["Must be a URL."]})
    parts = urlsplit(value)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    if parts.scheme not in ("http", "https") or origin not in settings.STOREFRONT_ORIGINS:
        message = "Must be on one of the storefront origins (STOREFRONT_ORIGINS)."
        raise errors.InvalidData(f"{name}: {message}", fields={name: [message]})
    return value


def payment_session_update_data(
    *,
    session: PaymentSession,
    data: Mapping[str, Any],
    purchase: Purchase,
    actor: Actor = STOREFRONT,
) -> PaymentSession:
    """Take the storefront's data: `return_url`/`cancel_url` are checked and kept (the
    provider gets them at its next initiate or refresh); the rest goes to the provider,
    which validates it (INVALID is a 400)."""
    redirects = {key: storefront_url_check(key, data[key]) for key in REDIRECT_KEYS if key in data}
    rest = {key: value for key, value in data.items() if key not in REDIRECT_KEYS}
    if redirects:
        session.data = {**session.data, **redirects}
        PaymentSession.objects.filter(pk=session.pk).update(
            data=session.data, updated_at=timezone.now()
        )
    if not rest and redirects:
        return session
    digest = hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:16]
    request = session.as_input(purchase)
    try:
        result = _session_call(
            session=session,
            type=OperationType.UPDATE,
            base=f"{session.id}:data:{session.revision}:{digest}",
            actor=actor,
            call=lambda p, _key: p.update_session_data(request, rest),
            request=request,
        )
    except ProviderError as error:
        if error.kind is not ProviderErrorKind.INVALID:
            _mark_error(session, error)
        raise provider_error_for_session(error) from error
    _store_result(session, result)
    return session


# Release ----------------------------------------------------------------------------------


def payment_session_release(
    *, session: PaymentSession, actor: Actor = STOREFRONT, delete: bool = False
) -> PaymentOperation:
    """Release whatever the provider holds for the session (no orphaned intents), then
    forget the session (`delete`) or keep it `canceled` as a record.

    The release is written down with the session as the provider knew it, so it can be
    sent again after the row is gone. It never fails the caller: a provider that cannot be
    reached gets it again from the worker, under the same key.
    """
    key = f"{session.id}:release:{session.revision}"
    with transaction.atomic():
        try:
            # A savepoint: two workers releasing one session at once (the queued task and
            # the sweep) both try to write it down; the key's unique index lets one win.
            with transaction.atomic():
                operation = operation_open(
                    type=OperationType.RELEASE,
                    provider_id=session.provider_id,
                    idempotency_key=key,
                    actor=actor,
                    session_id=session.id,
                    cart_id=session.cart_id,
                    params=session_params(session.as_input()),
                )
            mine = True
        except IntegrityError:
            operation = PaymentOperation.objects.get(
                provider_id=session.provider_id, idempotency_key=key
            )
            mine = False
        if delete:
            PaymentSession.objects.filter(pk=session.pk).delete()
    if mine:
        # Only the attempt that wrote it down sends it (it holds its lease); another
        # leaves it to that attempt, or to the worker once the lease lapses.
        return operation_settle(operation, operation_send(operation), actor=actor)
    return operation


def session_operation_resume(*, operation_id: str, actor: Actor = SYSTEM) -> PaymentOperation:
    """Send again an initiate or an amount update whose process died mid-call (or whose
    answer was lost), under its own key, so the remote object it made is found and kept on
    the session. One the session has moved past (a newer revision, a deleted row, a
    storefront's data, which it sends again itself) is settled as superseded."""
    operation = operation_claim(operation_id)
    if operation is None:
        return PaymentOperation.objects.get(pk=operation_id)
    session = PaymentSession.objects.filter(pk=operation.session_id).first()
    resumable = (
        session is not None
        and operation.type in (OperationType.INITIATE, OperationType.UPDATE)
        and ":data:" not in operation.idempotency_key
        and "session" in operation.params
        and operation.params.get("revision") == session.revision
    )
    if not resumable:
        superseded = ProviderError(ProviderErrorKind.OTHER, "Superseded: the session moved on.")
        return operation_settle(operation, superseded, actor=actor)
    assert session is not None
    request, key = session_of(operation), operation.idempotency_key
    outcome: SessionResult | ProviderError = provider_send(
        operation,
        (lambda p: p.initiate_session(request, idempotency_key=key))
        if operation.type == OperationType.INITIATE
        else (lambda p: p.update_session(request)),
    )
    if isinstance(outcome, ProviderError):
        return operation_settle(operation, outcome, actor=actor)
    _store_result(session, outcome)
    settled = OperationResult(
        amount=operation.amount or 0, raw=outcome.raw, request_id=outcome.request_id
    )
    return operation_settle(operation, settled, actor=actor)


def payment_session_select(*, sessions: list[PaymentSession], provider_id: str) -> None:
    """Select the provider's session among the cart's `sessions`, read under the cart's
    lock, which the caller holds; the rows and the objects both change."""
    deselected = [s.pk for s in sessions if s.is_selected and s.provider_id != provider_id]
    if deselected:  # first: at most one session of a cart is selected at any moment
        PaymentSession.objects.filter(pk__in=deselected).update(is_selected=False)
    chosen = [s.pk for s in sessions if s.provider_id == provider_id and not s.is_selected]
    if chosen:
        PaymentSession.objects.filter(pk__in=chosen).update(is_selected=True)
    for session in sessions:
        session.is_selected = session.provider_id == provider_id


# Authorization ----------------------------------------------------------------------------


def authorization_base_key(session: PaymentSession) -> str:
    """Derived from the session and its amount revision, not from the client's key: a
    lost answer retried under any client key, or by the worker, reaches the provider with
    the same key, so the cart is authorized once; a changed amount gets a new key."""
    return f"{session.id}:authorize:{session.revision}"


def payment_session_authorize(
    *,
    session: PaymentSession,
    purchase: Purchase,
    actor: Actor = STOREFRONT,
    resume_only: bool = False,
    asked_before: bool = True,
) -> tuple[PaymentOperation, AuthorizationResult]:
    """Ask the provider to authorize the session, written down first.

    An authorization whose answer was lost (its operation `unknown`, or `requested` by a
    process that died) is asked again under its own key. Returns the operation, still
    open, and the AUTHORIZED result: the caller settles both with the Payment in one
    transaction (payment_create_from_authorization). Anything else is settled here:
    REQUIRES_MORE is returned too (the session shows the `next_action`); a decline raises
    ProviderError DECLINED (the session `error`), a lost answer ProviderError UNAVAILABLE.
    Raises CartCompletionInProgress while another live attempt is asking, and InvalidState
    with `resume_only` when nothing was asked before. `asked_before` False (the caller read
    that the session has no authorization yet) spares the look for earlier attempts.
    """
    base = authorization_base_key(session)
    # One indexed read of the session's authorizations: one of this revision still open is
    # asked again under its key; refused ones number the next key.
    earlier = []
    if asked_before or resume_only:
        earlier = [
            op
            for op in PaymentOperation.objects.filter(
                session_id=session.id, type=OperationType.AUTHORIZE
            )
            if op.idempotency_key == base or op.idempotency_key.startswith(f"{base}:")
        ]
    unresolved = next((op for op in earlier if op.status in PaymentOperation.UNRESOLVED), None)
    operation = operation_claim(unresolved.id) if unresolved is not None else None
    if unresolved is not None and operation is None:
        raise errors.CartCompletionInProgress("This cart's authorization is being asked; retry.")
    if operation is None and resume_only:
        raise errors.InvalidData("No authorization to resume: the customer never asked.")
    if operation is None:
        failed = sum(op.status == Status.FAILED for op in earlier)
        try:
            # One INSERT, committed on its own: written down before it is sent.
            operation = operation_open(
                type=OperationType.AUTHORIZE,
                provider_id=session.provider_id,
                idempotency_key=base if not failed else f"{base}:{failed}",
                actor=actor,
                session_id=session.id,
                cart_id=session.cart_id,
                amount=session.amount,
                params={"revision": session.revision},
            )
        except IntegrityError:  # another attempt wrote it down since this one looked
            raise errors.CartCompletionInProgress(
                "This cart's authorization is being asked; retry."
            ) from None
    request = session.as_input(purchase)
    key = operation.idempotency_key
    outcome = provider_send(operation, lambda p: p.authorize(request, idempotency_key=key))
    if isinstance(outcome, ProviderError):
        operation_settle(operation, outcome, actor=actor)
        if not outcome.outcome_unknown:
            _mark_error(session, outcome)
        raise outcome
    if outcome.status is not SessionStatus.AUTHORIZED:
        # Nothing is held: this attempt is over, and the next gets a new key.
        refused = ProviderError(
            ProviderErrorKind.DECLINED
            if outcome.status is not SessionStatus.REQUIRES_MORE
            else ProviderErrorKind.OTHER,
            f"The provider answered {outcome.status.value}.",
            provider_reference=outcome.provider_reference,
            raw=outcome.raw,
            request_id=outcome.request_id,
        )
        operation_settle(operation, refused, actor=actor)
        session.status = outcome.status
        session.data = {**session.data, **outcome.data}
        session.next_action = outcome.next_action.as_json() if outcome.next_action else None
        PaymentSession.objects.filter(pk=session.pk).update(
            status=session.status,
            data=session.data,
            next_action=session.next_action,
            updated_at=timezone.now(),
        )
    return operation, outcome


def authorization_expiry(provider_id: str, result: AuthorizationResult) -> datetime | None:
    if result.expires_at is not None:
        return result.expires_at
    lifetime = installed_provider(provider_id).authorization_lifetime
    return timezone.now() + lifetime if lifetime else None


def payment_create_from_authorization(
    *,
    session: PaymentSession,
    operation: PaymentOperation,
    authorization: AuthorizationResult,
    actor: Actor = STOREFRONT,
) -> Payment:
    """Store the authorized session as a Payment and settle its authorization, in the
    caller's transaction (which holds the cart's lock). The Payment's amount is what the
    provider authorized; the database refuses a second live payment for the cart."""
    now = timezone.now()
    session.status = SessionStatus.AUTHORIZED
    session.payment_authorized_at = now
    session.data = {**session.data, **authorization.data}
    session.next_action = None
    PaymentSession.objects.filter(pk=session.pk).update(
        status=session.status,
        payment_authorized_at=now,
        data=session.data,
        next_action=None,
        updated_at=now,
    )
    payment = Payment.objects.create(
        cart_id=session.cart_id,
        session=session,
        provider_id=session.provider_id,
        currency_code=session.currency_code,
        amount=authorization.amount,
        data={**authorization.data, "session_id": session.id},
        authorization_expires_at=authorization_expiry(session.provider_id, authorization),
    )
    PaymentOperation.objects.filter(pk=operation.pk).update(
        status=Status.SUCCEEDED,
        payment=payment,
        amount=authorization.amount,
        provider_reference=authorization.provider_reference[:255],
        settled_at=now,
        lease_until=None,
        error="",
    )
    event_record(
        type=OperationType.AUTHORIZE,
        provider_id=session.provider_id,
        actor=actor,
        success=True,
        operation=operation,
        session_id=session.id,
        cart_id=session.cart_id,
        amount=authorization.amount,
        provider_reference=authorization.provider_reference,
        idempotency_key=operation.idempotency_key,
        answer=authorization,
    )
    return payment
