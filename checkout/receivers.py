"""Signal receivers of the checkout app, connected in CheckoutConfig.ready()."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from checkout.orders import order_follow_payment
from checkout.swaps import swap_follow_payment
from payments.models import Payment
from payments.services import payment_changed


@receiver(payment_changed)
def order_follows_its_payments(
    sender: Any, *, payment: Payment, success: bool, **kwargs: Any
) -> None:
    """In the payment's transaction: the order's (and a swap's) status moves with it."""
    order_follow_payment(payment=payment, success=success)
    swap_follow_payment(payment=payment, success=success)
