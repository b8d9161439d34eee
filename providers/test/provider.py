"""The `test` sandbox provider (SPEC section 3.2).

It behaves as its session data says (`outcome`, `delay_ms`, `fail_after_*`,
`async_operations` with `settle_after_ms`) and keeps a remote ledger in its own table. Like
a real provider it is idempotent on the key it is given: a call whose key already took
effect returns that result and records nothing. The data a session had when it was
authorized governs its payment's later operations (it travels in the payment's data).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from payments.fields import new_id
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
    RefundReason,
    SessionInput,
    SessionResult,
    SessionStatus,
)
from providers.test.models import LedgerEntry

OUTCOMES = ("authorized", "decline", "requires_more", "error")
MAX_DELAY_MS = 5000
MAX_SETTLE_MS = 600_000
SWITCHES = ("fail_after_authorize", "fail_after_capture", "fail_after_refund", "fail_after_cancel")
DEFAULT_DATA: dict[str, Any] = {
    "outcome": "authorized",
    "delay_ms": 0,
    **dict.fromkeys(SWITCHES, False),
    "async_operations": False,
    "settle_after_ms": 1000,
}
# What governs a payment's later operations: the session's data when it was authorized.
BEHAVIOUR_KEYS = ("delay_ms", *SWITCHES[1:], "async_operations", "settle_after_ms")

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
    for name, limit in (("delay_ms", MAX_DELAY_MS), ("settle_after_ms", MAX_SETTLE_MS)):
        value = data.get(name, 0)
        if type(value) is not int or not 0 <= value <= limit:
            raise ProviderError(ProviderErrorKind.INVALID, f"{name} must be an integer 0..{limit}.")
    for name in (*SWITCHES, "async_operations"):
        if type(data.get(name, False)) is not bool:
            raise ProviderError(ProviderErrorKind.INVALID, f"{name} must be a boolean.")
    return dict(data)


def _behaviour(payment: PaymentInput) -> dict[str, Any]:
    return {**DEFAULT_DATA, **payment.data.get("behaviour", {})}


def _settled() -> Q:
    """Entries that took effect: asynchronous ones once their time has come."""
    return Q(settles_at__isnull=True) | Q(settles_at__lte=timezone.now())


def ledger_entries(*, session_id: str | None = None) -> list[LedgerEntry]:
    entries = LedgerEntry.objects.all()
    if session_id:
        entries = entries.filter(session_id=session_id)
    return list(entries.filter(_settled()).order_by("created_at", "id"))


class TestProvider(PaymentProviderBase):
    identifier = "test"
    __test__ = False  # not a pytest test class

    def initiate_session(self, session: SessionInput, *, idempotency_key: str) -> SessionResult:
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
        data = {**DEFAULT_DATA, **session.data}
        previous = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if previous is not None:
            if self._sum(previous, Operation.CANCEL):
                # Voided since (the amount changed): nothing is held any more.
                return AuthorizationResult(status=SessionStatus.CANCELED, amount=0, data={})
            return self._authorized(previous, data)
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
                next_action=NextAction.redirect(f"/sandbox/approve/{session.session_id}"),
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
        return self._authorized(entry, data)

    def capture(
        self, payment: PaymentInput, *, amount: int, idempotency_key: str
    ) -> OperationResult:
        behaviour = self._wait(payment)
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
            settles_at=self._settles_at(behaviour),
        )
        return self._answer(entry, behaviour, "fail_after_capture", fresh=previous is None)

    def refund(
        self, payment: PaymentInput, *, amount: int, reason: RefundReason, idempotency_key: str
    ) -> OperationResult:
        behaviour = self._wait(payment)
        authorization = self._authorization(payment)
        previous = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if previous is None:
            refundable = self._sum(authorization, Operation.CAPTURE) - self._sum(
                authorization, Operation.REFUND, pending=True
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
            settles_at=self._settles_at(behaviour),
        )
        return self._answer(entry, behaviour, "fail_after_refund", fresh=previous is None)

    def cancel(self, payment: PaymentInput, *, idempotency_key: str) -> OperationResult:
        behaviour = self._wait(payment)
        authorization = self._authorization(payment)
        previous = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if previous is None:
            if self._sum(authorization, Operation.CAPTURE, pending=True):
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
            settles_at=self._settles_at(behaviour),
        )
        return self._answer(entry, behaviour, "fail_after_cancel", fresh=previous is None)

    def operation_status(self, payment: PaymentInput, operation: OperationInput) -> OperationResult:
        entry = LedgerEntry.objects.filter(idempotency_key=operation.idempotency_key).first()
        if entry is None:
            return OperationResult(amount=0, status=OperationStatus.FAILED)
        settled = entry.settles_at is None or entry.settles_at <= timezone.now()
        return OperationResult(
            amount=entry.amount,
            provider_reference=entry.reference,
            status=OperationStatus.SUCCEEDED if settled else OperationStatus.PENDING,
        )

    # Behaviour --------------------------------------------------------------------------

    @staticmethod
    def _wait(payment: PaymentInput) -> dict[str, Any]:
        behaviour = _behaviour(payment)
        if behaviour["delay_ms"]:
            time.sleep(behaviour["delay_ms"] / 1000)
        return behaviour

    @staticmethod
    def _settles_at(behaviour: Mapping[str, Any]) -> Any:
        if not behaviour["async_operations"]:
            return None
        return timezone.now() + timedelta(milliseconds=behaviour["settle_after_ms"])

    @staticmethod
    def _answer(
        entry: LedgerEntry, behaviour: Mapping[str, Any], switch: str, *, fresh: bool
    ) -> OperationResult:
        """The answer to a money movement; with its `fail_after_*` switch on, the first
        answer for a key is dropped after the movement took effect."""
        if behaviour[switch] and fresh:
            raise ProviderError(
                ProviderErrorKind.UNAVAILABLE, "The connection dropped after the operation."
            )
        settled = entry.settles_at is None or entry.settles_at <= timezone.now()
        return OperationResult(
            amount=entry.amount,
            provider_reference=entry.reference,
            status=OperationStatus.SUCCEEDED if settled else OperationStatus.PENDING,
            raw={"reference": entry.reference, "operation": entry.operation},
        )

    @staticmethod
    def _authorized(entry: LedgerEntry, data: Mapping[str, Any]) -> AuthorizationResult:
        return AuthorizationResult(
            status=SessionStatus.AUTHORIZED,
            amount=entry.amount,
            data={
                "authorization": entry.reference,
                "status": SessionStatus.AUTHORIZED.value,
                "behaviour": {key: data.get(key, DEFAULT_DATA[key]) for key in BEHAVIOUR_KEYS},
            },
            provider_reference=entry.reference,
            raw={"reference": entry.reference, "amount": entry.amount},
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
    def _sum(authorization: LedgerEntry, operation: str, *, pending: bool = False) -> int:
        """What took effect; with `pending`, what is also still settling."""
        entries = LedgerEntry.objects.filter(
            authorization=authorization.reference, operation=operation
        )
        if not pending:
            entries = entries.filter(_settled())
        total = entries.aggregate(total=Sum("amount"))["total"]
        return int(total or 0)

    @staticmethod
    def _record(
        operation: str,
        session_id: str,
        reference: str,
        amount: int,
        key: str,
        authorization: str,
        *,
        settles_at: Any = None,
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
                    settles_at=settles_at,
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
