"""The `test` sandbox provider (SPEC section 3).

It behaves as its session data says (`outcome`, `delay_ms`, `fail_after_authorize`) and keeps
a remote ledger in its own table. Like a real provider it is idempotent on the key it is
given: a call whose key already took effect returns that result and records nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Sum

from payments.fields import new_id
from providers.base import (
    AuthorizationResult,
    OperationResult,
    PaymentInput,
    PaymentProviderBase,
    ProviderError,
    ProviderErrorKind,
    RefundReason,
    SessionInput,
    SessionResult,
    SessionStatus,
)
from providers.test.models import LedgerEntry

OUTCOMES = ("authorized", "decline", "requires_more", "error")
MAX_DELAY_MS = 5000
DEFAULT_DATA: dict[str, Any] = {
    "outcome": "authorized",
    "delay_ms": 0,
    "fail_after_authorize": False,
}

Operation = LedgerEntry.Operation


def validate_session_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """Only the three documented keys, each of its documented type and range."""
    unknown = set(data) - set(DEFAULT_DATA)
    if unknown:
        raise ProviderError(
            ProviderErrorKind.INVALID, f"Unknown keys: {', '.join(sorted(unknown))}."
        )
    if "outcome" in data and data["outcome"] not in OUTCOMES:
        raise ProviderError(
            ProviderErrorKind.INVALID, f"outcome must be one of {', '.join(OUTCOMES)}."
        )
    delay = data.get("delay_ms", 0)
    if type(delay) is not int or not 0 <= delay <= MAX_DELAY_MS:
        raise ProviderError(
            ProviderErrorKind.INVALID, f"delay_ms must be an integer 0..{MAX_DELAY_MS}."
        )
    if type(data.get("fail_after_authorize", False)) is not bool:
        raise ProviderError(ProviderErrorKind.INVALID, "fail_after_authorize must be a boolean.")
    return dict(data)


def ledger_entries(*, session_id: str | None = None) -> list[LedgerEntry]:
    entries = LedgerEntry.objects.all()
    if session_id:
        entries = entries.filter(session_id=session_id)
    return list(entries.order_by("created_at", "id"))


class TestProvider(PaymentProviderBase):
    identifier = "test"
    __test__ = False  # not a pytest test class

    def initiate_session(self, session: SessionInput) -> SessionResult:
        return SessionResult(data={**DEFAULT_DATA, "status": SessionStatus.PENDING.value})

    def update_session(self, session: SessionInput) -> SessionResult:
        # An authorization held for another amount is void once the amount changes.
        self._void_live_authorizations(session.session_id, keep_amount=session.amount)
        return SessionResult(data={**session.data, "status": SessionStatus.PENDING.value})

    def update_session_data(self, session: SessionInput, data: Mapping[str, Any]) -> SessionResult:
        merged = {**DEFAULT_DATA, **session.data, **validate_session_data(data)}
        merged["status"] = SessionStatus.PENDING.value
        return SessionResult(data=merged)

    def delete_session(self, session: SessionInput) -> None:
        self._void_live_authorizations(session.session_id, keep_amount=None)

    def authorize(self, session: SessionInput, *, idempotency_key: str) -> AuthorizationResult:
        previous = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if previous is not None:
            return self._authorized(previous)
        data = {**DEFAULT_DATA, **session.data}
        if data["delay_ms"]:
            time.sleep(data["delay_ms"] / 1000)
        outcome = data["outcome"]
        if outcome == "decline":
            raise ProviderError(ProviderErrorKind.DECLINED, "The test card was declined.")
        if outcome == "error":
            raise ProviderError(ProviderErrorKind.OTHER, "The test provider failed to authorize.")
        if outcome == "requires_more":
            return AuthorizationResult(
                status=SessionStatus.REQUIRES_MORE,
                amount=0,
                data={**data, "status": SessionStatus.REQUIRES_MORE.value},
            )
        reference = new_id("tstauth")
        entry = self._record(
            Operation.AUTHORIZE,
            session.session_id,
            reference,
            session.amount,
            idempotency_key,
            reference,
        )
        if data["fail_after_authorize"] and entry.reference == reference:
            raise ProviderError(
                ProviderErrorKind.UNAVAILABLE, "The connection dropped after the authorization."
            )
        return self._authorized(entry)

    def capture(
        self, payment: PaymentInput, *, amount: int, idempotency_key: str
    ) -> OperationResult:
        authorization = self._authorization(payment)
        previous = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if previous is None:
            if self._sum(authorization, Operation.CANCEL) or self._sum(
                authorization, Operation.CAPTURE
            ):
                raise ProviderError(
                    ProviderErrorKind.OTHER, "The authorization is no longer capturable."
                )
            if amount > authorization.amount:
                raise ProviderError(ProviderErrorKind.OTHER, "Amount exceeds the authorization.")
        entry = previous or self._record(
            Operation.CAPTURE,
            payment.session_id,
            new_id("tstcap"),
            amount,
            idempotency_key,
            authorization.reference,
        )
        return OperationResult(amount=entry.amount, provider_reference=entry.reference)

    def refund(
        self, payment: PaymentInput, *, amount: int, reason: RefundReason, idempotency_key: str
    ) -> OperationResult:
        authorization = self._authorization(payment)
        previous = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if previous is None:
            refundable = self._sum(authorization, Operation.CAPTURE) - self._sum(
                authorization, Operation.REFUND
            )
            if amount > refundable:
                raise ProviderError(ProviderErrorKind.OTHER, "Amount exceeds what was captured.")
        entry = previous or self._record(
            Operation.REFUND,
            payment.session_id,
            new_id("tstref"),
            amount,
            idempotency_key,
            authorization.reference,
        )
        return OperationResult(amount=entry.amount, provider_reference=entry.reference)

    def cancel(self, payment: PaymentInput, *, idempotency_key: str) -> OperationResult:
        authorization = self._authorization(payment)
        previous = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if previous is None:
            if self._sum(authorization, Operation.CAPTURE):
                raise ProviderError(
                    ProviderErrorKind.OTHER, "A captured payment cannot be canceled."
                )
            if self._sum(authorization, Operation.CANCEL):
                return OperationResult(amount=0, provider_reference=authorization.reference)
        entry = previous or self._record(
            Operation.CANCEL,
            payment.session_id,
            new_id("tstcan"),
            authorization.amount,
            idempotency_key,
            authorization.reference,
        )
        return OperationResult(amount=entry.amount, provider_reference=entry.reference)

    @staticmethod
    def _authorized(entry: LedgerEntry) -> AuthorizationResult:
        return AuthorizationResult(
            status=SessionStatus.AUTHORIZED,
            amount=entry.amount,
            data={"authorization": entry.reference, "status": SessionStatus.AUTHORIZED.value},
            provider_reference=entry.reference,
        )

    @staticmethod
    def _authorization(payment: PaymentInput) -> LedgerEntry:
        reference = payment.data.get("authorization")
        entry = LedgerEntry.objects.filter(
            reference=reference, operation=Operation.AUTHORIZE
        ).first()
        if entry is None:
            raise ProviderError(ProviderErrorKind.OTHER, "No such authorization.")
        return entry

    @staticmethod
    def _sum(authorization: LedgerEntry, operation: str) -> int:
        total = LedgerEntry.objects.filter(
            authorization=authorization.reference, operation=operation
        ).aggregate(total=Sum("amount"))["total"]
        return int(total or 0)

    @staticmethod
    def _record(
        operation: str, session_id: str, reference: str, amount: int, key: str, authorization: str
    ) -> LedgerEntry:
        """Write one ledger row; a concurrent call that won the key returns the winner's row."""
        try:
            with transaction.atomic():
                return LedgerEntry.objects.create(
                    reference=reference,
                    operation=operation,
                    session_id=session_id,
                    authorization=authorization,
                    amount=amount,
                    idempotency_key=key,
                )
        except IntegrityError:
            return LedgerEntry.objects.get(idempotency_key=key)

    def _void_live_authorizations(self, session_id: str, *, keep_amount: int | None) -> None:
        """Cancel authorizations of this session that were never captured nor canceled."""
        for authorization in LedgerEntry.objects.filter(
            session_id=session_id, operation=Operation.AUTHORIZE
        ):
            if keep_amount is not None and authorization.amount == keep_amount:
                continue
            if self._sum(authorization, Operation.CAPTURE) or self._sum(
                authorization, Operation.CANCEL
            ):
                continue
            self._record(
                Operation.CANCEL,
                session_id,
                new_id("tstcan"),
                authorization.amount,
                f"void:{authorization.reference}",
                authorization.reference,
            )
