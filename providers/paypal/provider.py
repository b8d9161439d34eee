"""The `paypal` provider: one Orders v2 order (`intent: AUTHORIZE`) per session.

The buyer approves the order on PayPal's page (`next_action` redirect); authorize then asks
PayPal to authorize the approved order. Capture, refund and void go to the Payments v2
objects the authorization and the capture made, each with a PayPal-Request-Id derived from
what the call does, so a call repeated after a lost answer takes effect once. A capture or
refund PayPal answers PENDING is a pending operation, settled by a webhook or a re-read.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

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
from providers.paypal.amounts import CURRENCIES, from_paypal, to_paypal
from providers.paypal.client import Answer, PayPalClient, build_client, issue_of
from providers.paypal.webhooks import subject_of, verify_event

ORDERS = "/v2/checkout/orders"
AUTHORIZATIONS = "/v2/payments/authorizations"
CAPTURES = "/v2/payments/captures"
REFUNDS = "/v2/payments/refunds"

# Orders whose amount PayPal still lets us PATCH (it refuses once the order is COMPLETED).
OPEN_ORDER = frozenset({"CREATED", "SAVED", "PAYER_ACTION_REQUIRED", "APPROVED"})
# Orders the buyer still has to approve on PayPal's page.
AWAITING_BUYER = frozenset({"CREATED", "SAVED", "PAYER_ACTION_REQUIRED"})
# An authorization that holds the buyer's money (PENDING: held, under PayPal's review).
HOLDING = frozenset({"CREATED", "PENDING"})
AUTHORIZATION_STATUSES = {
    "CREATED": SessionStatus.AUTHORIZED,
    "PENDING": SessionStatus.AUTHORIZED,
    "CAPTURED": SessionStatus.AUTHORIZED,
    "PARTIALLY_CAPTURED": SessionStatus.AUTHORIZED,
    "VOIDED": SessionStatus.CANCELED,
    "EXPIRED": SessionStatus.CANCELED,
    "DENIED": SessionStatus.ERROR,
}
# A funding source that failed at authorization: the buyer picks another on PayPal's page.
DECLINE_ISSUES = frozenset(
    {"INSTRUMENT_DECLINED", "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING", "PAYER_CANNOT_PAY"}
)
# A void of what is void already: the outcome asked for.
VOIDED_ISSUES = frozenset({"PREVIOUSLY_VOIDED", "AUTHORIZATION_VOIDED"})
# A capture refunded since is still a capture that took effect.
CAPTURED = frozenset({"COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"})
SETTLED = {
    "COMPLETED": OperationStatus.SUCCEEDED,
    "PARTIALLY_REFUNDED": OperationStatus.SUCCEEDED,
    "REFUNDED": OperationStatus.SUCCEEDED,
    "PENDING": OperationStatus.PENDING,
    "DECLINED": OperationStatus.FAILED,
    "FAILED": OperationStatus.FAILED,
    "CANCELLED": OperationStatus.FAILED,
}


# Reading PayPal's objects --------------------------------------------------------------


def purchase_unit(order: Mapping[str, Any]) -> dict[str, Any]:
    units = order.get("purchase_units") or [{}]
    return dict(units[0])


def payments_of(order: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    """The unit's authorizations, captures or refunds, as PayPal lists them in the order."""
    return list(purchase_unit(order).get("payments", {}).get(kind, []))


def authorization_of(order: Mapping[str, Any]) -> dict[str, Any] | None:
    found = payments_of(order, "authorizations")
    return found[-1] if found else None


def link_of(obj: Mapping[str, Any], *rels: str) -> str:
    for link in obj.get("links", []) or []:
        if isinstance(link, dict) and link.get("rel") in rels and link.get("href"):
            return str(link["href"])
    return ""


def approve_link(order: Mapping[str, Any]) -> str:
    """Where the buyer approves: `approve`, or `payer-action` for an order made with a
    `payment_source.paypal.experience_context`."""
    return link_of(order, "approve", "payer-action")


