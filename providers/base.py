"""The provider contract: what every payment provider implements, and what crosses the boundary.

Providers get plain frozen dataclasses, never models, and answer with dataclasses or a
ProviderError. They never touch the database of the payments domain, so a provider's HTTP
call can always be made outside any open transaction.

The contract carries three shapes of payment: a card API confirmed in the browser (Stripe),
an approval on the provider's own page (PayPal: `next_action` redirect) and a widget that
hands the storefront a token (Klarna), and providers whose captures and refunds settle later
(an operation answered `pending`, settled by a webhook or by `operation_status`).
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar


class SessionStatus(enum.StrEnum):
    PENDING = "pending"
    AUTHORIZED = "authorized"
    REQUIRES_MORE = "requires_more"
    ERROR = "error"
    CANCELED = "canceled"


class OperationStatus(enum.StrEnum):
    """What a provider answered to a money movement it took."""

    SUCCEEDED = "succeeded"  # the money moved
    PENDING = "pending"  # accepted; it settles later (a webhook or operation_status says)
    FAILED = "failed"  # settled as refused after being pending: nothing moved


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
    NOT_READY = "not_ready"  # not in this state (a capture before a fraud review): try later
    OTHER = "other"  # a definitive error from the provider


@dataclass(frozen=True)
class NextAction:
    """What the customer must do before the session can be authorized (SPEC 2)."""

    type: str  # redirect, use_stripe_sdk, klarna_widget
    url: str = ""
    client_secret: str = ""
    client_token: str = ""

    @classmethod
    def redirect(cls, url: str) -> NextAction:
        return cls(type="redirect", url=url)

    @classmethod
    def stripe_sdk(cls, client_secret: str) -> NextAction:
        return cls(type="use_stripe_sdk", client_secret=client_secret)

    @classmethod
    def klarna_widget(cls, client_token: str) -> NextAction:
        return cls(type="klarna_widget", client_token=client_token)

    def as_json(self) -> dict[str, str]:
        keys = {
            "redirect": ("url",),
            "use_stripe_sdk": ("client_secret",),
            "klarna_widget": ("client_token",),
        }[self.type]
        return {"type": self.type, **{key: getattr(self, key) for key in keys}}


class ProviderError(Exception):
    """A provider call that did not succeed. `kind` tells whether the outcome is known."""

    def __init__(
        self,
        kind: ProviderErrorKind,
        message: str,
        *,
        provider_reference: str = "",
        data: Mapping[str, Any] | None = None,
        next_action: NextAction | None = None,
        raw: Mapping[str, Any] | None = None,
        request_id: str = "",
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.provider_reference = provider_reference
        self.data = dict(data or {})
        # A decline the customer can fix (another card, another PayPal funding source).
        self.next_action = next_action
        self.raw = dict(raw or {})
        self.request_id = request_id

    @property
    def outcome_unknown(self) -> bool:
        return self.kind is ProviderErrorKind.UNAVAILABLE


@dataclass(frozen=True)
class ProviderAnswer:
    """What every answer keeps for the event ledger: the provider's own words."""

    raw: Mapping[str, Any] = field(default_factory=dict, kw_only=True)
    request_id: str = field(default="", kw_only=True)


@dataclass(frozen=True)
class PurchaseLine:
    reference: str
    title: str
    quantity: int
    unit_price: int
    total: int


@dataclass(frozen=True)
class SessionInput:
    """A payment session as the provider sees it, with what the customer is buying."""

    session_id: str
    cart_id: str
    amount: int
    currency_code: str
    email: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    # The region's first country, where the provider needs a purchase country.
    country: str = ""
    lines: tuple[PurchaseLine, ...] = ()
    # From the session's data, checked against STOREFRONT_ORIGINS by the domain.
    return_url: str = ""
    cancel_url: str = ""


@dataclass(frozen=True)
class SessionResult(ProviderAnswer):
    data: Mapping[str, Any]
    status: SessionStatus = SessionStatus.PENDING
    next_action: NextAction | None = None


@dataclass(frozen=True)
class AuthorizationResult(ProviderAnswer):
    """The outcome of authorize. `amount` is what the provider actually holds."""

    status: SessionStatus
    amount: int
    data: Mapping[str, Any]
    provider_reference: str = ""
    next_action: NextAction | None = None
    # When the provider lets the hold lapse; None: from `authorization_lifetime`.
    expires_at: datetime | None = None


