"""Receiving provider webhooks, and moving our payments toward what the provider holds.

An event is verified and stored raw, due at once for the worker, and answered: nothing is
processed inside the provider's delivery. Its meaning is never taken from the event
itself: the provider re-reads the remote payment (`webhook_state`), and our rows only ever
move forward toward that snapshot, so late or out-of-order events change nothing.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from payments import errors
from payments.metrics import webhook_processed
from payments.models import (
    OperationType,
    Payment,
    PaymentEvent,
    PaymentOperation,
    Refund,
    WebhookEvent,
)
from payments.services import WEBHOOK, payment_changed, payment_lock
from payments.services.calls import ensure_outside_transaction, event_record, installed_provider
from payments.services.operations import operation_refresh
from providers.base import ProviderError, RemotePaymentState, SessionStatus, VerifiedEvent


def webhook_verify(*, provider_id: str, headers: dict[str, str], body: bytes) -> VerifiedEvent:
    """Check the event with its provider, outside any transaction (PayPal verifies by
    asking PayPal). Raises NotFound for a provider that is not installed, InvalidData
    (400) for a bad or missing signature or a body that is not the provider's event, and
    ProviderUnavailable (503) when the provider could not say."""
    ensure_outside_transaction()
    try:
        provider = installed_provider(provider_id)
    except errors.ProviderNotAvailable:
        raise errors.NotFound("No such payment provider.") from None
    try:
        return provider.verify_webhook(headers=headers, body=body)
    except ProviderError as error:
        if error.outcome_unknown:
            raise errors.ProviderUnavailable(
                f"The event could not be verified now: {error.message}"
            ) from error
        raise errors.InvalidData(f"Webhook refused: {error.message}") from error


def webhook_store(*, provider_id: str, event: VerifiedEvent, body: bytes) -> WebhookEvent:
    """Store a verified event once per provider event id, due for the worker now; the
    caller queues it when this commits (a lost message is found by the worker's sweep)."""
    record, _ = WebhookEvent.objects.get_or_create(
        provider_id=provider_id,
        event_id=event.event_id,
        defaults={"type": event.type, "body": body.decode(), "next_attempt_at": timezone.now()},
    )
    return record


def webhook_remote_state(record: WebhookEvent) -> RemotePaymentState | None:
    """Ask the provider what the payment behind this event looks like now."""
    ensure_outside_transaction()
    payload = json.loads(record.body)
    event = VerifiedEvent(event_id=record.event_id, type=record.type, payload=payload)
    try:
        state = installed_provider(record.provider_id).webhook_state(event)
    except ProviderError as error:
        raise errors.ProviderUnavailable(
            f"Could not re-read the payment: {error.message}"
        ) from error
    if state is not None:
        event_record(
            type=PaymentEvent.Type.WEBHOOK,
            provider_id=record.provider_id,
            actor=WEBHOOK,
            success=True,
            session_id=state.session_id,
            cart_id=state.cart_id,
            provider_reference=record.event_id,
            error=record.type,
        )
    return state


def webhook_retry_delay(attempts: int) -> timedelta | None:
    """Exponential backoff after `attempts` failures; None once WEBHOOK_MAX_ATTEMPTS is
    spent (the event stays failed and visible to operators, who may process it again)."""
    if attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        return None
    return timedelta(seconds=settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempts - 1))


def webhook_mark(record: WebhookEvent, *, error: str = "") -> None:
    """Record the outcome of one processing attempt, for operators and the worker."""
    if not error:
        WebhookEvent.objects.filter(pk=record.pk).update(
            attempts=F("attempts") + 1,
            status=WebhookEvent.Status.PROCESSED,
            last_error="",
            processed_at=timezone.now(),
            next_attempt_at=None,
        )
        webhook_processed(record.provider_id, record.received_at)
        return
    attempts = (
        WebhookEvent.objects.filter(pk=record.pk).values_list("attempts", flat=True).get() + 1
    )
    delay = webhook_retry_delay(attempts)
    WebhookEvent.objects.filter(pk=record.pk).update(
        attempts=attempts,
        status=WebhookEvent.Status.FAILED,
        last_error=error,
        processed_at=None,
        next_attempt_at=timezone.now() + delay if delay is not None else None,
    )


