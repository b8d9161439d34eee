"""Stripe webhooks: the `Stripe-Signature` check (SDK's own), then the event as plain data."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import stripe
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from providers.base import ProviderError, ProviderErrorKind, VerifiedEvent

# SPEC section 7: a signature more than 5 minutes old (Stripe's own default) or more than 5
# minutes ahead is refused, so a captured request cannot be replayed later. The SDK checks
# only the past.
TOLERANCE_SECONDS = 300


def verify_signed_event(*, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
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
        if _signed_at(signature) > time.time() + TOLERANCE_SECONDS:
            raise ProviderError(ProviderErrorKind.INVALID, "The signature's time is ahead.")
        payload = json.loads(body)
    except stripe.SignatureVerificationError as error:
        raise ProviderError(
            ProviderErrorKind.INVALID, error.user_message or "Bad signature."
        ) from error
    except (ValueError, RecursionError) as error:  # not UTF-8, not JSON, nested too deep
        raise ProviderError(ProviderErrorKind.INVALID, "The body is not UTF-8 JSON.") from error
    data = payload.get("data") if isinstance(payload, dict) else None
    if not (
        isinstance(payload, dict)
        and isinstance(payload.get("id"), str)
        and isinstance(payload.get("type"), str)
    ):
        raise ProviderError(ProviderErrorKind.INVALID, "The event has no id or type.")
    # Stripe's event shape: what we read later (data.object) must be there as an object.
    if not (isinstance(data, dict) and isinstance(data.get("object"), dict)):
        raise ProviderError(ProviderErrorKind.INVALID, "The event has no data object.")
    return VerifiedEvent(event_id=payload["id"], type=payload["type"], payload=payload)


def _signed_at(signature: str | None) -> int:
    """The `t=` of a header verify_header accepted (so it is there and is an integer)."""
    for item in (signature or "").split(","):
        name, _, value = item.partition("=")
        if name == "t":
            return int(value)
    raise ProviderError(ProviderErrorKind.INVALID, "The signature has no time.")
