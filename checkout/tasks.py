"""Checkout's background jobs: webhooks, vanished clients' carts, session releases."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from checkout.api.serializers import render_completion
from checkout.completion import cart_release_unselected_sessions, checkout_complete_stalled
from checkout.webhooks import webhook_process as webhook_process_service
from payments import errors
from payments.models import PaymentSession, WebhookEvent
from payments.webhooks import webhooks_due

logger = logging.getLogger(__name__)


@shared_task
def webhook_process(webhook_id: str) -> bool:
    """Process one stored event; a failure is marked with its next attempt, not raised
    again (the sweep retries it with backoff, so Celery's own retry is not needed)."""
    record = WebhookEvent.objects.filter(pk=webhook_id).first()
    if record is None or record.status == WebhookEvent.Status.PROCESSED:
        return False
    try:
        return webhook_process_service(record=record, render=render_completion)
    except errors.IdempotencyKeyInUse:
        return False  # another worker is processing it
    except Exception:
        return False  # marked failed, with its next attempt


@shared_task
def webhooks_process_due() -> int:
    due = webhooks_due()
    for webhook_id in due:
        webhook_process(webhook_id)
    return len(due)


@shared_task
def checkouts_finish_stalled() -> int:
    outcomes = checkout_complete_stalled(
        older_than=timedelta(seconds=settings.CHECKOUT_STALLED_AFTER_SECONDS),
        render=render_completion,
    )
    return len(outcomes)


@shared_task
def cart_sessions_release(cart_id: str) -> int:
    released = cart_release_unselected_sessions(cart_id=cart_id)
    # Under the checkout's request id: where the customer's request ends, this goes on.
    logger.info("Released %d unselected sessions of cart %s", released, cart_id)
    return released


@shared_task
def sessions_release_due() -> int:
    """Completed carts whose unselected sessions still hold something at their provider."""
    carts = (
        PaymentSession.objects.filter(is_selected=False, cart__completed_at__isnull=False)
        .exclude(status=PaymentSession.Status.CANCELED)
        .order_by("cart_id")
        .values_list("cart_id", flat=True)
        .distinct()[:100]
    )
    released = 0
    for cart_id in list(carts):
        try:
            released += cart_release_unselected_sessions(cart_id=cart_id)
        except errors.DomainError:
            # One cart's trouble (its provider uninstalled, say) does not stop the others.
            logger.warning("Could not release the sessions of %s", cart_id, exc_info=True)
    return released
