"""The order page's timeline, in an operator's words and the site's time zone."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from payments.models import PaymentOperation
from payments.money import format_money

OPERATION_WORDS = {
    "initiate": "Payment session opened",
    "update": "Payment session updated",
    "authorize": "Payment authorized",
    "capture": "Captured",
    "refund": "Refunded",
    "cancel": "Authorization canceled",
    "release": "Unused payment session released",
}
STATUS_WORDS = {
    "requested": "Sent; waiting for the provider's answer",
    "pending": "Accepted by the provider; it settles later",
    "succeeded": "Done",
    "failed": "Refused by the provider",
    "unknown": "Answer lost; the worker asks the provider again",
}
ACTOR_WORDS = {"storefront": "Customer", "system": "Worker", "webhook": "Provider notice"}


def when(moment: Any) -> str:
    """A moment in the site's time zone, which it names (UTC unless TIME_ZONE says)."""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


def operation_in_words(operation: PaymentOperation, currency_code: str) -> dict[str, str]:
    """One timeline line as an operator reads it, not as the code names it."""
    return {
        "when": when(operation.created_at),
        "who": ACTOR_WORDS.get(operation.actor, operation.actor),
        "what": OPERATION_WORDS.get(operation.type, operation.type),
        "provider": operation.provider_id,
        "amount": format_money(operation.amount, currency_code) if operation.amount else "",
        "status": operation.status,
        "result": STATUS_WORDS.get(operation.status, operation.status),
        "error": operation.error if operation.status == "failed" else "",
        "reference": operation.provider_reference,
    }


def release_in_words(
    operation: PaymentOperation, authorized: int, currency_code: str
) -> dict[str, str] | None:
    """The line a partial capture adds: what it gave back of the authorization."""
    if operation.type != "capture" or operation.status != "succeeded" or operation.amount is None:
        return None
    released = authorized - operation.amount
    if released <= 0:
        return None
    line = operation_in_words(operation, currency_code)
    return {
        **line,
        "when": when(operation.settled_at or operation.created_at),
        "what": "Rest of the authorization released",
        "amount": format_money(released, currency_code),
        "result": "Done (a payment is captured once)",
        "reference": "",
    }


def timeline(
    operations: list[PaymentOperation], authorized: dict[str, int], currency_code: str
) -> list[dict[str, str]]:
    """Every operation in words, oldest first, with a partial capture's release after it.
    `authorized` maps a payment id to what it authorized."""
    lines = []
    for operation in operations:
        lines.append(operation_in_words(operation, currency_code))
        if operation.payment_id in authorized:
            release = release_in_words(operation, authorized[operation.payment_id], currency_code)
            if release:
                lines.append(release)
    return lines
