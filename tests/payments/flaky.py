"""A sandbox provider whose answers can be lost, for the "outcome unknown" paths.

It is the `test` provider (same remote ledger, same idempotency on keys) under another id;
an operation named in `lose` takes effect remotely and then fails as if the network had
dropped the answer, once: like `fail_after_authorize`, for capture, refund and cancel.
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.base import OperationResult, ProviderError, ProviderErrorKind
from providers.test.provider import TestProvider

PATH = "tests.payments.flaky.FlakyProvider"


class FlakyProvider(TestProvider):
    identifier = "flaky"
    lose: ClassVar[set[str]] = set()

    def _maybe_lose(self, operation: str, result: OperationResult) -> OperationResult:
        if operation in self.lose:
            self.lose.discard(operation)
            raise ProviderError(ProviderErrorKind.UNAVAILABLE, "The answer was lost.")
        return result

    def capture(self, payment: Any, **kwargs: Any) -> OperationResult:
        return self._maybe_lose("capture", super().capture(payment, **kwargs))

    def refund(self, payment: Any, **kwargs: Any) -> OperationResult:
        return self._maybe_lose("refund", super().refund(payment, **kwargs))

    def cancel(self, payment: Any, **kwargs: Any) -> OperationResult:
        return self._maybe_lose("cancel", super().cancel(payment, **kwargs))
