"""Domain errors. Each carries the contract's status and machine code (SPEC section 1);
the API's one exception handler turns them into `{"code", "message"}` answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class DomainError(Exception):
    status = 400
    code = "invalid_data"
    retry_after: int | None = None

    def __init__(self, message: str, *, fields: Mapping[str, Sequence[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields) if fields else None


class InvalidData(DomainError):
    pass


class IdempotencyKeyInvalid(DomainError):
    code = "idempotency_key_invalid"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class PaymentAuthorizationFailed(DomainError):
    status = 402
    code = "payment_authorization_failed"


class IdempotencyKeyInUse(DomainError):
    status = 409
    code = "idempotency_key_in_use"
    retry_after = 1


class CartCompletionInProgress(DomainError):
    status = 409
    code = "cart_completion_in_progress"
    retry_after = 1


class CartCompleted(DomainError):
    status = 409
    code = "cart_completed"


class InvalidState(DomainError):
    status = 409
    code = "invalid_state"


class IdempotencyKeyMismatch(DomainError):
    status = 422
    code = "idempotency_key_mismatch"


class AmountExceedsCapturable(DomainError):
    status = 422
    code = "amount_exceeds_capturable"


class AmountExceedsRefundable(DomainError):
    status = 422
    code = "amount_exceeds_refundable"


class ProviderNotAvailable(DomainError):
    status = 422
    code = "provider_not_available"


class ProviderFailed(DomainError):
    status = 502
    code = "provider_error"


class ProviderUnavailable(DomainError):
    status = 503
    code = "provider_unavailable"
    retry_after = 2
