"""The `manual` provider: operators settle by hand (cash on delivery, bank transfer).

It authorizes at once; capture, refund and cancel only record what the operator did.
"""

from __future__ import annotations

from providers.base import (
    AuthorizationResult,
    OperationResult,
    PaymentInput,
    PaymentProviderBase,
    RefundReason,
    SessionInput,
    SessionResult,
    SessionStatus,
)


class ManualProvider(PaymentProviderBase):
    identifier = "manual"

    def initiate_session(self, session: SessionInput, *, idempotency_key: str) -> SessionResult:
        return SessionResult(data={"status": SessionStatus.PENDING.value})

    def update_session(self, session: SessionInput) -> SessionResult:
        return SessionResult(data=dict(session.data))

    def delete_session(self, session: SessionInput) -> None:
        return None

    def authorize(self, session: SessionInput, *, idempotency_key: str) -> AuthorizationResult:
        return AuthorizationResult(
            status=SessionStatus.AUTHORIZED,
            amount=session.amount,
            data={"status": SessionStatus.AUTHORIZED.value},
        )

    def capture(
        self, payment: PaymentInput, *, amount: int, idempotency_key: str
    ) -> OperationResult:
        return OperationResult(amount=amount)

    def refund(
        self, payment: PaymentInput, *, amount: int, reason: RefundReason, idempotency_key: str
    ) -> OperationResult:
        return OperationResult(amount=amount)

    def cancel(self, payment: PaymentInput, *, idempotency_key: str) -> OperationResult:
        return OperationResult(amount=payment.amount - payment.amount_captured)
