"""The storefront's two hot answers, the cart and the order, as plain dicts.

Every cart step and every completion answers with one of them. DRF builds a serializer's
fields anew for every instance it renders (a deep copy of the declared fields, then the
model's), which was about a tenth of a checkout's server CPU; these functions write the
same documents directly. `CartSerializer` and `OrderSerializer` stay what the OpenAPI
schema is generated from, and `tests/checkout/test_documents.py` holds the two to the same
output, field for field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from checkout.models import Cart, LineItem, Order
from payments.models import Payment, PaymentSession


def _when(value: datetime | None) -> str | None:
    """As DRF's DateTimeField writes it in UTC: ISO 8601 with a `Z`."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def line_item_document(item: LineItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "product_id": item.product_id,
        "title": item.title,
        "unit_price": item.unit_price,
        "quantity": item.quantity,
        "total": item.total,
    }


def session_document(session: PaymentSession) -> dict[str, Any]:
    return {
        "id": session.id,
        "cart_id": session.cart_id,
        "provider_id": session.provider_id,
        "status": str(session.status),
        "is_selected": session.is_selected,
        "amount": session.amount,
        "currency_code": session.currency_code,
        "data": session.data,
        "next_action": session.next_action,
        "payment_authorized_at": _when(session.payment_authorized_at),
    }


def cart_document(cart: Cart) -> dict[str, Any]:
    """CartSerializer's output, from a cart with its items and sessions read."""
    items = [line_item_document(item) for item in cart.items.all()]
    sessions = [session_document(session) for session in cart.payment_sessions.all()]
    selected = cart.selected_session
    subtotal = sum(item["total"] for item in items)
    order = getattr(cart, "order", None) if cart.completed_at else None
    return {
        "id": cart.id,
        "region_id": cart.region_id,
        "currency_code": cart.currency_code,
        "email": cart.email,
        "type": str(cart.type),
        "items": items,
        "subtotal": subtotal,
        "total": subtotal,
        "payment_sessions": sessions,
        "payment_session": session_document(selected) if selected else None,
        "idempotency_key": cart.idempotency_key,
        "payment_authorized_at": _when(cart.payment_authorized_at),
        "completed_at": _when(cart.completed_at),
        "order_id": order.id if order else None,
    }


def _payment_summary(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "provider_id": payment.provider_id,
        "currency_code": payment.currency_code,
        "amount": payment.amount,
        "amount_captured": payment.amount_captured,
        "amount_refunded": payment.amount_refunded,
        "captured_at": _when(payment.captured_at),
        "canceled_at": _when(payment.canceled_at),
        "created_at": _when(payment.created_at),
    }


def order_document(order: Order) -> dict[str, Any]:
    """OrderSerializer's output, from an order with its contents read. Written here for an
    order without refunds or swaps (every new one); any other is left to the serializer."""
    if order.refunds.all() or order.swaps.all():
        from checkout.api.serializers import OrderSerializer

        return dict(OrderSerializer(order).data)
    payments = list(order.payments.all())
    return {
        "id": order.id,
        "cart_id": order.cart_id,
        "region_id": order.region_id,
        "email": order.email,
        "currency_code": order.currency_code,
        "items": [line_item_document(item) for item in order.cart.items.all()],
        "total": order.total,
        "status": str(order.status),
        "payment_status": str(order.payment_status),
        "payments": [_payment_summary(payment) for payment in payments],
        "refunds": [],
        "swaps": [],
        "paid_total": sum(p.amount_captured for p in payments),
        "refunded_total": sum(p.amount_refunded for p in payments),
        "refundable_amount": sum(p.refundable_amount for p in payments),
        "created_at": _when(order.created_at),
    }
