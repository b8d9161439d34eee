"""Stripe webhooks: the `Stripe-Signature` check (SDK's own), then the event as plain data."""

from __future__ import annotations

import json
from collections.abc import Mapping

import stripe
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from providers.base import ProviderError, ProviderErrorKind, WebhookEvent

# SPEC section 7: a signature older than 5 minutes is refused (Stripe's own default), so a
# captured request cannot be replayed later.
TOLERANCE_SECONDS = 300


def verify_signed_event(*, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
    """The event in `body` if Stripe signed it with STRIPE_WEBHOOK_SECRET; INVALID otherwise."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        # Not a bad request: without a secret every event would be refused, so fail loudly.
        raise ImproperlyConfigured("STRIPE_WEBHOOK_SECRET is empty: Stripe webhooks cannot run.")
    signature = next(
        (value for name, value in headers.items() if name.lower() == "stripe-signature"), None
    )
    try:
        stripe.WebhookSignature.verify_header(body, signature, secret, TOLERANCE_SECONDS)
        payload = json.loads(body)
    except stripe.SignatureVerificationError as error:
        raise ProviderError(
            ProviderErrorKind.INVALID, error.user_message or "Bad signature."
        ) from error
    except ValueError as error:  # not UTF-8, or not JSON
        raise ProviderError(ProviderErrorKind.INVALID, "The body is not UTF-8 JSON.") from error
    if not (
        isinstance(payload, dict)
        and isinstance(payload.get("id"), str)
        and isinstance(payload.get("type"), str)
    ):
        raise ProviderError(ProviderErrorKind.INVALID, "The event has no id or type.")
    return WebhookEvent(event_id=payload["id"], type=payload["type"], payload=payload)
