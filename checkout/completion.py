"""Completing a cart exactly once (SPEC section 5).

The work runs in steps, each committed together with its recovery point:

    started             the key is leased to this request (nothing else happened)
    payment_authorized  the provider authorized the session; the Payment exists
    finished            the order exists, the cart is completed, the answer is stored

Which step comes next is read from the cart itself (a live Payment means the authorization
committed; a completed cart is done), so a retry under the same key, under another
key, or from `complete_stalled_checkouts` never repeats a committed step. The provider call
runs between transactions; the authorization's provider key is derived from the session,
so an authorization whose answer was lost is asked for again under the same key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Prefetch, prefetch_related_objects
from django.dispatch import Signal
from django.utils import timezone

from checkout.metrics import checkouts_completed, checkouts_failed
from checkout.models import Cart, Order, Swap
from checkout.orders import order_payment_status
from checkout.services import (
    cart_changing,
    cart_checks,
    cart_completing_by_others,
    cart_contents_set,
    cart_get,
    cart_lock,
    cart_purchase,
)
from checkout.swaps import swap_attach_payment, swap_of_cart
from payments import errors
from payments.idempotency import (
    IdempotentRequest,
    Lease,
    RecoveryPoint,
    Replay,
    fingerprint,
    idempotency_key_advance,
    idempotency_key_begin,
    idempotency_key_finish,
    idempotency_key_release,
)
from payments.models import OperationType, Payment, PaymentOperation, PaymentSession
from payments.services import STOREFRONT, SYSTEM, Actor, payment_cancel
from payments.services.operations import lease_free, operation_settle
from payments.services.sessions import (
    payment_create_from_authorization,
    payment_session_authorize,
    payment_session_release,
    payment_session_update_amount,
)
from providers.base import ProviderError, ProviderErrorKind, SessionStatus

logger = logging.getLogger(__name__)

# Sent after each recovery point commits, with `point` and `cart_id`: lets tests stop a
# request exactly between two steps, as a crashing worker would.
recovery_point_committed = Signal()
# Sent after a completion commits, with `cart_id`: the worker app queues the release of
# the unselected sessions (a lost message is found by the worker's sweep).
unselected_sessions_release_requested = Signal()

# Renders a completed cart's final answer (its order, or its swap), stored with the key.
# The order is given when this call just made it, with everything its answer shows, so
# nothing is read again; None means read it.
CompletionRenderer = Callable[[Cart, Order | None], bytes]


@dataclass(frozen=True)
class Finished:
    """The final answer, stored with the key: sent as is, with `replayed` said in a header."""

    status: int
    body: bytes
    replayed: bool = False


@dataclass(frozen=True)
class NeedsCustomer:
    """The provider needs the customer (3-D Secure): answered with the cart, not stored."""

    cart: Cart


def cart_complete(
    *,
    cart_id: str,
    request: IdempotentRequest,
    render: CompletionRenderer,
    actor: Actor = STOREFRONT,
    resume_only: bool = False,
) -> Finished | NeedsCustomer:
    """Turn the cart into an order exactly once, whatever the network does. With
    `resume_only` (the worker), an authorization is asked only if one was asked before.

    Raises IdempotencyKeyMismatch (422), IdempotencyKeyInUse or CartCompletionInProgress
    (409), InvalidData (400: nothing to pay for), PaymentAuthorizationFailed (402) and
    ProviderUnavailable (503). Only a Finished answer is final; after any error the key is
    free again and a retry continues from the committed recovery point.
    """
    with transaction.atomic():
        cart = cart_lock(cart_id)
        taken = idempotency_key_begin(request, resource_id=cart.id)
        if isinstance(taken, Replay):
            return Finished(taken.status, taken.body, replayed=True)
        others = {"completing": False, "changing": False}
        if cart.completed_at is None:
            others = cart_checks(
                cart,
                completing=cart_completing_by_others(request.scope, request.key),
                changing=cart_changing(),
            )
        if others["completing"]:
            # Rolls back our own lease with it: the other key's request goes on alone.
            raise errors.CartCompletionInProgress("Another request is completing this cart.")
        if others["changing"]:
            # A change's provider calls are in flight (a session being released, say):
            # completing now could authorize what the change is about to undo.
            busy = errors.InvalidState("The cart is being changed; retry shortly.")
            busy.retry_after = 1
            raise busy
        if cart.idempotency_key != request.key:
            Cart.objects.filter(pk=cart.pk).update(idempotency_key=request.key)
    if cart.completed_at is not None:
        # Completed already, by another key or a webhook: answer with its order.
        return _finish(cart_id, taken, render)
    try:
        return _complete_leased(
            cart,
            taken,
            render,
            actor,
            authorized=cart.payment_authorized_at is not None,
            resume_only=resume_only,
        )
    except BaseException as error:
        idempotency_key_release(taken)
        if isinstance(error, errors.DomainError):
            checkouts_failed.labels(error.code).inc()
        raise


def _complete_leased(
    cart: Cart,
    lease: Lease,
    render: CompletionRenderer,
    actor: Actor,
    *,
    authorized: bool,
    resume_only: bool,
) -> Finished | NeedsCustomer:
    cart_id = cart.pk
    # The cart's payment_authorized_at is set in the transaction that creates its payment.
    payment = None
    authorization: Authorized | None = None
    if authorized:
        payment = Payment.objects.filter(cart_id=cart_id, canceled_at__isnull=True).first()
    if payment is None:
        outcome = _authorize(cart, lease, actor, resume_only=resume_only)
        if isinstance(outcome, NeedsCustomer):
            idempotency_key_release(lease)
            return outcome
        authorization, payment = outcome, outcome.payment
    try:
        return _finish(cart_id, lease, render, payment, authorization)
    except (_CartChanged, errors.InvalidState):
        # Only a change behind the services' back gets here (they refuse changes once a
        # payment is authorized); its authorization must not be left behind.
        payment_cancel(payment_id=payment.id, actor=actor)
        Cart.objects.filter(pk=cart_id).update(payment_authorized_at=None)
        raise errors.InvalidState(
            "The cart, or its swap, changed after its payment was authorized; the "
            "authorization was canceled."
        ) from None


@dataclass(frozen=True)
class Authorized:
    """What this call's authorization committed, known without reading it again."""

    payment: Payment
    revision: int  # the session revision the authorization was asked for
    other_sessions: bool  # the cart has sessions to release once it is completed


