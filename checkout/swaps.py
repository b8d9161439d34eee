"""Swaps, as in Medusa: an operator exchanges items of an order for others.

The difference due is what the additional items cost at catalogue prices minus what the
returned items were paid. When the customer owes money, the swap gets a `swap` cart holding
the additional items, with the return credited on its lines so its total is the
difference; the storefront completes it through the ordinary completion path, and its
payment then belongs to the swap and to the swap's order. Processing the swap captures that
payment, or, when the store owes money, refunds the difference on the order's captured
payments (reason `swap`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from checkout.models import Cart, LineItem, Order, ProductPrice, Swap
from checkout.orders import order_lock, order_refund, order_status_refresh
from payments import errors
from payments.models import Payment, Refund
from payments.services import Actor, payment_cancel, payment_capture, payments_lock


def swap_get(swap_id: str) -> Swap:
    try:
        return Swap.objects.get(pk=swap_id)
    except Swap.DoesNotExist:
        raise errors.NotFound("No swap with this id.") from None


def _swap_lock(swap_id: str) -> Swap:
    """Lock the swap row: last in the lock order (after its order)."""
    return Swap.objects.select_for_update().get(pk=swap_id)


def _invalid(field: str, message: str) -> errors.InvalidData:
    return errors.InvalidData(message, fields={field: [message]})


# Creating a swap ----------------------------------------------------------------------


def swap_create(
    *,
    order_id: str,
    return_items: Sequence[Mapping[str, Any]],
    additional_items: Sequence[Mapping[str, Any]],
    actor: Actor,
) -> Swap:
    """Record an exchange on the order and, when the customer owes money, its swap cart.

    `return_items` are `{item_id, quantity}` of the order's items (not more than was bought
    minus what earlier swaps return); `additional_items` are `{product_id, quantity}` sold
    in the order's currency. Raises NotFound, InvalidData (400) and InvalidState (409 for a
    canceled order).
    """
    with transaction.atomic():
        # The order's lock serializes its swaps: quantities returned are checked against
        # the swaps before this one.
        order = order_lock(order_id)
        if order.status == Order.Status.CANCELED:
            raise errors.InvalidState("A canceled order cannot be swapped.")
        if order.cart.type == Cart.Type.SWAP:
            raise errors.InvalidState("This is a swap's own order; swap the original order.")
        returned = _return_lines(order, return_items)
        added = _additional_lines(order, additional_items)
        if not returned and not added:
            raise _invalid("return_items", "A swap returns or adds at least one item.")
        return_total = sum(line["total"] for line in returned)
        difference = sum(line["total"] for line in added) - return_total
        swap = Swap.objects.create(
            order=order,
            return_items=returned,
            additional_items=added,
            difference_due=difference,
        )
        if difference > 0:
            swap.cart = _swap_cart_create(order, added, credit=return_total)
            swap.save(update_fields=["cart"])
    return swap


def _return_lines(order: Order, requested: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    items = {item.id: item for item in order.cart.items.all()}
    already: dict[str, int] = {}
    for swap in Swap.objects.filter(order=order).exclude(status=Swap.Status.CANCELED):
        for line in swap.return_items:
            already[line["item_id"]] = already.get(line["item_id"], 0) + line["quantity"]
    lines: list[dict[str, Any]] = []
    for entry in requested:
        item = items.get(entry["item_id"])
        if item is None:
            raise _invalid("return_items", f"{entry['item_id']} is not an item of this order.")
        if any(line["item_id"] == item.id for line in lines):
            raise _invalid("return_items", f"{item.id} is listed twice.")
        left = item.quantity - already.get(item.id, 0)
        if entry["quantity"] > left:
            raise _invalid("return_items", f"Only {left} of {item.id} can still be returned.")
        # Credited at the price the customer paid, not today's catalogue price.
        lines.append(
            {
                "item_id": item.id,
                "title": item.title,
                "unit_price": item.unit_price,
                "quantity": entry["quantity"],
                "total": item.unit_price * entry["quantity"],
            }
        )
    return lines


def _additional_lines(order: Order, requested: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for entry in requested:
        if any(line["product_id"] == entry["product_id"] for line in lines):
            raise _invalid("additional_items", f"{entry['product_id']} is listed twice.")
        price = (
            ProductPrice.objects.select_related("product")
            .filter(product_id=entry["product_id"], currency_code=order.currency_code)
            .first()
        )
        if price is None:
            raise _invalid(
                "additional_items",
                f"{entry['product_id']} is not sold in {order.currency_code}.",
            )
        lines.append(
            {
                "product_id": price.product_id,
                "title": price.product.title,
                "unit_price": price.amount,
                "quantity": entry["quantity"],
                "total": price.amount * entry["quantity"],
            }
        )
    return lines


def _swap_cart_create(order: Order, added: list[dict[str, Any]], *, credit: int) -> Cart:
    """The cart the customer pays the difference with: the additional items, the return's
    value credited on them in order, so its total is the difference due."""
    cart = Cart.objects.create(
        region_id=order.region_id,
        currency_code=order.currency_code,
        email=order.email,
        type=Cart.Type.SWAP,
    )
    for line in added:
        taken = min(credit, line["total"])
        credit -= taken
        LineItem.objects.create(
            cart=cart,
            product_id=line["product_id"],
            title=line["title"],
            unit_price=line["unit_price"],
            quantity=line["quantity"],
            credit=taken,
        )
    return cart


# The swap cart's payment --------------------------------------------------------------


def swap_of_cart(cart_id: str) -> Swap | None:
    return Swap.objects.filter(cart_id=cart_id).first()


def swap_attach_payment(*, cart: Cart, payment: Payment) -> Swap:
    """The swap cart's payment becomes the swap's, and its order's.

    Runs in the completion's finishing transaction, the cart locked, so the swap is never
    left without the payment that paid it. Raises InvalidState when the swap was canceled
    meanwhile (the completion then cancels the authorization).
    """
    swap = swap_of_cart(cart.pk)
    if swap is None:
        raise errors.InvalidState("This swap cart has no swap.")
    payments_lock([payment.pk])
    order = order_lock(swap.order_id)
    swap = _swap_lock(swap.pk)
    if swap.status == Swap.Status.CANCELED:
        raise errors.InvalidState("This swap was canceled.")
    Payment.objects.filter(pk=payment.pk).update(swap=swap, order=order)
    swap.confirmed_at = timezone.now()
    swap.payment_status = Swap.PaymentStatus.AWAITING
    swap.save(update_fields=["confirmed_at", "payment_status"])
    order_status_refresh(order)
    return swap


def swap_follow_payment(*, payment: Payment, success: bool) -> None:
    """A swap's payment changed (the caller holds the payment's and the order's locks)."""
    if payment.swap_id is None:
        return
    swap = _swap_lock(payment.swap_id)
    if swap.status == Swap.Status.CANCELED:
        return
    if not success:
        swap.payment_status = Swap.PaymentStatus.REQUIRES_ACTION
        if swap.status != Swap.Status.COMPLETED:
            swap.status = Swap.Status.REQUIRES_ACTION
    elif payment.captured_at is not None:
        swap.payment_status = Swap.PaymentStatus.CAPTURED
    elif payment.canceled_at is not None:
        swap.payment_status = Swap.PaymentStatus.CANCELED
    swap.save(update_fields=["status", "payment_status"])


