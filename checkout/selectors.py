"""Reads of the checkout domain, each in a fixed number of queries."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from checkout.models import Order, Region
from payments import errors
from payments.models import PaymentProvider


def region_list() -> QuerySet[Region]:
    return Region.objects.prefetch_related(
        Prefetch("payment_providers", queryset=PaymentProvider.objects.filter(is_installed=True))
    )


def order_queryset() -> QuerySet[Order]:
    return Order.objects.select_related("cart").prefetch_related(
        "cart__items", "payments__refunds", "refunds", "swaps__payments"
    )


def order_get(order_id: str) -> Order:
    try:
        return order_queryset().get(pk=order_id)
    except Order.DoesNotExist:
        raise errors.NotFound("No order with this id.") from None
