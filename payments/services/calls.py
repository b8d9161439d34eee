"""The two rules every provider call keeps: never inside an open transaction, and always
leaving a PaymentEvent, success or failure, with the provider's own answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import connection

from payments import errors
from payments.models import Payment, PaymentEvent, PaymentOperation
from payments.services.actors import Actor
from providers.base import PaymentProviderBase, ProviderAnswer, ProviderError
from providers.registry import ProviderNotConfigured, get_provider


def ensure_outside_transaction() -> None:
    """Refuse a provider call inside a transaction (the test suite's own wrapper excepted):
    it is network I/O and would hold row locks for its duration."""
    if any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks):
        raise RuntimeError("A provider call must not run inside an open database transaction.")


def installed_provider(provider_id: str) -> PaymentProviderBase:
    try:
        return get_provider(provider_id)
    except ProviderNotConfigured:
        raise errors.ProviderNotAvailable(f"Provider {provider_id!r} is not installed.") from None


def answer_of(outcome: ProviderAnswer | ProviderError | None) -> tuple[Mapping[str, Any], str]:
    """The provider's raw answer and request id, from a result or an error."""
    if outcome is None:
        return {}, ""
    return outcome.raw, outcome.request_id


def event_record(
    *,
    type: str,
    provider_id: str,
    actor: Actor,
    success: bool,
    payment: Payment | None = None,
    operation: PaymentOperation | None = None,
    session_id: str = "",
    cart_id: str = "",
    amount: int | None = None,
    provider_reference: str = "",
    idempotency_key: str = "",
    error: str = "",
    answer: ProviderAnswer | ProviderError | None = None,
) -> PaymentEvent:
    raw, request_id = answer_of(answer)
    return PaymentEvent.objects.create(
        type=type,
        provider_id=provider_id,
        payment=payment,
        operation=operation,
        session_id=session_id or (payment.session_id or "" if payment else ""),
        cart_id=cart_id or (payment.cart_id if payment else ""),
        amount=amount,
        success=success,
        provider_reference=provider_reference[:255],
        idempotency_key=idempotency_key,
        error=error,
        raw=dict(raw),
        request_id=request_id[:255],
        actor=actor.label,
        actor_user=actor.user,
    )


def error_text(error: ProviderError) -> str:
    return f"{error.kind.value}: {error.message}"