# Processing and canceling -------------------------------------------------------------


def swap_process_payment(*, swap_id: str, actor: Actor, request_key: str = "") -> Swap:
    """Settle the swap's difference: capture what the customer paid, or refund what the
    store owes on the order's captured payments (reason `swap`). Processing a processed
    swap is a no-op.

    Raises InvalidState (409: canceled, or the customer has not paid yet),
    AmountExceedsRefundable (422), ProviderFailed (502) and ProviderUnavailable (503); a
    provider failure leaves the swap `requires_action`, and processing it again retries.
    """
    swap = swap_get(swap_id)
    if swap.status == Swap.Status.CANCELED:
        raise errors.InvalidState("A canceled swap cannot be processed.")
    if swap.status == Swap.Status.COMPLETED:
        return swap
    try:
        if swap.difference_due > 0:
            payment = swap.payments.filter(canceled_at__isnull=True).first()
            if payment is None:
                raise errors.InvalidState("The customer has not paid the swap's cart yet.")
            if payment.captured_at is None:
                payment_capture(payment_id=payment.pk, actor=actor, request_key=request_key)
            payment_status = Swap.PaymentStatus.CAPTURED
        else:
            if swap.difference_due < 0:
                # Keyed by the swap: however often processing is retried, and by whom, the
                # difference is refunded once.
                order_refund(
                    order_id=swap.order_id,
                    amount=-swap.difference_due,
                    reason=Refund.Reason.SWAP,
                    note=f"Difference of swap {swap.id}",
                    actor=actor,
                    request_key=swap.id,
                )
            # Medusa's convention: nothing owed either way counts as settled this way too.
            payment_status = Swap.PaymentStatus.DIFFERENCE_REFUNDED
    except (errors.ProviderFailed, errors.ProviderUnavailable):
        _swap_update(
            swap,
            status=Swap.Status.REQUIRES_ACTION,
            payment_status=Swap.PaymentStatus.REQUIRES_ACTION,
        )
        raise
    return _swap_update(
        swap,
        status=Swap.Status.COMPLETED,
        payment_status=payment_status,
        completed_at=timezone.now(),
    )


def swap_cancel(*, swap_id: str, actor: Actor, request_key: str = "") -> Swap:
    """Cancel a swap that was not processed; a payment the customer made for it is
    released. Raises InvalidState (409) for a processed swap or a captured payment, and
    the payment errors (502, 503) of a cancel the provider did not take."""
    swap = swap_get(swap_id)
    if swap.status == Swap.Status.CANCELED:
        return swap
    if swap.status == Swap.Status.COMPLETED:
        raise errors.InvalidState("A processed swap cannot be canceled.")
    while True:
        with transaction.atomic():
            # Under the cart's lock, a completion of the swap cart cannot slip in between
            # looking for its payment and marking the swap canceled; one that finishes
            # later sees the swap canceled and cancels its own authorization.
            if swap.cart_id:
                Cart.objects.select_for_update().get(pk=swap.cart_id)
                payment = Payment.objects.filter(
                    cart_id=swap.cart_id, canceled_at__isnull=True
                ).first()
            else:
                payment = None
            if payment is None:
                return _swap_update(
                    swap,
                    status=Swap.Status.CANCELED,
                    payment_status=Swap.PaymentStatus.CANCELED,
                    canceled_at=timezone.now(),
                )
        if payment.amount_captured:
            raise errors.InvalidState("The swap's payment was captured; it cannot be canceled.")
        payment_cancel(payment_id=payment.pk, actor=actor, request_key=request_key)


def _swap_update(swap: Swap, **fields: Any) -> Swap:
    with transaction.atomic():
        order_lock(swap.order_id)
        locked = _swap_lock(swap.pk)
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save(update_fields=list(fields))
    return locked
