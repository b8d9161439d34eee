"""Reads for the admin API: orders with their payments, refunds, swaps and event ledger,
in a fixed number of queries however many orders, payments, refunds and events there are."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from django.db.models import Prefetch, QuerySet

from checkout.models import Order, Swap
from payments import errors
from payments.models import Payment, PaymentEvent, Refund


def orders_admin_queryset() -> QuerySet[Order]:
    by_age = ("created_at", "id")
    return Order.objects.select_related("cart").prefetch_related(
        "cart__items",
        Prefetch(
            "payments",
            queryset=Payment.objects.order_by(*by_age).prefetch_related("refunds", "operations"),
        ),
        Prefetch("refunds", queryset=Refund.objects.order_by(*by_age)),
        Prefetch(
            "swaps",
            queryset=Swap.objects.order_by(*by_age).prefetch_related(
                Prefetch(
                    "payments",
                    queryset=Payment.objects.order_by(*by_age).prefetch_related(
                        "refunds", "operations"
                    ),
                )
            ),
        ),
    )


def orders_admin_list(*, payment_status: str | None = None) -> QuerySet[Order]:
    """Orders for the back office."""
    orders = orders_admin_queryset()
    if payment_status:
        orders = orders.filter(payment_status=payment_status)
    return orders


def orders_attach_events(orders: Sequence[Order]) -> None:
    """Give each order `ledger_events`: every event of its cart and of its swaps' carts
    (sessions, authorization, captures, refunds, cancels), oldest first, in one query."""
    carts_of = {
        order.pk: [order.cart_id, *(s.cart_id for s in order.swaps.all() if s.cart_id)]
        for order in orders
    }
    wanted = {cart_id for cart_ids in carts_of.values() for cart_id in cart_ids}
    by_cart: dict[str, list[PaymentEvent]] = defaultdict(list)
    if wanted:
        for event in PaymentEvent.objects.filter(cart_id__in=wanted).order_by("created_at", "id"):
            by_cart[event.cart_id].append(event)
    for order in orders:
        events = [e for cart_id in carts_of[order.pk] for e in by_cart[cart_id]]
        order.ledger_events = sorted(events, key=lambda e: (e.created_at, e.pk))  # type: ignore[attr-defined]


def order_admin_get(order_id: str) -> Order:
    order = orders_admin_queryset().filter(pk=order_id).first()
    if order is None:
        raise errors.NotFound("No order with this id.")
    orders_attach_events([order])
    return order
