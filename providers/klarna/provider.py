"""The `klarna` provider: Klarna Payments for the widget and the order, Order Management for
everything after (SPEC 3.5).

A session is a Klarna Payments session with the cart's lines and purchase country; the
storefront shows Klarna's widget with its `client_token`, and the widget gives the
storefront an `authorization_token`, which reaches us as the session's data. Authorizing
turns that token into a Klarna order with the same purchase data. Klarna may hold the order
for fraud review (`fraud_status` PENDING): it is authorized, but captured only once Klarna
accepts it; a rejected order is canceled. Captures, refunds and cancels go through Order
Management with Klarna-Idempotency-Key derived from the caller's key, so a call repeated
after a lost answer takes effect once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings

from providers.base import (
    AuthorizationResult,
    NextAction,
    OperationResult,
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
from providers.klarna.client import KlarnaClient, KlarnaResponse, build_client
from providers.klarna.purchase import COUNTRIES, CURRENCIES, MARKETS, order_body
from providers.klarna.webhooks import parse_notification

ACCEPTED, PENDING, REJECTED = "ACCEPTED", "PENDING", "REJECTED"
# Order statuses after which nothing is held any more.
RELEASED = frozenset({"CANCELLED", "EXPIRED"})
# What the session's data keeps of Klarna's session; the rest of an answer stays in `raw`.
SESSION_KEYS = ("session_id", "client_token", "payment_method_categories")
# Klarna's tokens and ids are UUID-like; they go into URL paths, so nothing else passes.
KLARNA_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")


def refused(error: ProviderError, *statuses: int) -> bool:
    """A definitive refusal with one of these HTTP statuses (not an unknown outcome)."""
    return error.kind is ProviderErrorKind.OTHER and error.data.get("http_status") in statuses


def widget_of(data: Mapping[str, Any]) -> NextAction | None:
    client_token = data.get("client_token")
    return NextAction.klarna_widget(client_token) if isinstance(client_token, str) else None


def session_data_of(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in SESSION_KEYS if key in data}


def klarna_session_id(data: Mapping[str, Any]) -> str:
    session_id = data.get("session_id")
    if not isinstance(session_id, str) or not KLARNA_ID.fullmatch(session_id):
        raise ProviderError(ProviderErrorKind.OTHER, "The session has no Klarna session.")
    return session_id


def order_id_of(data: Mapping[str, Any]) -> str:
    order_id = data.get("order_id")
    if not isinstance(order_id, str) or not KLARNA_ID.fullmatch(order_id):
        raise ProviderError(ProviderErrorKind.OTHER, "The payment has no Klarna order.")
    return order_id


def remote_state_of(order: Mapping[str, Any]) -> RemotePaymentState | None:
    """An Order Management order as the domain follows it; None for one not made by us
    (no session in `merchant_reference2`)."""
    session_id = order.get("merchant_reference2") or ""
    if not session_id:
        return None
    canceled = order.get("fraud_status") == REJECTED or order.get("status") in RELEASED
    return RemotePaymentState(
        session_id=session_id,
        cart_id=order.get("merchant_reference1") or "",
        status=SessionStatus.CANCELED if canceled else SessionStatus.AUTHORIZED,
        amount_captured=int(order.get("captured_amount") or 0),
        refunds=tuple(
            RemoteRefund(
                provider_reference=refund["refund_id"],
                amount=int(refund["refunded_amount"]),
                # We send our key as the refund's reference: a refund that settles while
                # our own answer is lost is still known as ours.
                idempotency_key=refund.get("reference") or "",
            )
            for refund in order.get("refunds") or []
        ),
        provider_reference=order.get("order_id") or "",
        data={"fraud_status": order["fraud_status"]} if order.get("fraud_status") else {},
    )


class KlarnaProvider(PaymentProviderBase):
    identifier = "klarna"
    currencies = CURRENCIES
    countries = COUNTRIES
    needs_purchase_country = True
    # Klarna holds an order's authorization for 28 days unless it is extended.
    authorization_lifetime = timedelta(days=28)

    def unavailable_reason(self, *, currency_code: str, countries: tuple[str, ...]) -> str:
        """Klarna sells in each country in that country's currency only."""
        reason = super().unavailable_reason(currency_code=currency_code, countries=countries)
        if reason:
            return reason
        country, wanted = countries[0], MARKETS[countries[0]]
        if currency_code.lower() != wanted:
            return f"klarna sells in {country.upper()} in {wanted.upper()} only."
        return ""

    @functools.cached_property
    def client(self) -> KlarnaClient:
        # Built on first use, so listing the provider (register_providers, migrate) needs no
        # credentials. Two threads racing here build two clients; one is dropped.
        return build_client()

    # Sessions --------------------------------------------------------------------------

    def initiate_session(self, session: SessionInput, *, idempotency_key: str) -> SessionResult:
        # Klarna documents its idempotency key for Order Management; a session made twice
        # (the first answer lost and Klarna ignoring the key) holds nothing and expires
        # unused after 48 hours.
        response = self.client.post(
            "/payments/v1/sessions", order_body(session), idempotency_key=idempotency_key
        )
        return self._session_result(response.body, response)

    def update_session(self, session: SessionInput) -> SessionResult:
        """The cart changed: Klarna's session gets the new amount and lines, and a token the
        customer gave for the old ones is released; the widget authorizes again."""
        self._release_token(session.data)
        session_id = klarna_session_id(session.data)
        try:
            # No idempotency key: replacing the session's purchase data is idempotent itself.
            self.client.post(f"/payments/v1/sessions/{session_id}", order_body(session))
        except ProviderError as error:
            if not refused(error, 404):
                raise
            # Klarna's session expired (48 hours) or was completed: open a fresh one.
            response = self.client.post(
                "/payments/v1/sessions",
                order_body(session),
                idempotency_key=f"{session.session_id}:replace:{session_id}:{session.amount}",
            )
            return self._session_result(response.body, response)
        return self._session_result(session.data)

    def update_session_data(self, session: SessionInput, data: Mapping[str, Any]) -> SessionResult:
        """Accept `{"authorization_token": "…"}`, the token Klarna's widget gave the
        storefront; authorizing (at completion) turns it into an order. Nothing else."""
        unknown = set(data) - {"authorization_token"}
        if unknown:
            raise ProviderError(
                ProviderErrorKind.INVALID, f"Unknown keys: {', '.join(sorted(unknown))}."
            )
        token = data.get("authorization_token")
        if not (isinstance(token, str) and KLARNA_ID.fullmatch(token)):
            raise ProviderError(
                ProviderErrorKind.INVALID,
                "authorization_token must be the token Klarna's widget gave.",
            )
        klarna_session_id(session.data)
        return SessionResult(
            data={**session_data_of(session.data), "authorization_token": token},
            status=SessionStatus.PENDING,
        )

    def delete_session(self, session: SessionInput) -> None:
        """Release what the session holds: its order if one was placed, else the widget's
        authorization. A Klarna Payments session itself holds nothing and expires."""
        if session.data.get("order_id"):
            order_id = order_id_of(session.data)
            try:
                self.client.post(
                    f"/ordermanagement/v1/orders/{order_id}/cancel",
                    idempotency_key=f"{order_id}:release",
                )
            except ProviderError as error:
                if not refused(error, 403, 404):  # already canceled, expired or captured
                    raise
            return
        self._release_token(session.data)

    # Money -----------------------------------------------------------------------------

    def authorize(self, session: SessionInput, *, idempotency_key: str) -> AuthorizationResult:
        """Create the Klarna order from the widget's token, with the purchase data the
        customer authorized; no token yet is REQUIRES_MORE (the widget again)."""
        data = session_data_of(session.data)
        token = session.data.get("authorization_token")
        if not isinstance(token, str) or not KLARNA_ID.fullmatch(token):
            return AuthorizationResult(
                status=SessionStatus.REQUIRES_MORE,
                amount=0,
                data=data,
                next_action=widget_of(session.data),
            )
        body = order_body(session)
        if settings.KLARNA_NOTIFICATION_URL:
            body["merchant_urls"] = {"notification": settings.KLARNA_NOTIFICATION_URL}
        try:
            response = self.client.post(
                f"/payments/v1/authorizations/{token}/order", body, idempotency_key=idempotency_key
            )
        except ProviderError as error:
            raise self._authorization_refused(session, error) from error
        order = response.body
        if order.get("fraud_status") == REJECTED:
            raise ProviderError(
                ProviderErrorKind.DECLINED,
                "Klarna rejected the purchase.",
                provider_reference=order.get("order_id") or "",
                next_action=widget_of(session.data),
                raw=order,
            )
        return AuthorizationResult(
            status=SessionStatus.AUTHORIZED,
            amount=session.amount,
            data={
                **data,
                "order_id": order["order_id"],
                "fraud_status": order.get("fraud_status") or ACCEPTED,
            },
            provider_reference=order["order_id"],
            raw=order,
        )

    def capture(
        self, payment: PaymentInput, *, amount: int, idempotency_key: str
    ) -> OperationResult:
        """Capture `amount`; a partial capture then releases what remains, as SPEC 6 asks.
        An order still in fraud review is NOT_READY (409): Klarna must accept it first."""
        order_id = order_id_of(payment.data)
        if payment.data.get("fraud_status") != ACCEPTED:
            self._ensure_accepted(order_id)
        response = self.client.post(
            f"/ordermanagement/v1/orders/{order_id}/captures",
            {"captured_amount": amount, "reference": idempotency_key[:255]},
            idempotency_key=idempotency_key,
        )
        capture_id = response.header("Capture-Id")
        data: dict[str, Any] = {"capture_id": capture_id, "fraud_status": ACCEPTED}
        if amount < payment.amount - payment.amount_captured:
            try:
                self.client.post(
                    f"/ordermanagement/v1/orders/{order_id}/release-remaining-authorization",
                    idempotency_key=f"{idempotency_key}:release",
                )
            except ProviderError as error:
                # The capture stands either way. An unknown outcome is asked again (both
                # calls replay under their keys); a refusal (nothing left) is noted.
                if error.outcome_unknown:
                    raise
                data["release_error"] = error.message
        return OperationResult(
            amount=amount,
            provider_reference=capture_id,
            data=data,
            raw={"capture_id": capture_id, "location": response.header("Location")},
        )

    def refund(
        self,
        payment: PaymentInput,
        *,
        amount: int,
        reason: RefundReason,
        idempotency_key: str,
    ) -> OperationResult:
        order_id = order_id_of(payment.data)
        response = self.client.post(
            f"/ordermanagement/v1/orders/{order_id}/refunds",
            {
                "refunded_amount": amount,
                "description": reason.value,
                "reference": idempotency_key[:255],
            },
            idempotency_key=idempotency_key,
        )
        refund_id = response.header("Refund-Id")
        return OperationResult(
            amount=amount,
            provider_reference=refund_id,
            raw={"refund_id": refund_id, "location": response.header("Location")},
        )

    def cancel(self, payment: PaymentInput, *, idempotency_key: str) -> OperationResult:
        order_id = order_id_of(payment.data)
        try:
            self.client.post(
                f"/ordermanagement/v1/orders/{order_id}/cancel", idempotency_key=idempotency_key
            )
        except ProviderError as error:
            if not refused(error, 403):
                raise
            # A rejected fraud review or an expired authorization canceled it already: that
            # is the outcome asked for. A captured order stays refused.
            order = self._order(order_id)
            if order.get("status") not in RELEASED:
                raise
        return OperationResult(amount=payment.amount, provider_reference=order_id)

    def payment_state(self, payment: PaymentInput) -> RemotePaymentState | None:
        if not payment.data.get("order_id"):
            return None
        order = self._order_or_none(order_id_of(payment.data))
        return remote_state_of(order) if order is not None else None

    # Webhooks --------------------------------------------------------------------------

    def references(self, data: Mapping[str, Any]) -> tuple[ProviderReference, ...]:
        """The Klarna order (in the Merchant Portal) and its fraud review as last read."""
        order_id = data.get("order_id")
        if not isinstance(order_id, str) or not order_id:
            return ()
        portal = "playground." if "playground" in (settings.KLARNA_API_BASE or "") else ""
        return (
            ProviderReference(
                "Order", order_id, f"https://portal.{portal}klarna.com/orders/all/{order_id}"
            ),
            ProviderReference("Fraud status", str(data.get("fraud_status", ""))),
        )

    def verify_webhook(self, *, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
        return parse_notification(headers=headers, body=body)

    def webhook_state(self, event: VerifiedEvent) -> RemotePaymentState | None:
        """The order the notification names, as Klarna holds it now; an order Klarna does
        not know (or not one of ours) changes nothing."""
        order = self._order_or_none(str(event.payload["order_id"]))
        return remote_state_of(order) if order is not None else None

    # Calls -----------------------------------------------------------------------------

    def _session_result(
        self, source: Mapping[str, Any], response: KlarnaResponse | None = None
    ) -> SessionResult:
        data = session_data_of(source)
        return SessionResult(
            data=data,
            status=SessionStatus.PENDING,
            next_action=widget_of(data),
            raw=dict(response.body) if response is not None else {},
        )

    def _authorization_refused(self, session: SessionInput, error: ProviderError) -> ProviderError:
        """Klarna's refusals of an order, as the customer can act on them: each one needs
        the widget again (DECLINED, 402)."""
        if refused(error, 409):
            # The cart no longer matches what the widget authorized: Klarna's session gets
            # the cart as it is now, so the next authorization covers it.
            self.client.post(
                f"/payments/v1/sessions/{klarna_session_id(session.data)}", order_body(session)
            )
            message = "The cart changed after Klarna authorized it; authorize again."
        elif refused(error, 404):
            message = "Klarna's authorization expired or was used; authorize again."
        elif refused(error, 403):
            message = "Klarna refused the purchase."
        else:
            return error
        return ProviderError(
            ProviderErrorKind.DECLINED,
            message,
            data=error.data,
            next_action=widget_of(session.data),
            raw=error.raw,
            request_id=error.request_id,
        )

    def _ensure_accepted(self, order_id: str) -> None:
        fraud_status = self._order(order_id).get("fraud_status")
        if fraud_status == PENDING:
            raise ProviderError(
                ProviderErrorKind.NOT_READY,
                "Klarna is reviewing this order for fraud; capture once it accepts it.",
                provider_reference=order_id,
            )
        if fraud_status == REJECTED:
            raise ProviderError(
                ProviderErrorKind.OTHER,
                "Klarna rejected this order in its fraud review; it cannot be captured.",
                provider_reference=order_id,
            )

    def _order(self, order_id: str) -> Mapping[str, Any]:
        return self.client.get(f"/ordermanagement/v1/orders/{order_id}").body

    def _order_or_none(self, order_id: str) -> Mapping[str, Any] | None:
        try:
            return self._order(order_id)
        except ProviderError as error:
            if refused(error, 404):
                return None
            raise

    def _release_token(self, data: Mapping[str, Any]) -> None:
        """Cancel an authorization the widget gave and no order used (404: gone already)."""
        token = data.get("authorization_token")
        if not isinstance(token, str) or not KLARNA_ID.fullmatch(token) or data.get("order_id"):
            return
        try:
            self.client.delete(f"/payments/v1/authorizations/{token}")
        except ProviderError as error:
            if not refused(error, 404):
                raise
