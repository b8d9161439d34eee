"""Signal receivers of the checkout app, connected in CheckoutConfig.ready()."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from checkout.completion import recovery_point_committed
from checkout.orders import order_follow_payment
from checkout.swaps import swap_follow_payment, swap_register_cart_completion
from payments.idempotency import RecoveryPoint
from payments.models import Payment
from payments.services import payment_changed

logger = logging.getLogger(__name__)


@receiver(payment_changed)
def order_follows_its_payments(
    sender: Any, *, payment: Payment, success: bool, **kwargs: Any
) -> None:
    """In the payment's transaction: the order's (and a swap's) status moves with it."""
    order_follow_payment(payment=payment, success=success)
    swap_follow_payment(payment=payment, success=success)


@receiver(recovery_point_committed)
def swap_cart_completed(sender: Any, *, point: str, cart_id: str, **kwargs: Any) -> None:
    """A completed swap cart's payment belongs to its swap and the swap's order."""
    if point != RecoveryPoint.FINISHED:
        return
    try:
        swap_register_cart_completion(cart_id=cart_id)
    except Exception:
        # The storefront's answer is committed already and must not turn into an error;
        # the link is made again before the swap is processed or canceled.
        logger.exception("Could not link the payment of swap cart %s", cart_id)