def session_status_of(order: Mapping[str, Any]) -> SessionStatus:
    status = order.get("status")
    if status == "VOIDED":
        return SessionStatus.CANCELED
    if status == "COMPLETED":
        authorization = authorization_of(order) or {}
        return AUTHORIZATION_STATUSES.get(authorization.get("status", ""), SessionStatus.ERROR)
    return SessionStatus.PENDING


def session_result_of(order: Mapping[str, Any], answer: Answer) -> SessionResult:
    link = approve_link(order)
    return SessionResult(
        data={"order_id": order.get("id", ""), "status": order.get("status", "")},
        status=session_status_of(order),
        next_action=NextAction.redirect(link)
        if link and order.get("status") in AWAITING_BUYER
        else None,
        raw=answer.body,
        request_id=answer.debug_id,
    )


def operation_result_of(obj: Mapping[str, Any], answer: Answer, currency: str) -> OperationResult:
    """A capture or refund as an OperationResult; a refused one as OTHER."""
    status = SETTLED.get(str(obj.get("status", "")))
    if status is None or status is OperationStatus.FAILED:
        raise ProviderError(
            ProviderErrorKind.OTHER,
            f"PayPal answered {obj.get('status')}.",
            provider_reference=str(obj.get("id", "")),
            raw=answer.body,
            request_id=answer.debug_id,
        )
    return OperationResult(
        amount=from_paypal(obj.get("amount"), currency),
        provider_reference=str(obj.get("id", "")),
        status=status,
        raw=answer.body,
        request_id=answer.debug_id,
    )


def order_id_of(data: Mapping[str, Any]) -> str:
    order_id = data.get("order_id")
    if not isinstance(order_id, str) or not order_id:
        raise ProviderError(ProviderErrorKind.OTHER, "The session has no PayPal order.")
    return order_id


def authorization_id_of(data: Mapping[str, Any]) -> str:
    authorization_id = data.get("authorization_id")
    if not isinstance(authorization_id, str) or not authorization_id:
        raise ProviderError(ProviderErrorKind.OTHER, "The payment has no PayPal authorization.")
    return authorization_id


