"""The `stripe` provider: one PaymentIntent per session, with `capture_method=manual`.

The customer confirms the intent in the browser (Stripe.js, with the session's client secret,
including any 3-D Secure step); authorize then reads where that left the intent. Capture,
refund and cancel carry the caller's idempotency key to Stripe, so a call repeated after a
lost answer takes effect once.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import stripe
from stripe.params import RefundCreateParams

from providers.base import (
    AuthorizationResult,
    NextAction,
    OperationInput,
    OperationResult,
    OperationStatus,
    PaymentInput,
    PaymentProviderBase,
    ProviderError,
    ProviderErrorKind,
    ProviderReference,
    RefundReason,
    RemotePaymentState,
    RemoteRefund,
    SessionInput,
    SessionResult,
    SessionStatus,
    VerifiedEvent,
)
from providers.stripe.amounts import from_stripe, to_stripe
from providers.stripe.client import build_client, stripe_errors
from providers.stripe.webhooks import verify_signed_event

# Stripe lets the amount change only before the customer has been charged or held.
AMOUNT_UPDATABLE = frozenset(
    {"requires_payment_method", "requires_confirmation", "requires_action"}
)
# An intent in these states holds nothing that could be released.
FINISHED = frozenset({"canceled", "succeeded"})

STATUSES = {
    "requires_capture": SessionStatus.AUTHORIZED,
    "succeeded": SessionStatus.AUTHORIZED,
    "requires_action": SessionStatus.REQUIRES_MORE,
    "canceled": SessionStatus.CANCELED,
}

# Stripe knows three reasons (duplicate, fraudulent, requested_by_customer); a refund the
# store gives of its own accord (discount, other) goes without one. Ours is in the metadata.
REFUND_REASONS = {
    RefundReason.RETURN: "requested_by_customer",
    RefundReason.SWAP: "requested_by_customer",
    RefundReason.CLAIM: "requested_by_customer",
}


def session_status_of(intent: stripe.PaymentIntent) -> SessionStatus:
    if intent.status == "requires_payment_method" and intent.last_payment_error:
        return SessionStatus.ERROR
    return STATUSES.get(intent.status, SessionStatus.PENDING)


def session_data_of(intent: stripe.PaymentIntent) -> dict[str, Any]:
    """What the storefront needs to confirm the intent; the client secret is meant for it."""
    return {
        "id": intent.id,
        "client_secret": intent.client_secret,
        "status": session_status_of(intent).value,
    }


def next_action_of(intent: stripe.PaymentIntent) -> NextAction | None:
    """What the customer does next: confirm with Stripe.js, or 3-D Secure on its page."""
    if intent.status in ("requires_payment_method", "requires_confirmation"):
        return NextAction.stripe_sdk(intent.client_secret or "")
    if intent.status == "requires_action":
        action = intent.next_action
        redirect = getattr(action, "redirect_to_url", None) if action else None
        if redirect is not None and getattr(redirect, "url", None):
            return NextAction.redirect(redirect.url)
        return NextAction.stripe_sdk(intent.client_secret or "")
    return None


def answer_of(obj: stripe.StripeObject) -> dict[str, Any]:
    """The raw answer and its request id, for the event ledger."""
    response = getattr(obj, "last_response", None)
    return {
        "raw": obj.to_dict() if hasattr(obj, "to_dict") else {},
        "request_id": (response.request_id if response is not None else "") or "",
    }


def session_result_of(intent: stripe.PaymentIntent) -> SessionResult:
    return SessionResult(
        data=session_data_of(intent),
        status=session_status_of(intent),
        next_action=next_action_of(intent),
        **answer_of(intent),
    )


def intent_id_of_event(event: VerifiedEvent) -> str | None:
    """The PaymentIntent an event is about: the object itself, or a charge's intent."""
    obj = event.payload.get("data", {}).get("object", {})
    if event.type.startswith("payment_intent."):
        return obj.get("id")
    if event.type.startswith("charge."):
        return obj.get("payment_intent")
    return None


def intent_id_of(data: Mapping[str, Any]) -> str:
    intent_id = data.get("id")
    if not isinstance(intent_id, str) or not intent_id:
        raise ProviderError(ProviderErrorKind.OTHER, "The session has no Stripe PaymentIntent.")
    return intent_id


