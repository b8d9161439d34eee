"""Signal receivers of the checkout app, connected in CheckoutConfig.ready()."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from checkout.completion import unselected_sessions_release_requested
from checkout.orders import order_follow_payment
from checkout.swaps import swap_follow_payment
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


@receiver(unselected_sessions_release_requested)
def release_unselected_sessions(sender: Any, *, cart_id: str, **kwargs: Any) -> None:
    """After a completion commits: the worker releases the sessions not paid with."""
    from checkout.tasks import cart_sessions_release

    try:
        cart_sessions_release.delay(cart_id)
    except Exception:
        logger.warning("Could not queue the session release of %s; the sweep will", cart_id)