def expiry_of(authorization: Mapping[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(authorization["expiration_time"]))
    except (KeyError, ValueError):
        return None  # the provider's authorization_lifetime stands in


def order_body(session: SessionInput) -> dict[str, Any]:
    """One purchase unit for the cart's total, named by the cart and the session, which a
    webhook's re-read of the order gives back."""
    body: dict[str, Any] = {
        "intent": "AUTHORIZE",
        "purchase_units": [
            {
                "reference_id": session.cart_id,
                "custom_id": session.session_id,
                "amount": to_paypal(session.amount, session.currency_code),
            }
        ],
    }
    context = {
        key: value
        for key, value in (("return_url", session.return_url), ("cancel_url", session.cancel_url))
        if value
    }
    if context:
        # The customer finishes on the storefront (complete), so PayPal's button says so.
        paypal: dict[str, Any] = {"experience_context": {**context, "user_action": "CONTINUE"}}
        if session.email:
            paypal["email_address"] = session.email
        body["payment_source"] = {"paypal": paypal}
    return body


class PayPalProvider(PaymentProviderBase):
    identifier = "paypal"
    currencies = CURRENCIES
    # PayPal honours an authorization for 3 days and lets it be captured for 29.
    authorization_lifetime = timedelta(days=29)

    @functools.cached_property
    def client(self) -> PayPalClient:
        # Built on first use, so listing the provider (register_providers, migrate) needs no
        # credentials. Two threads racing here build two equivalent clients; one is dropped.
        return build_client()

    # Sessions --------------------------------------------------------------------------

    def initiate_session(self, session: SessionInput, *, idempotency_key: str) -> SessionResult:
        # The key is derived from the session, so a repeat after a lost answer gets the
        # order the first call created.
        answer = self.client.post(ORDERS, order_body(session), request_id=idempotency_key)
        return session_result_of(answer.body, answer)

    def update_session(self, session: SessionInput) -> SessionResult:
        amount = to_paypal(session.amount, session.currency_code)
        answer = self._order(order_id_of(session.data))
        order = answer.body
        unit = purchase_unit(order)
        if order.get("status") in OPEN_ORDER:
            if unit.get("amount", {}).get("value") == amount["value"]:
                return session_result_of(order, answer)
            # No PayPal-Request-Id on PATCH: replacing an amount is idempotent by itself.
            reference = unit.get("reference_id", "default")
            self.client.patch(
                f"{ORDERS}/{order['id']}",
                [
                    {
                        "op": "replace",
                        "path": f"/purchase_units/@reference_id=='{reference}'/amount",
                        "value": amount,
                    }
                ],
            )
            # PATCH answers 204 without a body: read back what PayPal now holds.
            updated = self._order(order["id"])
            return session_result_of(updated.body, updated)
        # Authorized (COMPLETED) or voided: PayPal changes neither. Release any hold and
        # open a new order, so no authorization for the old amount is left behind.
        self._release(order)
        replacement = self.client.post(
            ORDERS,
            order_body(session),
            request_id=f"{session.session_id}:replace:{order['id']}:{amount['value']}",
        )
        return session_result_of(replacement.body, replacement)

    def delete_session(self, session: SessionInput) -> None:
        # An order nobody authorized holds nothing and lapses at PayPal by itself.
        if session.data.get("order_id"):
            self._release(self._order(order_id_of(session.data)).body)

    # Money -----------------------------------------------------------------------------

    def authorize(self, session: SessionInput, *, idempotency_key: str) -> AuthorizationResult:
        order_id = order_id_of(session.data)
        try:
            answer = self.client.post(
                f"{ORDERS}/{order_id}/authorize", {}, request_id=idempotency_key
            )
        except ProviderError as error:
            authorized = self._authorize_refused(order_id, error)
            if authorized is not None:
                return self._authorization_result(session, authorized)
            # The buyer has not approved yet: send them (back) to PayPal's page.
            order = self._order(order_id)
            return AuthorizationResult(
                status=SessionStatus.REQUIRES_MORE,
                amount=0,
                data={"order_id": order_id, "status": order.body.get("status", "")},
                next_action=NextAction.redirect(approve_link(order.body)),
                raw=error.raw,
                request_id=error.request_id,
            )
        return self._authorization_result(session, answer)

    def _authorize_refused(self, order_id: str, error: ProviderError) -> Answer | None:
        """What a refused authorize means: None for an order not approved yet, the order
        for one authorized already (its one authorization is the answer), else raised."""
        issue = issue_of(error)
        if issue == "ORDER_NOT_APPROVED":
            return None
        if issue == "ORDER_ALREADY_AUTHORIZED":
            return self._order(order_id)
        if issue in DECLINE_ISSUES:
            # The session shows the approve page again, where the buyer picks another way.
            link = link_of(error.raw, "redirect") or approve_link(self._order(order_id).body)
            raise ProviderError(
                ProviderErrorKind.DECLINED,
                "PayPal declined the buyer's funding source; they can choose another.",
                provider_reference=order_id,
                data=error.data,
                next_action=NextAction.redirect(link) if link else None,
                raw=error.raw,
                request_id=error.request_id,
            ) from error
        raise error

    def _authorization_result(self, session: SessionInput, answer: Answer) -> AuthorizationResult:
        order = answer.body
        unit = purchase_unit(order)
        currency = str(unit.get("amount", {}).get("currency_code", "")).lower()
        if unit.get("custom_id") != session.session_id or currency != session.currency_code:
            raise ProviderError(
                ProviderErrorKind.OTHER,
                "The PayPal order belongs to another session or currency.",
                provider_reference=str(order.get("id", "")),
            )
        authorization = authorization_of(order) or {}
        status = session_status_of(order)
        if status is not SessionStatus.AUTHORIZED:
            raise ProviderError(
                ProviderErrorKind.DECLINED,
                f"PayPal's authorization is {authorization.get('status', 'missing')}.",
                provider_reference=str(authorization.get("id", order.get("id", ""))),
                raw=answer.body,
                request_id=answer.debug_id,
            )
        return AuthorizationResult(
            status=SessionStatus.AUTHORIZED,
            amount=from_paypal(authorization.get("amount"), session.currency_code),
            data={
                "order_id": order["id"],
                "status": order["status"],
                "authorization_id": authorization["id"],
            },
            provider_reference=str(authorization["id"]),
            expires_at=expiry_of(authorization),
            raw=answer.body,
            request_id=answer.debug_id,
        )

    def capture(
        self, payment: PaymentInput, *, amount: int, idempotency_key: str
    ) -> OperationResult:
        # final_capture: the rest of the authorization is released, as the domain expects.
        answer = self.client.post(
            f"{AUTHORIZATIONS}/{authorization_id_of(payment.data)}/capture",
            {"amount": to_paypal(amount, payment.currency_code), "final_capture": True},
            request_id=idempotency_key,
        )
        return self._capture_result(answer, payment.currency_code)

    def _capture_result(self, answer: Answer, currency: str) -> OperationResult:
        result = operation_result_of(answer.body, answer, currency)
        # Merged into the payment's data once the capture succeeds: refunds name it.
        data = {"capture_id": result.provider_reference, "capture_status": answer.body["status"]}
        return OperationResult(
            amount=result.amount,
            provider_reference=result.provider_reference,
            data=data,
            status=result.status,
            raw=result.raw,
            request_id=result.request_id,
        )

    def refund(
        self,
        payment: PaymentInput,
        *,
        amount: int,
        reason: RefundReason,
        idempotency_key: str,
    ) -> OperationResult:
        # custom_id carries our key: a webhook's re-read can tell the refund is ours, even
        # before its answer reaches us. PayPal's refunds have no reason field.
        answer = self.client.post(
            f"{CAPTURES}/{self._capture_id(payment)}/refund",
            {"amount": to_paypal(amount, payment.currency_code), "custom_id": idempotency_key},
            request_id=idempotency_key,
        )
        return operation_result_of(answer.body, answer, payment.currency_code)

    def cancel(self, payment: PaymentInput, *, idempotency_key: str) -> OperationResult:
        authorization_id = authorization_id_of(payment.data)
        try:
            answer = self.client.post(
                f"{AUTHORIZATIONS}/{authorization_id}/void", None, request_id=idempotency_key
            )
        except ProviderError as error:
            # A lapsed session's release or PayPal's dashboard voided it first.
            if issue_of(error) not in VOIDED_ISSUES:
                raise
            answer = self.client.get(f"{AUTHORIZATIONS}/{authorization_id}")
            if answer.body.get("status") != "VOIDED":
                raise
        released = answer.body.get("amount")
        return OperationResult(
            amount=from_paypal(released, payment.currency_code) if released else payment.amount,
            provider_reference=authorization_id,
            raw=answer.body,
            request_id=answer.debug_id,
        )

    def operation_status(self, payment: PaymentInput, operation: OperationInput) -> OperationResult:
        """Re-read a capture or refund PayPal answered PENDING."""
        reference = operation.provider_reference
        if not reference or operation.type not in ("capture", "refund"):
            raise ProviderError(ProviderErrorKind.OTHER, "Nothing to re-read at PayPal.")
        path = CAPTURES if operation.type == "capture" else REFUNDS
        answer = self.client.get(f"{path}/{reference}")
        if SETTLED.get(str(answer.body.get("status", ""))) is OperationStatus.FAILED:
            # Denied after all (a capture under review, a refund PayPal could not make).
            return OperationResult(
                amount=0,
                provider_reference=reference,
                status=OperationStatus.FAILED,
                raw=answer.body,
                request_id=answer.debug_id,
            )
        if operation.type == "capture":
            return self._capture_result(answer, payment.currency_code)
        return operation_result_of(answer.body, answer, payment.currency_code)

    def payment_state(self, payment: PaymentInput) -> RemotePaymentState | None:
        order = self._order(order_id_of(payment.data)).body
        return self._state_of(order, payment.currency_code)

    # Webhooks --------------------------------------------------------------------------

    def references(self, data: Mapping[str, Any]) -> tuple[ProviderReference, ...]:
        """The order, its authorization and its capture; PayPal's activity page shows the
        authorization and the capture (transactions), in the sandbox's for the sandbox."""
        sandbox = "sandbox" in (getattr(settings, "PAYPAL_API_BASE", "") or "")
        activity = f"https://www.{'sandbox.' if sandbox else ''}paypal.com/activity/payment/"
        found = []
        for key, label, linked in (
            ("order_id", "Order", False),
            ("authorization_id", "Authorization", True),
            ("capture_id", "Capture", True),
        ):
            value = data.get(key)
            if isinstance(value, str) and value:
                found.append(ProviderReference(label, value, activity + value if linked else ""))
        return tuple(found)

    def verify_webhook(self, *, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
        return verify_event(self.client, headers=headers, body=body)

    def webhook_state(self, event: VerifiedEvent) -> RemotePaymentState | None:
        """The order behind the event, as PayPal holds it now: the event only says which
        object to start from, and its body is never taken for that object's state."""
        subject = subject_of(event)
        if subject is None:
            return None
        try:
            order = self._order(self._order_id_from(*subject)).body
        except ProviderError as error:
            if error.data.get("http_status") == 404:
                return None  # not an object of this PayPal app
            raise
        unit = purchase_unit(order)
        currency = str(unit.get("amount", {}).get("currency_code", "")).lower()
        return self._state_of(order, currency)

    def _state_of(self, order: Mapping[str, Any], currency: str) -> RemotePaymentState | None:
        unit = purchase_unit(order)
        session_id = unit.get("custom_id")
        if not isinstance(session_id, str) or not session_id.startswith("ps_"):
            return None  # not one of ours
        captured = [c for c in payments_of(order, "captures") if c.get("status") in CAPTURED]
        refunds = [r for r in payments_of(order, "refunds") if r.get("status") == "COMPLETED"]
        return RemotePaymentState(
            session_id=session_id,
            cart_id=str(unit.get("reference_id", "")),
            status=session_status_of(order),
            amount_captured=sum(from_paypal(c.get("amount"), currency) for c in captured),
            refunds=tuple(
                RemoteRefund(
                    provider_reference=str(r["id"]),
                    amount=from_paypal(r.get("amount"), currency),
                    idempotency_key=str(r.get("custom_id", "")),
                )
                for r in refunds
            ),
            provider_reference=str(order.get("id", "")),
            # Approved and not yet authorized: completing the cart now authorizes it.
            customer_approved=order.get("status") == "APPROVED",
        )

    def _order_id_from(self, kind: str, object_id: str) -> str:
        """The order an authorization, capture or refund belongs to, read from PayPal."""
        if kind == "order":
            return object_id
        if kind == "refund":
            refund = self.client.get(f"{REFUNDS}/{object_id}").body
            # A refund points `up` at its capture.
            kind, object_id = "capture", link_of(refund, "up").rstrip("/").rsplit("/", 1)[-1]
        path = AUTHORIZATIONS if kind == "authorization" else CAPTURES
        found = self.client.get(f"{path}/{object_id}").body
        related = found.get("supplementary_data", {}).get("related_ids", {})
        order_id = related.get("order_id")
        if not isinstance(order_id, str) or not order_id:
            raise ProviderError(ProviderErrorKind.OTHER, f"PayPal's {kind} names no order.")
        return order_id

    # Calls -----------------------------------------------------------------------------

    def _order(self, order_id: str) -> Answer:
        return self.client.get(f"{ORDERS}/{order_id}")

    def _capture_id(self, payment: PaymentInput) -> str:
        """The capture a refund names: kept from the capture's answer, or (for a capture
        recorded from a webhook) read from the order."""
        capture_id = payment.data.get("capture_id")
        if isinstance(capture_id, str) and capture_id:
            return capture_id
        order = self._order(order_id_of(payment.data)).body
        for capture in payments_of(order, "captures"):
            if capture.get("status") in CAPTURED:
                return str(capture["id"])
        raise ProviderError(ProviderErrorKind.OTHER, "The PayPal payment has no capture.")

    def _release(self, order: Mapping[str, Any]) -> None:
        """Void the order's authorization if it still holds money (no orphaned holds)."""
        authorization = authorization_of(order)
        if authorization is None or authorization.get("status") not in HOLDING:
            return
        self.client.post(
            f"{AUTHORIZATIONS}/{authorization['id']}/void",
            None,
            request_id=f"{authorization['id']}:release",
        )