def webhooks_due(*, limit: int = 100) -> list[str]:
    """Events received or failed whose (next) attempt is due: the worker's sweep."""
    return list(
        WebhookEvent.objects.filter(
            status__in=[WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED],
            next_attempt_at__lte=timezone.now(),
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def payment_sync_remote(*, provider_id: str, state: RemotePaymentState) -> Payment | None:
    """Record captures, refunds and cancels made at the provider (its dashboard, say).

    Only forward moves are applied, each with its PaymentEvent, under the payment's lock:
    a capture we do not know yet, refunds whose provider reference we have not seen, a
    cancel of an uncaptured payment.
    """
    payment = (
        Payment.objects.filter(session_id=state.session_id, provider_id=provider_id)
        .order_by(F("canceled_at").desc(nulls_first=True), "-created_at")
        .first()
    )
    if payment is None:
        return None
    # Operations the provider took and settles later: the event may be their settling.
    pending = PaymentOperation.objects.filter(
        payment=payment, status=PaymentOperation.Status.PENDING
    )
    for operation_id in pending.values_list("pk", flat=True):
        operation_refresh(operation_id=operation_id, actor=WEBHOOK)
    now = timezone.now()
    with transaction.atomic():
        payment = payment_lock(payment.pk)
        before = copy.copy(payment)
        # A capture or cancel we asked for settles through our own flow, as do our refunds.
        settled_here = not PaymentOperation.objects.filter(
            payment=payment,
            type__in=[OperationType.CAPTURE, OperationType.CANCEL],
            status__in=PaymentOperation.OPEN,
        ).exists()
        if (
            settled_here
            and state.amount_captured
            and payment.captured_at is None
            and payment.canceled_at is None
        ):
            payment.amount_captured = min(state.amount_captured, payment.amount)
            payment.captured_at = now
            event_record(
                type=PaymentEvent.Type.CAPTURE,
                provider_id=provider_id,
                actor=WEBHOOK,
                success=True,
                payment=payment,
                amount=payment.amount_captured,
                provider_reference=state.provider_reference,
            )
        ours = list(payment.refunds.values_list("id", "provider_reference"))
        known = {reference for _, reference in ours} | {refund_id for refund_id, _ in ours}
        known.discard("")  # a pending refund has no provider reference yet
        for refund in state.refunds:
            room = payment.amount_captured - payment.amount_refunded
            # Refunds we asked for settle through our own refund flow, pending or not.
            mine = refund.provider_reference in known or refund.idempotency_key in known
            if mine or not 0 < refund.amount <= room:
                continue
            Refund.objects.create(
                payment=payment,
                order_id=payment.order_id,
                amount=refund.amount,
                reason=Refund.Reason.OTHER,
                note="Refunded at the provider.",
                provider_reference=refund.provider_reference,
            )
            payment.amount_refunded += refund.amount
            event_record(
                type=PaymentEvent.Type.REFUND,
                provider_id=provider_id,
                actor=WEBHOOK,
                success=True,
                payment=payment,
                amount=refund.amount,
                provider_reference=refund.provider_reference,
            )
        if (
            settled_here
            and state.status is SessionStatus.CANCELED
            and payment.canceled_at is None
            and payment.captured_at is None
        ):
            payment.canceled_at = now
            event_record(
                type=PaymentEvent.Type.CANCEL,
                provider_id=provider_id,
                actor=WEBHOOK,
                success=True,
                payment=payment,
                amount=payment.amount,
                provider_reference=state.provider_reference,
            )
        if state.data and {**payment.data, **state.data} != payment.data:
            # The provider's view of the payment moved on (a fraud review decided, say).
            payment.data = {**payment.data, **state.data}
            payment.save(update_fields=["data"])
        fields = ["amount_captured", "captured_at", "amount_refunded", "canceled_at"]
        if any(getattr(payment, name) != getattr(before, name) for name in fields):
            payment.save(update_fields=fields)
            # Whatever follows the payment (its order's status) moves with it.
            payment_changed.send(sender=Payment, payment=payment, operation="webhook", success=True)
    return payment
