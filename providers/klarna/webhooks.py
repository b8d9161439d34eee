"""Klarna's notifications: unsigned, so they are only a hint naming an order to re-read.

Klarna posts `{"order_id": "…", "event_type": "FRAUD_RISK_ACCEPTED"}` (or
`FRAUD_RISK_REJECTED`, `FRAUD_RISK_STOPPED`) to the order's notification URL. Nothing in it
can be checked, so nothing in it is believed: processing re-reads the order at Klarna with
our credentials, and a forged notification can at most make us read an order again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping

from providers.base import ProviderError, ProviderErrorKind, VerifiedEvent

# Klarna's order ids are UUIDs, and processing puts this one in a URL path to re-read it:
# nothing but UUID-like text passes. Event types are upper-case words.
ORDER_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
EVENT_TYPE = re.compile(r"[A-Z0-9_]{1,64}")


def parse_notification(*, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
    """The notification as an event, or INVALID (400) for a body not of its shape.

    Klarna sends no event id. Ours is derived from the order, the event type and the body,
    so a redelivery of one notification is one event, and a later one about the same
    order (accepted after pending) is another.
    """
    try:
        # Decoded first: the event is stored as text, and json.loads would take UTF-16 too.
        payload = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as error:
        raise ProviderError(ProviderErrorKind.INVALID, "The body is not UTF-8 JSON.") from error
    if not isinstance(payload, dict):
        raise ProviderError(ProviderErrorKind.INVALID, "The notification is not an object.")
    order_id, event_type = payload.get("order_id"), payload.get("event_type")
    if not (isinstance(order_id, str) and ORDER_ID.fullmatch(order_id)):
        raise ProviderError(ProviderErrorKind.INVALID, "The notification names no order_id.")
    if not (isinstance(event_type, str) and EVENT_TYPE.fullmatch(event_type)):
        raise ProviderError(ProviderErrorKind.INVALID, "The notification has no event_type.")
    digest = hashlib.sha256(body).hexdigest()[:16]
    return VerifiedEvent(
        event_id=f"{order_id}:{event_type}:{digest}", type=event_type, payload=payload
    )
