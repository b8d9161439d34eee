"""The event ledger: a payment's amounts rebuilt from its successful events, and the
operations still open, for `reconcile_payments` and an operator who trusts the ledger."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from payments import errors
from payments.models import Payment, PaymentEvent, PaymentOperation
from payments.services.locks import payment_lock


@dataclass(frozen=True)
class Discrepancy:
    """A payment whose stored amounts disagree with its event ledger."""

    payment_id: str
    differences: dict[str, tuple[object, object]]  # field -> (stored, from the ledger)


def payments_with_ledger(queryset: QuerySet[Payment] | None = None) -> QuerySet[Payment]:
    """Payments annotated with their amounts rebuilt from successful events, in one query:
    `ledger_amount` (its authorization),
    `ledger_captured`, `ledger_refunded`, `ledger_is_captured`, `ledger_is_canceled`."""
    ok = PaymentEvent.objects.filter(payment=OuterRef("pk"), success=True).order_by()

    def total(type: str) -> Coalesce:
        sums = ok.filter(type=type).values("payment").annotate(total=Sum("amount")).values("total")
        return Coalesce(Subquery(sums), 0)

    authorization = PaymentEvent.objects.filter(
        operation__payment=OuterRef("pk"), type=PaymentEvent.Type.AUTHORIZE, success=True
    ).values("amount")[:1]
    return (queryset if queryset is not None else Payment.objects.all()).annotate(
        ledger_amount=Subquery(authorization),
        ledger_captured=total(PaymentEvent.Type.CAPTURE),
        ledger_refunded=total(PaymentEvent.Type.REFUND),
        ledger_is_captured=Exists(ok.filter(type=PaymentEvent.Type.CAPTURE)),
        ledger_is_canceled=Exists(ok.filter(type=PaymentEvent.Type.CANCEL)),
    )


def _differences(payment: Any) -> dict[str, tuple[object, object]]:
    pairs: dict[str, tuple[object, object]] = {
        "amount": (payment.amount, payment.ledger_amount),
        "amount_captured": (payment.amount_captured, payment.ledger_captured),
        "amount_refunded": (payment.amount_refunded, payment.ledger_refunded),
        "captured": (payment.captured_at is not None, payment.ledger_is_captured),
        "canceled": (payment.canceled_at is not None, payment.ledger_is_canceled),
    }
    return {field: pair for field, pair in pairs.items() if pair[0] != pair[1]}


def payments_reconcile(*, payment_ids: Iterable[str] | None = None) -> list[Discrepancy]:
    """Every payment (or those given) whose stored amounts disagree with its ledger: a bug,
    or a row changed behind the services' back. Reads in one query."""
    queryset = Payment.objects.order_by("created_at", "id")
    if payment_ids is not None:
        queryset = queryset.filter(pk__in=list(payment_ids))
    found = []
    for payment in payments_with_ledger(queryset).iterator(chunk_size=1000):
        differences = _differences(payment)
        if differences:
            found.append(Discrepancy(payment_id=payment.pk, differences=differences))
    return found


def payment_rebuild_from_ledger(*, payment_id: str) -> Payment:
    """Overwrite a payment's stored amounts with what its ledger says, under its lock.

    For an operator who found a discrepancy and trusts the ledger; the database still
    refuses amounts out of order (the ledger itself would then be wrong: InvalidState).
    """
    with transaction.atomic():
        payment_lock(payment_id)
        payment: Any = payments_with_ledger(Payment.objects.filter(pk=payment_id)).get()
        if payment.ledger_amount is None:
            raise errors.InvalidState("The ledger holds no authorization for this payment.")
        events = PaymentEvent.objects.filter(payment=payment, success=True).order_by("created_at")
        first = {e.type: e.created_at for e in reversed(list(events))}
        payment.amount = payment.ledger_amount
        payment.amount_captured = payment.ledger_captured
        payment.amount_refunded = payment.ledger_refunded
        if payment.ledger_is_captured != (payment.captured_at is not None):
            payment.captured_at = first.get(PaymentEvent.Type.CAPTURE)
        if payment.ledger_is_canceled != (payment.canceled_at is not None):
            payment.canceled_at = first.get(PaymentEvent.Type.CANCEL)
        try:
            with transaction.atomic():
                payment.save(
                    update_fields=[
                        "amount",
                        "amount_captured",
                        "amount_refunded",
                        "captured_at",
                        "canceled_at",
                    ]
                )
        except IntegrityError:
            raise errors.InvalidState(
                "The ledger's amounts are out of order; it needs a person, not a rebuild."
            ) from None
    return payment


def operations_stuck(*, older_than: timedelta) -> list[PaymentOperation]:
    """Operations still open after `older_than`: the worker should have settled them; a
    person should look at what is left."""
    cutoff = timezone.now() - older_than
    return list(
        PaymentOperation.objects.filter(
            status__in=PaymentOperation.OPEN, created_at__lt=cutoff
        ).order_by("created_at")[:1000]
    )
