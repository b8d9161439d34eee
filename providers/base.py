"""The provider contract: what every payment provider implements, and what crosses the boundary.

Providers get plain frozen dataclasses, never models, and answer with dataclasses or a
ProviderError. They never touch the database of the payments domain, so a provider's HTTP
call can always be made outside any open transaction.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class SessionStatus(enum.StrEnum):
    PENDING = "pending"
    AUTHORIZED = "authorized"
    REQUIRES_MORE = "requires_more"
    ERROR = "error"
    CANCELED = "canceled"


class RefundReason(enum.StrEnum):
    DISCOUNT = "discount"
    RETURN = "return"
    SWAP = "swap"
    CLAIM = "claim"
    OTHER = "other"


class ProviderErrorKind(enum.StrEnum):
    DECLINED = "declined"  # a definitive no: the money did not move
    UNAVAILABLE = "unavailable"  # unreachable or the answer was lost: the outcome is unknown
    INVALID = "invalid"  # the caller sent data the provider cannot accept
    OTHER = "other"  # a definitive error from the provider


class ProviderError(Exception):
    """A provider call that did not succeed. `kind` tells whether the outcome is known."""

    def __init__(
        self,
        kind: ProviderErrorKind,
        message: str,
        *,
        provider_reference: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.provider_reference = provider_reference
        self.data = dict(data or {})

    @property
    def outcome_unknown(self) -> bool:
        return self.kind is ProviderErrorKind.UNAVAILABLE


@dataclass(frozen=True)
class SessionInput:
    """A payment session as the provider sees it."""

    session_id: str
    cart_id: str
    amount: int
    currency_code: str
    email: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionResult:
    data: Mapping[str, Any]
    status: SessionStatus = SessionStatus.PENDING


@dataclass(frozen=True)
class AuthorizationResult:
    """The outcome of authorize. `amount` is what the provider actually holds."""

    status: SessionStatus
    amount: int
    data: Mapping[str, Any]
    provider_reference: str = ""


@dataclass(frozen=True)
class PaymentInput:
    """A payment as the provider sees it: its data is what authorize returned."""

    payment_id: str
    session_id: str
    amount: int
    amount_captured: int
    amount_refunded: int
    currency_code: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OperationResult:
    """A money movement that took effect at the provider."""

    amount: int
    provider_reference: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookEvent:
    """A verified event from the provider, before it is processed."""

    event_id: str
    type: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class RemoteRefund:
    provider_reference: str
    amount: int
    # The key we gave when we asked for it; empty for one made at the provider directly.
    idempotency_key: str = ""


@dataclass(frozen=True)
class RemotePaymentState:
    """What the provider holds for one session right now, re-read when a webhook arrives.

    The domain moves its own state toward this snapshot and never backwards, so events
    that arrive late or out of order cannot undo what a newer one did.
    """

    session_id: str
    cart_id: str
    status: SessionStatus
    amount_authorized: int = 0
    amount_captured: int = 0
    refunds: tuple[RemoteRefund, ...] = ()
    provider_reference: str = ""


class PaymentProviderBase(abc.ABC):
    """One payment provider. `identifier` is its PaymentProvider row's id.

    Every method that moves money takes an `idempotency_key`: the provider must make a
    repeated call with the same key take effect at most once.
    """

    identifier: str = ""

    @abc.abstractmethod
    def initiate_session(self, session: SessionInput) -> SessionResult:
        """Open a session at the provider for `session.amount`."""

    @abc.abstractmethod
    def update_session(self, session: SessionInput) -> SessionResult:
        """The cart total changed: bring the remote session to `session.amount`."""

    def update_session_data(self, session: SessionInput, data: Mapping[str, Any]) -> SessionResult:
        """The storefront sent data for this session; by default providers accept none."""
        raise ProviderError(ProviderErrorKind.INVALID, "This provider takes no session data.")

    @abc.abstractmethod
    def delete_session(self, session: SessionInput) -> None:
        """The session is gone: release anything held remotely (no orphaned intents)."""

    @abc.abstractmethod
    def authorize(self, session: SessionInput, *, idempotency_key: str) -> AuthorizationResult:
        """Authorize the session's amount; a declined authorization raises DECLINED."""

    @abc.abstractmethod
    def capture(
        self, payment: PaymentInput, *, amount: int, idempotency_key: str
    ) -> OperationResult:
        """Capture `amount` (at most what is authorized); the rest is released."""

    @abc.abstractmethod
    def refund(
        self,
        payment: PaymentInput,
        *,
        amount: int,
        reason: RefundReason,
        idempotency_key: str,
    ) -> OperationResult:
        """Give back `amount` of what was captured."""

    @abc.abstractmethod
    def cancel(self, payment: PaymentInput, *, idempotency_key: str) -> OperationResult:
        """Release an authorization that was never captured."""

    def session_status(self, data: Mapping[str, Any]) -> SessionStatus:
        """Map the provider's session data to a session status."""
        return SessionStatus(data.get("status", SessionStatus.PENDING))

    def verify_webhook(self, *, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Check a webhook's signature and parse it; providers without webhooks refuse."""
        raise ProviderError(ProviderErrorKind.INVALID, "This provider has no webhooks.")

    def webhook_state(self, event: WebhookEvent) -> RemotePaymentState | None:
        """The current remote state of the payment an event is about (re-read, not taken
        from the event), or None for an event the domain does not act on."""
        return None