class StripeProvider(PaymentProviderBase):
    identifier = "stripe"
    # Stripe lets an uncaptured card authorization lapse after 7 days.
    authorization_lifetime = timedelta(days=7)

    @functools.cached_property
    def client(self) -> stripe.StripeClient:
        # Built on first use, so listing the provider (register_providers, migrate) needs no
        # key. Two threads racing here build two equivalent clients; one is dropped.
        return build_client()

    # Sessions --------------------------------------------------------------------------

    def initiate_session(self, session: SessionInput, *, idempotency_key: str) -> SessionResult:
        # The key is derived from the session, so a repeat of this call after a lost answer
        # finds the intent the first one created.
        intent = self._create_intent(session, idempotency_key=idempotency_key)
        return session_result_of(intent)

    def update_session(self, session: SessionInput) -> SessionResult:
        amount = to_stripe(session.amount, session.currency_code)
        intent = self._retrieve(intent_id_of(session.data))
        if intent.status != "canceled" and intent.amount == amount:
            return session_result_of(intent)
        if intent.status in AMOUNT_UPDATABLE:
            # No idempotency key: setting an amount is idempotent by itself, and a key derived
            # from the amount would make A -> B -> A -> B replay the first answer for B
            # (Stripe keeps keys 24 h) and leave the intent at A.
            with stripe_errors():
                intent = self.client.v1.payment_intents.update(intent.id, {"amount": amount})
            return session_result_of(intent)
        # Held (requires_capture) or otherwise past changing: release it and start over, so
        # no authorization for the old amount is left behind.
        self._release(intent)
        replacement = self._create_intent(
            session, idempotency_key=f"{session.session_id}:replace:{intent.id}:{amount}"
        )
        return session_result_of(replacement)

    def update_session_data(self, session: SessionInput, data: Mapping[str, Any]) -> SessionResult:
        """Accept `{"payment_method": "pm_…"}`: a PaymentMethod the storefront created with
        Stripe.js, attached so the customer's confirmation uses it. Nothing else."""
        unknown = set(data) - {"payment_method"}
        if unknown:
            raise ProviderError(
                ProviderErrorKind.INVALID, f"Unknown keys: {', '.join(sorted(unknown))}."
            )
        payment_method = data.get("payment_method")
        if not (
            isinstance(payment_method, str)
            and payment_method.startswith("pm_")
            and len(payment_method) <= 255
        ):
            raise ProviderError(
                ProviderErrorKind.INVALID,
                "payment_method must be a Stripe PaymentMethod id (pm_…).",
            )
        with stripe_errors():
            intent = self.client.v1.payment_intents.update(
                intent_id_of(session.data), {"payment_method": payment_method}
            )
        return session_result_of(intent)

    def delete_session(self, session: SessionInput) -> None:
        if session.data.get("id"):
            self._release(self._retrieve(intent_id_of(session.data)))

    # Money -----------------------------------------------------------------------------

    def authorize(self, session: SessionInput, *, idempotency_key: str) -> AuthorizationResult:
        # Reading moves no money, so Stripe needs no key here; the customer's confirmation
        # did the authorizing.
        intent = self._retrieve(intent_id_of(session.data))
        if (
            intent.metadata.to_dict().get("session_id") != session.session_id
            or intent.currency != session.currency_code.lower()
        ):
            raise ProviderError(
                ProviderErrorKind.OTHER,
                "The PaymentIntent belongs to another session or currency.",
                provider_reference=intent.id,
            )
        status = session_status_of(intent)
        if status is SessionStatus.ERROR:
            error = intent.last_payment_error
            raise ProviderError(
                ProviderErrorKind.DECLINED,
                (error.message if error else None) or "The card was declined.",
                provider_reference=intent.id,
                data={
                    "code": (error.code if error else None) or "",
                    "decline_code": (error.decline_code if error else None) or "",
                },
            )
        # What the intent holds: capturable until captured, received after.
        held = intent.amount_capturable + intent.amount_received
        return AuthorizationResult(
            status=status,
            amount=from_stripe(held, intent.currency) if status is SessionStatus.AUTHORIZED else 0,
            data=session_data_of(intent),
            provider_reference=intent.id,
            next_action=None if status is SessionStatus.AUTHORIZED else next_action_of(intent),
            **answer_of(intent),
        )

    def capture(
        self, payment: PaymentInput, *, amount: int, idempotency_key: str
    ) -> OperationResult:
        # Stripe captures once per intent and releases whatever is not captured.
        with stripe_errors():
            intent = self.client.v1.payment_intents.capture(
                intent_id_of(payment.data),
                {"amount_to_capture": to_stripe(amount, payment.currency_code)},
                {"idempotency_key": idempotency_key},
            )
        return OperationResult(
            amount=from_stripe(intent.amount_received, intent.currency),
            provider_reference=intent.id,
            data={"status": intent.status},
            **answer_of(intent),
        )

    def refund(
        self,
        payment: PaymentInput,
        *,
        amount: int,
        reason: RefundReason,
        idempotency_key: str,
    ) -> OperationResult:
        params: RefundCreateParams = {
            "payment_intent": intent_id_of(payment.data),
            "amount": to_stripe(amount, payment.currency_code),
            "metadata": {
                "reason": reason.value,
                "payment_id": payment.payment_id,
                # A webhook about this refund can tell it is ours, even before it settles.
                "idempotency_key": idempotency_key,
            },
        }
        if reason in REFUND_REASONS:
            params["reason"] = REFUND_REASONS[reason]
        with stripe_errors():
            refund = self.client.v1.refunds.create(params, {"idempotency_key": idempotency_key})
        if refund.status in ("failed", "canceled"):
            raise ProviderError(
                ProviderErrorKind.OTHER,
                f"Stripe could not refund ({refund.status}).",
                provider_reference=refund.id,
            )
        return OperationResult(
            amount=from_stripe(refund.amount, refund.currency),
            provider_reference=refund.id,
            # A refund Stripe still processes settles by its webhook or a re-read.
            status=OperationStatus.PENDING
            if refund.status == "pending"
            else OperationStatus.SUCCEEDED,
            **answer_of(refund),
        )

    def cancel(self, payment: PaymentInput, *, idempotency_key: str) -> OperationResult:
        intent_id = intent_id_of(payment.data)
        with stripe_errors():
            try:
                intent = self.client.v1.payment_intents.cancel(
                    intent_id, options={"idempotency_key": idempotency_key}
                )
            except stripe.InvalidRequestError:
                # Stripe cancels an uncaptured intent itself after 7 days, and a deleted
                # session releases its intent: already canceled is the outcome asked for.
                intent = self.client.v1.payment_intents.retrieve(intent_id)
                if intent.status != "canceled":
                    raise
                return OperationResult(amount=0, provider_reference=intent.id)
        return OperationResult(
            amount=from_stripe(intent.amount, intent.currency),
            provider_reference=intent.id,
            **answer_of(intent),
        )

    def references(self, data: Mapping[str, Any]) -> tuple[ProviderReference, ...]:
        intent_id = data.get("id")
        if not isinstance(intent_id, str) or not intent_id:
            return ()
        return (
            ProviderReference(
                "PaymentIntent", intent_id, f"https://dashboard.stripe.com/payments/{intent_id}"
            ),
        )

    def operation_status(self, payment: PaymentInput, operation: OperationInput) -> OperationResult:
        """Only refunds are ever pending at Stripe: re-read the refund."""
        if operation.type != "refund" or not operation.provider_reference:
            raise ProviderError(ProviderErrorKind.OTHER, "Nothing to re-read at Stripe.")
        with stripe_errors():
            refund = self.client.v1.refunds.retrieve(operation.provider_reference)
        status = {
            "succeeded": OperationStatus.SUCCEEDED,
            "failed": OperationStatus.FAILED,
            "canceled": OperationStatus.FAILED,
        }.get(refund.status or "", OperationStatus.PENDING)
        return OperationResult(
            amount=from_stripe(refund.amount, refund.currency),
            provider_reference=refund.id,
            status=status,
            **answer_of(refund),
        )

    # Webhooks --------------------------------------------------------------------------

    def verify_webhook(self, *, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
        return verify_signed_event(headers=headers, body=body)

    def webhook_state(self, event: VerifiedEvent) -> RemotePaymentState | None:
        """The intent behind a `payment_intent.*` or `charge.refunded` event, as it is now.

        Events arrive late, twice and out of order, so the domain acts on this re-read
        rather than on the event's copy.
        """
        intent_id = intent_id_of_event(event)
        if intent_id is None:
            return None
        intent = self._retrieve(intent_id)
        metadata = intent.metadata.to_dict() if intent.metadata else {}
        if not metadata.get("session_id"):
            return None  # not one of ours
        with stripe_errors():
            refunds = self.client.v1.refunds.list({"payment_intent": intent.id, "limit": 100})
        return RemotePaymentState(
            session_id=metadata["session_id"],
            cart_id=metadata.get("cart_id", ""),
            status=session_status_of(intent),
            amount_captured=from_stripe(intent.amount_received or 0, intent.currency)
            if intent.status == "succeeded"
            else 0,
            refunds=tuple(
                RemoteRefund(
                    provider_reference=r.id,
                    amount=from_stripe(r.amount, r.currency),
                    idempotency_key=(r.metadata.to_dict() if r.metadata else {}).get(
                        "idempotency_key", ""
                    ),
                )
                for r in refunds.data
                if r.status in ("succeeded", "pending")
            ),
            provider_reference=intent.id,
        )

    # Calls -----------------------------------------------------------------------------

    def _create_intent(
        self, session: SessionInput, *, idempotency_key: str
    ) -> stripe.PaymentIntent:
        with stripe_errors():
            return self.client.v1.payment_intents.create(
                {
                    "amount": to_stripe(session.amount, session.currency_code),
                    "currency": session.currency_code.lower(),
                    "capture_method": "manual",
                    "metadata": {"cart_id": session.cart_id, "session_id": session.session_id},
                },
                {"idempotency_key": idempotency_key},
            )

    def _retrieve(self, intent_id: str) -> stripe.PaymentIntent:
        with stripe_errors():
            return self.client.v1.payment_intents.retrieve(intent_id)

    def _release(self, intent: stripe.PaymentIntent) -> None:
        """Cancel the intent unless it is already over (no orphaned intents, no held funds)."""
        if intent.status in FINISHED:
            return
        with stripe_errors():
            self.client.v1.payment_intents.cancel(
                intent.id, options={"idempotency_key": f"{intent.id}:release"}
            )
