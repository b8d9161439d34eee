"""The database itself refuses every invariant violation of SPEC section 2."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from checkout.models import LineItem, Order, ProductPrice
from payments.models import IdempotencyKey, Payment, PaymentEvent, PaymentSession, Refund
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def cart(region):  # type: ignore[no-untyped-def]
    return factories.CartFactory(region=region)


def session(cart, provider_id: str = "test", **fields):  # type: ignore[no-untyped-def]
    return PaymentSession.objects.create(
        cart=cart, provider_id=provider_id, amount=100, currency_code="usd", **fields
    )


def payment(cart, **fields):  # type: ignore[no-untyped-def]
    values = {"amount": 100, "currency_code": "usd", "provider_id": "test", **fields}
    return Payment.objects.create(cart=cart, session=session_for(cart), **values)


def session_for(cart):  # type: ignore[no-untyped-def]
    return PaymentSession.objects.filter(cart=cart).first() or session(cart)


def refused(create) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


def test_one_session_per_cart_and_provider(cart):
    session(cart)
    refused(lambda: session(cart))


def test_at_most_one_selected_session_per_cart(cart):
    session(cart, "test", is_selected=True)
    session(cart, "manual", is_selected=False)
    refused(lambda: PaymentSession.objects.filter(provider_id="manual").update(is_selected=True))


def test_a_session_amount_is_never_negative(cart):
    refused(
        lambda: PaymentSession.objects.create(
            cart=cart, provider_id="test", amount=-1, currency_code="usd"
        )
    )


def test_at_most_one_live_payment_per_cart_but_a_canceled_one_may_stay(cart):
    first = payment(cart)
    refused(lambda: payment(cart))
    Payment.objects.filter(pk=first.pk).update(canceled_at=timezone.now())
    assert payment(cart).pk != first.pk


@pytest.mark.parametrize(
    ("authorized", "captured", "refunded"),
    [(100, 101, 0), (100, 50, 51), (100, 0, -1), (-1, 0, 0)],
    ids=[
        "captured over authorized",
        "refunded over captured",
        "negative refund",
        "negative amount",
    ],
)
def test_payment_amounts_stay_ordered(cart, authorized, captured, refunded):
    refused(
        lambda: payment(cart, amount=authorized, amount_captured=captured, amount_refunded=refunded)
    )


def test_an_update_that_refunds_past_the_capture_is_refused(cart):
    paid = payment(cart, amount_captured=100)
    refused(lambda: Payment.objects.filter(pk=paid.pk).update(amount_refunded=101))


def test_one_order_per_cart(cart):
    def order():  # type: ignore[no-untyped-def]
        return Order.objects.create(cart=cart, region=cart.region, currency_code="usd", total=100)

    order()
    refused(order)


def test_amounts_are_never_negative(cart):
    product = factories.ProductFactory()
    paid = payment(cart, amount_captured=100)
    refused(
        lambda: Order.objects.create(cart=cart, region=cart.region, currency_code="usd", total=-1)
    )
    refused(lambda: ProductPrice.objects.create(product=product, currency_code="eur", amount=-5))
    refused(lambda: Refund.objects.create(payment=paid, amount=0, reason="other"))
    refused(lambda: Refund.objects.create(payment=paid, amount=10, reason="because"))
    refused(
        lambda: LineItem.objects.create(
            cart=cart, product=product, title="x", unit_price=-1, quantity=1
        )
    )
    refused(
        lambda: PaymentEvent.objects.create(
            payment=paid, provider_id="test", type="capture", amount=-1, success=True, actor="x"
        )
    )


def test_a_line_item_quantity_stays_between_1_and_1000(cart):
    product = factories.ProductFactory()
    for quantity in (0, 1001):
        refused(
            lambda quantity=quantity: LineItem.objects.create(
                cart=cart, product=product, title="x", unit_price=1, quantity=quantity
            )
        )


def test_an_idempotency_key_is_unique_per_scope(db):
    def key(scope: str):  # type: ignore[no-untyped-def]
        return IdempotencyKey.objects.create(
            scope=scope, key="k", request_method="POST", request_path="/", request_fingerprint="f"
        )

    key("store")
    key("admin:1")
    refused(lambda: key("store"))


def test_a_finished_key_always_has_its_answer(db):
    refused(
        lambda: IdempotencyKey.objects.create(
            scope="store",
            key="k",
            request_method="POST",
            request_path="/",
            request_fingerprint="f",
            finished_at=timezone.now(),
        )
    )


def test_an_event_is_about_a_payment_or_a_session(db):
    refused(
        lambda: PaymentEvent.objects.create(
            provider_id="test", type="capture", success=True, actor="x"
        )
    )
