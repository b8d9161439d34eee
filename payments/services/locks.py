"""Row locks, always taken in one order so two transactions never wait on each other:

    cart -> idempotency key -> session -> payment (in id order) -> operation -> order

`select_for_update` holds each until the transaction ends; no provider call runs while
any is held.
"""

from __future__ import annotations

from collections.abc import Iterable

from payments import errors
from payments.models import Payment


def payment_lock(payment_id: str) -> Payment:
    try:
        return Payment.objects.select_for_update().get(pk=payment_id)
    except Payment.DoesNotExist:
        raise errors.NotFound("No payment with this id.") from None


def payments_lock(payment_ids: Iterable[str]) -> list[Payment]:
    """Lock several payments in id order, so two requests locking overlapping sets of
    payments (an order's, say) take them in the same order and never deadlock."""
    return list(Payment.objects.select_for_update().filter(pk__in=list(payment_ids)).order_by("pk"))


def payment_get(payment_id: str) -> Payment:
    try:
        return Payment.objects.get(pk=payment_id)
    except Payment.DoesNotExist:
        raise errors.NotFound("No payment with this id.") from None
