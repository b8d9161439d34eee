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
from django.dispatch import Signal
from django.utils import timezone

from checkout.models import Cart, Order, Swap
from checkout.orders import order_payment_status
from checkout.services import cart_get, cart_lock
from checkout.swaps import swap_attach_payment, swap_of_cart
from payments import errors
from payments.idempotency import (
    IdempotentRequest,
    Lease,
    RecoveryPoint,
    Replay,
    idempotency_key_advance,
    idempotency_key_begin,
    idempotency_key_finish,
    idempotency_key_release,
    idempotency_resource_busy,
)
from payments.models import IdempotencyKey, Payment, PaymentEvent, PaymentSession
from payments.services import (
    STOREFRONT,
    SYSTEM,
    Actor,
    payment_cancel,
    payment_create_from_authorization,
    payment_lock,
    payment_session_authorize,
    payment_session_cancel,
    payment_session_delete,
    payment_session_update_amount,
)
from providers.base import ProviderError, SessionStatus

logger = logging.getLogger(__name__)

# Sent after each recovery point commits, with `point` and `cart_id`: lets tests stop a
# request exactly between two steps, as a crashing worker would.
recovery_point_committed = Signal()

# Renders a completed cart's final answer (its order, or its swap), stored with the key.
CompletionRenderer = Callable[[Cart], bytes]


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
) -> Finished | NeedsCustomer:
    """Turn the cart into an order exactly once, whatever the network does.

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
        if cart.completed_at is None and idempotency_resource_busy(
            cart.id, exclude_key_id=taken.key_id
        ):
            # Rolls back our own lease with it: the other key's request goes on alone.
            raise errors.CartCompletionInProgress("Another request is completing this cart.")
        if cart.idempotency_key != request.key:
            Cart.objects.filter(pk=cart.pk).update(idempotency_key=request.key)
    if cart.completed_at is not None:
        # Completed already, by another key or a webhook: answer with its order.
        return _finish(cart_id, taken, render)
    try:
        return _complete_leased(
            cart_id, taken, render, actor, authorized=cart.payment_authorized_at is not None
        )
    except BaseException:
        idempotency_key_release(taken)
        raise


def _complete_leased(
    cart_id: str, lease: Lease, render: CompletionRenderer, actor: Actor, *, authorized: bool
) -> Finished | NeedsCustomer:
    # The cart's payment_authorized_at is set in the transaction that creates its payment.
    payment = None
    if authorized:
        payment = Payment.objects.filter(cart_id=cart_id, canceled_at__isnull=True).first()
    if payment is None:
        outcome = _authorize(cart_id, lease, actor)
        if isinstance(outcome, NeedsCustomer):
            idempotency_key_release(lease)
            return outcome
        payment = outcome
    try:
        return _finish(cart_id, lease, render, payment)
    except (_CartChanged, errors.InvalidState):
        # Only a change behind the services' back gets here (they refuse changes once a
        # payment is authorized); its authorization must not be left behind.
        payment_cancel(payment_id=payment.id, actor=actor)
        Cart.objects.filter(pk=cart_id).update(payment_authorized_at=None)
        raise errors.InvalidState(
            "The cart, or its swap, changed after its payment was authorized; the "
            "authorization was canceled."
        ) from None


def _authorize(cart_id: str, lease: Lease, actor: Actor) -> Payment | NeedsCustomer:
    cart = cart_get(cart_id)
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
    if session.amount != cart.total:
        # SPEC 5.5: a session authorized for another amount is re-authorized first.
        session = payment_session_update_amount(
            session=session, amount=cart.total, email=cart.email, actor=actor
        )
    try:
        authorization = payment_session_authorize(session=session, email=cart.email, actor=actor)
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
    if authorization.amount != cart.total:
        payment_session_delete(session=session, actor=actor)
        raise errors.PaymentAuthorizationFailed(
            "The provider authorized another amount than the total."
        )
    with transaction.atomic():
        # This UPDATE is the cart's lock, taken first as everywhere.
        Cart.objects.filter(pk=cart_id).update(payment_authorized_at=timezone.now())
        idempotency_key_advance(lease, RecoveryPoint.PAYMENT_AUTHORIZED)
        payment = payment_create_from_authorization(session=session, authorization=authorization)
    recovery_point_committed.send(
        sender=cart_complete, point=RecoveryPoint.PAYMENT_AUTHORIZED, cart_id=cart_id
    )
    return payment


class _CartChanged(Exception):
    """The cart no longer matches its authorized payment."""


def _finish(
    cart_id: str, lease: Lease, render: CompletionRenderer, payment: Payment | None = None
) -> Finished:
    with transaction.atomic():
        cart = cart_lock(cart_id)
        if cart.completed_at is None:
            items = list(cart.items.all())
            total = sum(item.total for item in items)
            if payment is None or not items or payment.amount != total:
                raise _CartChanged
            # Re-read under its lock: an operator may have canceled or captured it since.
            payment = payment_lock(payment.pk)
            if payment.canceled_at is not None:
                raise _CartChanged
            if cart.type == Cart.Type.SWAP:
                # A swap's cart pays the swap: no order of its own.
                swap_attach_payment(cart=cart, payment=payment)
                _cart_completed(cart)
            else:
                _order_create(cart, payment, total)
        body = render(cart)
        idempotency_key_finish(lease, status=200, body=body)
    recovery_point_committed.send(
        sender=cart_complete, point=RecoveryPoint.FINISHED, cart_id=cart_id
    )
    _release_unselected_sessions(cart_id)
    return Finished(200, body)


def _cart_completed(cart: Cart) -> None:
    cart.completed_at = timezone.now()
    Cart.objects.filter(pk=cart.pk).update(completed_at=cart.completed_at)


def _order_create(cart: Cart, payment: Payment, total: int) -> Order:
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
    return order


def _release_unselected_sessions(cart_id: str) -> None:
    """Sessions the customer did not pay with are released at their providers."""
    for session in PaymentSession.objects.filter(cart_id=cart_id, is_selected=False).exclude(
        status=SessionStatus.CANCELED
    ):
        try:
            payment_session_cancel(session=session, actor=STOREFRONT)
        except (ProviderError, errors.DomainError):
            logger.warning(
                "Could not release session %s after completion", session.id, exc_info=True
            )


@dataclass(frozen=True)
class StalledOutcome:
    cart_id: str
    key: str
    result: str


def checkout_complete_stalled(
    *, older_than: timedelta, render: CompletionRenderer
) -> list[StalledOutcome]:
    """Finish checkouts whose client vanished (SPEC 5.6), or cancel their authorization.

    A key that never finished is resumed, with its own binding, when its cart holds a live
    Payment or its last authorization's answer was lost; a cart that can no longer be
    completed has its authorization canceled by cart_complete. Nothing authorized is left
    without an order or a cancel.
    """
    created_before = timezone.now() - older_than
    keys = IdempotencyKey.objects.filter(
        finished_at__isnull=True, resource_id__startswith="cart_", created_at__lt=created_before
    ).order_by("created_at")
    outcomes = []
    for key in keys:
        cart = Cart.objects.filter(pk=key.resource_id, completed_at__isnull=True).first()
        if cart is None or not _authorization_pending(cart.id):
            continue
        request = IdempotentRequest(
            scope=key.scope,
            key=key.key,
            method=key.request_method,
            path=key.request_path,
            fingerprint=key.request_fingerprint,
        )
        try:
            outcome = cart_complete(cart_id=cart.id, request=request, render=render, actor=SYSTEM)
            result = "completed" if isinstance(outcome, Finished) else "requires_more"
        except errors.InvalidState:
            result = "canceled"
        except errors.DomainError as error:
            result = f"left: {error.code}"
        outcomes.append(StalledOutcome(cart_id=cart.id, key=key.key, result=result))
    return outcomes


def _authorization_pending(cart_id: str) -> bool:
    """A live Payment, or an authorization whose answer was lost (it may have succeeded)."""
    if Payment.objects.filter(cart_id=cart_id, canceled_at__isnull=True).exists():
        return True
    last = (
        PaymentEvent.objects.filter(cart_id=cart_id, type=PaymentEvent.Type.AUTHORIZE)
        .order_by("-created_at", "-id")
        .first()
    )
    # A success counts too: the worker may have died before its Payment was stored.
    return last is not None and (last.success or last.error.startswith("unavailable"))