@dataclass(frozen=True)
class PaymentInput:
    """A payment as the provider sees it: its data is what authorize (and capture) returned."""

    payment_id: str
    session_id: str
    amount: int
    amount_captured: int
    amount_refunded: int
    currency_code: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OperationInput:
    """A money movement asked earlier, to be re-read (`operation_status`)."""

    type: str  # capture, refund, cancel
    amount: int
    idempotency_key: str
    provider_reference: str = ""


@dataclass(frozen=True)
class OperationResult(ProviderAnswer):
    """A money movement the provider took: done, or pending until it settles."""

    amount: int
    provider_reference: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    status: OperationStatus = OperationStatus.SUCCEEDED


@dataclass(frozen=True)
class VerifiedEvent:
    """A webhook whose signature the provider checked, before it is processed."""

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
    amount_captured: int = 0
    refunds: tuple[RemoteRefund, ...] = ()
    provider_reference: str = ""
    # The customer did their part (PayPal's approval): completing the cart now authorizes.
    customer_approved: bool = False
    # What the payment's data should now say (Klarna's fraud review, say): merged into it.
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderReference:
    """One of the provider's own ids for a payment, for operators; `url` opens it in the
    provider's dashboard where it has one."""

    label: str
    value: str
    url: str = ""


class PaymentProviderBase(abc.ABC):
    """One payment provider. `identifier` is its PaymentProvider row's id.

    Every method that moves money or changes state at the provider takes an
    `idempotency_key` derived from what the call does: the provider must make a repeated
    call with the same key take effect at most once.
    """

    identifier: ClassVar[str] = ""
    # ISO 4217 codes, lowercase; None: any currency.
    currencies: ClassVar[frozenset[str] | None] = None
    # Purchase countries (ISO 3166-1 alpha-2, lowercase) where the provider needs one.
    countries: ClassVar[frozenset[str] | None] = None
    needs_purchase_country: ClassVar[bool] = False
    # How long an authorization holds; None: until captured or canceled.
    authorization_lifetime: ClassVar[timedelta | None] = None

    def unavailable_reason(self, *, currency_code: str, countries: tuple[str, ...]) -> str:
        """Why this provider cannot be offered in a region, or "" when it can."""
        if self.currencies is not None and currency_code.lower() not in self.currencies:
            return f"{self.identifier} does not support {currency_code.upper()}."
        if self.needs_purchase_country:
            if not countries:
                return f"{self.identifier} needs the region to have a country."
            if self.countries is not None and countries[0] not in self.countries:
                return f"{self.identifier} does not sell in {countries[0].upper()}."
        return ""

    @abc.abstractmethod
    def initiate_session(self, session: SessionInput, *, idempotency_key: str) -> SessionResult:
        """Open a session at the provider for `session.amount`; a retry with the same key
        finds the remote object the first call made."""

    @abc.abstractmethod
    def update_session(self, session: SessionInput) -> SessionResult:
        """The cart total changed: bring the remote session to `session.amount`, releasing
        any authorization held for another amount."""

    def update_session_data(self, session: SessionInput, data: Mapping[str, Any]) -> SessionResult:
        """The storefront sent data for this session; by default providers accept none."""
        raise ProviderError(ProviderErrorKind.INVALID, "This provider takes no session data.")

    @abc.abstractmethod
    def delete_session(self, session: SessionInput) -> None:
        """The session is gone: release anything held remotely (no orphaned intents)."""

    @abc.abstractmethod
    def authorize(self, session: SessionInput, *, idempotency_key: str) -> AuthorizationResult:
        """Authorize the session's amount; a declined authorization raises DECLINED, a
        session that needs the customer answers REQUIRES_MORE with its `next_action`."""

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

    def operation_status(self, payment: PaymentInput, operation: OperationInput) -> OperationResult:
        """Re-read an operation this provider answered `pending`. Providers that never
        answer pending need not implement it."""
        raise ProviderError(ProviderErrorKind.OTHER, "This provider has no pending operations.")

    def payment_state(self, payment: PaymentInput) -> RemotePaymentState | None:
        """Re-read what the provider holds for a payment now; None when it cannot say."""
        return None

    def references(self, data: Mapping[str, Any]) -> tuple[ProviderReference, ...]:
        """The provider's ids in a payment's data, for the back office."""
        return ()

    def verify_webhook(self, *, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
        """Check a webhook's signature and parse it; providers without webhooks refuse."""
        raise ProviderError(ProviderErrorKind.INVALID, "This provider has no webhooks.")

    def webhook_state(self, event: VerifiedEvent) -> RemotePaymentState | None:
        """The current remote state of the payment an event is about (re-read, not taken
        from the event), or None for an event the domain does not act on."""
        return None
