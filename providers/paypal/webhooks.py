"""PayPal webhooks: the signature check PayPal itself performs, and what an event is about.

PayPal signs a delivery with its certificate over the transmission id and time, our webhook
id and a CRC32 of the body; `POST /v1/notifications/verify-webhook-signature` checks that
for us with the PAYPAL-* headers and PAYPAL_WEBHOOK_ID. The event itself is only a hint of
which object to re-read: its body is never taken for the object's state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from providers.base import ProviderError, ProviderErrorKind, VerifiedEvent
from providers.paypal.client import PayPalClient

# The verification request's fields, and the delivery headers they come from.
SIGNATURE_HEADERS = {
    "auth_algo": "paypal-auth-algo",
    "cert_url": "paypal-cert-url",
    "transmission_id": "paypal-transmission-id",
    "transmission_sig": "paypal-transmission-sig",
    "transmission_time": "paypal-transmission-time",
}
# The longest header we pass on: PayPal's are far shorter (a signature is ~350 bytes).
MAX_HEADER_LENGTH = 2000


def verify_event(client: PayPalClient, *, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
    """The event in `body` if PayPal says it signed it for PAYPAL_WEBHOOK_ID; INVALID if
    the headers are missing, the body is not an event, or PayPal says the signature is bad.
    UNAVAILABLE when PayPal cannot be asked."""
    webhook_id = getattr(settings, "PAYPAL_WEBHOOK_ID", "")
    if not webhook_id:
        # Not a bad request: without the id every event would be refused, so fail loudly.
        raise ImproperlyConfigured("PAYPAL_WEBHOOK_ID is empty: PayPal webhooks cannot run.")
    lowered = {name.lower(): value for name, value in headers.items()}
    fields = {name: lowered.get(header, "") for name, header in SIGNATURE_HEADERS.items()}
    missing = sorted(header for name, header in SIGNATURE_HEADERS.items() if not fields[name])
    if missing:
        raise ProviderError(ProviderErrorKind.INVALID, f"Missing {', '.join(missing)}.")
    if any(len(value) > MAX_HEADER_LENGTH for value in fields.values()):
        raise ProviderError(ProviderErrorKind.INVALID, "A signature header is too long.")
    payload = _event_of(body)
    # The event goes to PayPal as the exact bytes it sent (the CRC32 it signed covers them),
    # spliced into the request rather than parsed and serialized again.
    head = json.dumps({**fields, "webhook_id": webhook_id})
    content = head[:-1].encode() + b',"webhook_event":' + body.strip() + b"}"
    answer = client.post_raw("/v1/notifications/verify-webhook-signature", content)
    if answer.body.get("verification_status") != "SUCCESS":
        raise ProviderError(ProviderErrorKind.INVALID, "PayPal did not verify the signature.")
    return VerifiedEvent(event_id=payload["id"], type=payload["event_type"], payload=payload)


def _event_of(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise ProviderError(ProviderErrorKind.INVALID, "The body is not UTF-8 JSON.") from error
    if not (
        isinstance(payload, dict)
        and isinstance(payload.get("id"), str)
        and isinstance(payload.get("event_type"), str)
        and isinstance(payload.get("resource"), dict)
    ):
        raise ProviderError(
            ProviderErrorKind.INVALID, "Not a PayPal event (id, event_type, resource)."
        )
    return payload


def subject_of(event: VerifiedEvent) -> tuple[str, str] | None:
    """Which PayPal object the event is about, to be re-read: (kind, id), or None for an
    event we do not act on. A refund or reversal names the refund; PayPal marks that with
    `resource_type`, which we follow when present."""
    resource = event.payload.get("resource", {})
    object_id = resource.get("id") if isinstance(resource, dict) else None
    if not isinstance(object_id, str) or not object_id:
        return None
    kind = str(event.payload.get("resource_type", "")).lower()
    if event.type.startswith("CHECKOUT.ORDER."):
        return "order", object_id
    if event.type.startswith("PAYMENT.AUTHORIZATION."):
        return "authorization", object_id
    if event.type in ("PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED"):
        return ("capture" if kind == "capture" else "refund"), object_id
    if event.type.startswith("PAYMENT.CAPTURE."):
        return "capture", object_id
    return None