def _authorize(
    cart: Cart, lease: Lease, actor: Actor, *, resume_only: bool
) -> Authorized | NeedsCustomer:
    cart_id = cart.pk
    asked = PaymentOperation.objects.filter(session_id=OuterRef("pk"), type=OperationType.AUTHORIZE)
    sessions = PaymentSession.objects.order_by("created_at", "id")
    prefetch_related_objects(
        [cart],
        "items",
        # Whether to look for earlier attempts is read along with the sessions.
        Prefetch("payment_sessions", sessions.annotate(authorization_asked=Exists(asked))),
    )
    session = cart.selected_session
    if not cart.items.all():
        raise errors.InvalidData("The cart is empty.")
    if session is None:
        raise errors.InvalidData("Select a payment session before completing the cart.")
    if session.status == SessionStatus.CANCELED:
        raise errors.InvalidData("This payment session was canceled; refresh it to pay.")
    swap = swap_of_cart(cart_id) if cart.type == Cart.Type.SWAP else None
    if swap is not None and swap.status == Swap.Status.CANCELED:
        raise errors.InvalidState("This swap was canceled; its cart cannot be paid.")
    purchase = cart_purchase(cart)
    if session.amount != cart.total:
        # SPEC 5.5: a session authorized for another amount is re-authorized first.
        session = payment_session_update_amount(
            session=session, amount=cart.total, purchase=purchase, actor=actor
        )
    try:
        operation, authorization = payment_session_authorize(
            session=session,
            purchase=purchase,
            actor=actor,
            resume_only=resume_only,
            asked_before=getattr(session, "authorization_asked", True),
        )
    except ProviderError as error:
        if error.outcome_unknown:
            raise errors.ProviderUnavailable(
                "The payment provider's answer was lost; retry with the same Idempotency-Key."
            ) from error
        raise errors.PaymentAuthorizationFailed(error.message) from error
    if authorization.status is SessionStatus.REQUIRES_MORE:
        return NeedsCustomer(cart_get(cart_id))
    if authorization.status is not SessionStatus.AUTHORIZED:
        raise errors.PaymentAuthorizationFailed(f"The payment is {authorization.status.value}.")
    with transaction.atomic():
        # This UPDATE is the cart's lock, taken first as everywhere.
        Cart.objects.filter(pk=cart_id).update(payment_authorized_at=timezone.now())
        idempotency_key_advance(lease, RecoveryPoint.PAYMENT_AUTHORIZED)
        # Stored even when the amount or the revision moved meanwhile: finishing then sees
        # the mismatch and cancels it, so no authorization is left untracked.
        payment = payment_create_from_authorization(
            session=session, operation=operation, authorization=authorization, actor=actor
        )
    recovery_point_committed.send(
        sender=cart_complete, point=RecoveryPoint.PAYMENT_AUTHORIZED, cart_id=cart_id
    )
    return Authorized(
        payment=payment,
        revision=operation.params["revision"],
        other_sessions=any(
            not s.is_selected and s.status != SessionStatus.CANCELED
            for s in cart.payment_sessions.all()
        ),
    )


