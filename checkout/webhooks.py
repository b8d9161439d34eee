"""Processing a stored webhook, in the worker: once per event id, through the same
machinery as checkout.

The event id is an Idempotency-Key (scope `webhook:<provider>`): a second processing
replays "processed", a concurrent one is refused with 409 (the worker tries later), and a
failure frees the key and marks the event failed with its next attempt (exponential
backoff), so the worker or an operator's reprocess runs it again.
"""

from __future__ import annotations

from django.db import transaction

from checkout.completion import CompletionRenderer, cart_complete
from checkout.models import Cart
from payments.idempotency import (
    IdempotentRequest,
    Replay,
    fingerprint,
    idempotency_key_begin,
    idempotency_key_finish,
    idempotency_key_release,
)
from payments.models import PaymentSession, WebhookEvent
from payments.services import WEBHOOK
from payments.webhooks import payment_sync_remote, webhook_mark, webhook_remote_state
from providers.base import RemotePaymentState, SessionStatus


def webhook_process(*, record: WebhookEvent, render: CompletionRenderer) -> bool:
    """Apply the event; returns False when it had been processed already.

    Raises IdempotencyKeyInUse while another delivery of the same event is being processed,
    and re-raises whatever made processing fail (the event is marked failed first).
    """
    path = f"/api/hooks/{record.provider_id}"
    request = IdempotentRequest(
        scope=f"webhook:{record.provider_id}",
        key=record.event_id,
        method="POST",
        path=path,
        fingerprint=fingerprint(record.body.encode()),
    )
    taken = idempotency_key_begin(request)
    if isinstance(taken, Replay):
        return False
    try:
        state = webhook_remote_state(record)
        if state is not None:
            _apply(record.provider_id, state, render)
    except BaseException as error:
        idempotency_key_release(taken)
        webhook_mark(record, error=f"{type(error).__name__}: {error}")
        raise
    with transaction.atomic():
        idempotency_key_finish(taken, status=200, body=b'{"processed":true}')
    webhook_mark(record)
    return True


def _apply(provider_id: str, state: RemotePaymentState, render: CompletionRenderer) -> None:
    if state.status is SessionStatus.AUTHORIZED or state.customer_approved:
        _complete_abandoned_cart(state, render)
    elif state.status is SessionStatus.ERROR:
        PaymentSession.objects.filter(
            pk=state.session_id,
            cart__completed_at__isnull=True,
            status__in=[SessionStatus.PENDING, SessionStatus.REQUIRES_MORE],
        ).update(status=SessionStatus.ERROR)
    payment_sync_remote(provider_id=provider_id, state=state)


def _complete_abandoned_cart(state: RemotePaymentState, render: CompletionRenderer) -> None:
    """The customer authorized but their client may never call complete: complete it here,
    through the same path (a racing client gets 409 or the same order; so do we)."""
    cart = Cart.objects.filter(pk=state.cart_id, completed_at__isnull=True).first()
    selected = PaymentSession.objects.filter(
        pk=state.session_id, cart_id=state.cart_id, is_selected=True
    ).exists()
    if cart is None or not selected:
        return
    request = IdempotentRequest(
        scope="webhook",
        key=f"complete:{cart.id}",
        method="POST",
        path=f"/api/store/carts/{cart.id}/complete",
        fingerprint=fingerprint(b""),
    )
    cart_complete(cart_id=cart.id, request=request, render=render, actor=WEBHOOK)