class _CartChanged(Exception):
    """The cart no longer matches its authorized payment."""


def _finish(
    cart_id: str,
    lease: Lease,
    render: CompletionRenderer,
    payment: Payment | None = None,
    authorization: Authorized | None = None,
) -> Finished:
    order = None
    with transaction.atomic():
        cart = cart_lock(cart_id)
        completing = cart.completed_at is None
        if completing:
            items = list(cart.items.all())
            total = sum(item.total for item in items)
            if payment is None or not items or payment.amount != total:
                raise _CartChanged
            # Re-read under its lock: an operator may have canceled or captured it since.
            payment = (
                Payment.objects.select_for_update(of=("self",))
                .select_related("session")
                .get(pk=payment.pk)
            )
            asked = authorization.revision if authorization else _authorized_revision(payment)
            session = payment.session
            if payment.canceled_at is not None or session is None or asked != session.revision:
                raise _CartChanged
            if cart.type == Cart.Type.SWAP:
                # A swap's cart pays the swap: no order of its own.
                swap_attach_payment(cart=cart, payment=payment)
                _cart_completed(cart)
            else:
                cart_contents_set(cart, items)
                order = _order_create(cart, payment, total)
        body = render(cart, order)
        idempotency_key_finish(lease, status=200, body=body)
        if authorization is None or authorization.other_sessions:
            # The worker releases the sessions the customer did not pay with: no provider
            # call is left in the customer's request beyond the authorization.
            transaction.on_commit(
                lambda: unselected_sessions_release_requested.send(
                    sender=cart_complete, cart_id=cart_id
                )
            )
    if completing:
        checkouts_completed.inc()  # this call made the order: a replay is not counted
        logger.info("Cart %s completed with payment %s", cart_id, payment.pk if payment else "")
    recovery_point_committed.send(
        sender=cart_complete, point=RecoveryPoint.FINISHED, cart_id=cart_id
    )
    return Finished(200, body)


def _authorized_revision(payment: Payment) -> int | None:
    """The session revision the payment's authorization was asked for."""
    params = (
        PaymentOperation.objects.filter(payment=payment, type=OperationType.AUTHORIZE)
        .values_list("params", flat=True)
        .first()
    )
    return params.get("revision") if params else None


def _cart_completed(cart: Cart) -> None:
    cart.completed_at = timezone.now()
    Cart.objects.filter(pk=cart.pk).update(completed_at=cart.completed_at)


def _order_create(cart: Cart, payment: Payment, total: int) -> Order:
    """The order, with what its answer shows (the cart's items, its one payment, no refunds
    or swaps yet) as this transaction wrote it."""
    _cart_completed(cart)
    order = Order.objects.create(
        cart=cart,
        region_id=cart.region_id,
        email=cart.email,
        currency_code=cart.currency_code,
        total=total,
        status=Order.Status.PENDING,
        payment_status=order_payment_status([payment]),
    )
    Payment.objects.filter(pk=payment.pk).update(order=order)
    payment.order = order
    if payment.amount_captured == 0:  # nothing captured, so nothing refunded
        payment._prefetched_objects_cache = {"refunds": []}  # type: ignore[attr-defined]
    order._prefetched_objects_cache = {  # type: ignore[attr-defined]
        "payments": [payment],
        "refunds": [],
        "swaps": [],
    }
    return order


def cart_release_unselected_sessions(*, cart_id: str, actor: Actor = SYSTEM) -> int:
    """Release, at their providers, the sessions a completed cart did not pay with (no
    orphaned intents). Safe to run twice: a release is one operation per session revision.
    Returns how many were released."""
    sessions = PaymentSession.objects.filter(
        cart_id=cart_id, is_selected=False, cart__completed_at__isnull=False
    ).exclude(status=SessionStatus.CANCELED)
    released = 0
    for session in sessions:
        payment_session_release(session=session, actor=actor)
        released += 1
    return released


@dataclass(frozen=True)
class StalledOutcome:
    cart_id: str
    key: str
    result: str


def checkout_complete_stalled(
    *, older_than: timedelta, render: CompletionRenderer, limit: int = 100
) -> list[StalledOutcome]:
    """Finish checkouts whose client vanished (SPEC 5.6), or cancel their authorization.

    Two bounded scans on indexed columns find them: authorizations whose outcome nobody
    knows (their operation `requested` by a dead process, or `unknown`), and live payments
    of carts that never completed. The worker only ever resumes what the customer started:
    an authorization asked for a session revision the cart has since left is superseded
    (the provider released it with the amount change), never asked anew. Each cart is
    completed through cart_complete, under the key its client used when there is one; a
    cart that can no longer be completed has its authorization canceled there.
    """
    cutoff = timezone.now() - older_than
    unknown = (
        PaymentOperation.objects.filter(
            type=OperationType.AUTHORIZE,
            status__in=PaymentOperation.UNRESOLVED,
            created_at__lt=cutoff,
        )
        .filter(lease_free())
        .order_by("created_at")[:limit]
    )
    cart_ids = []
    for operation in unknown:
        session = PaymentSession.objects.filter(pk=operation.session_id).first()
        if session is None or operation.params.get("revision") != session.revision:
            superseded = ProviderError(
                ProviderErrorKind.OTHER, "Superseded: the cart changed after this was asked."
            )
            operation_settle(operation, superseded, actor=SYSTEM)
        else:
            cart_ids.append(operation.cart_id)
    cart_ids += (
        Payment.objects.filter(
            canceled_at__isnull=True,
            order__isnull=True,
            swap__isnull=True,
            created_at__lt=cutoff,
            cart__completed_at__isnull=True,
        )
        .order_by("created_at")
        .values_list("cart_id", flat=True)[:limit]
    )
    carts = Cart.objects.filter(pk__in=set(cart_ids), completed_at__isnull=True)
    return [checkout_finish(cart=cart, render=render) for cart in carts.order_by("created_at")]


def checkout_finish(*, cart: Cart, render: CompletionRenderer) -> StalledOutcome:
    """Complete one vanished client's cart, resuming what it started, under the key the
    client used (or the system's own, when the client bound its key to another body)."""
    path = f"/api/store/carts/{cart.id}/complete"
    requests = [
        IdempotentRequest("store", cart.idempotency_key, "POST", path, fingerprint(b"")),
        IdempotentRequest("system", f"complete:{cart.id}", "POST", path, fingerprint(b"")),
    ]
    for request in requests if cart.idempotency_key else requests[1:]:
        try:
            outcome = cart_complete(
                cart_id=cart.id, request=request, render=render, actor=SYSTEM, resume_only=True
            )
            result = "completed" if isinstance(outcome, Finished) else "requires_more"
        except errors.IdempotencyKeyMismatch:
            continue
        except errors.InvalidState:
            result = "canceled"
        except errors.DomainError as error:
            result = f"left: {error.code}"
        return StalledOutcome(cart_id=cart.id, key=request.key, result=result)
    return StalledOutcome(cart_id=cart.id, key="", result="left: idempotency_key_mismatch")
