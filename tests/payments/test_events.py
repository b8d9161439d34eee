"""Every provider call leaves a PaymentEvent, success or failure (SPEC section 3)."""

from __future__ import annotations

import pytest
from django.db import transaction

from payments import errors
from payments.models import Payment, PaymentEvent, PaymentSession
from payments.services import (
    STOREFRONT,
    SYSTEM,
    payment_cancel,
    payment_session_authorize,
    payment_session_create,
    payment_session_delete,
    payment_session_update_amount,
    payment_session_update_data,
    provider_call,
)
from providers.base import ProviderError
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def cart(region):  # type: ignore[no-untyped-def]
    return factories.CartFactory(region=region)


def events() -> list[tuple[str, bool]]:
    return [(e.type, e.success) for e in PaymentEvent.objects.order_by("created_at", "id")]


def test_each_session_operation_is_recorded(cart):
    session = payment_session_create(
        cart_id=cart.id, provider_id="test", amount=500, currency_code="usd"
    )
    payment_session_update_amount(session=session, amount=700)
    payment_session_update_data(session=session, data={"outcome": "authorized"})
    payment_session_authorize(session=session)
    payment_session_delete(session=session)

    assert events() == [
        ("initiate", True),
        ("update", True),
        ("update", True),
        ("authorize", True),
        ("delete", True),
    ]
    assert PaymentEvent.objects.filter(type="authorize").get().amount == 700
    assert not PaymentSession.objects.exists()


def test_a_failed_call_is_recorded_with_its_error(cart):
    session = payment_session_create(
        cart_id=cart.id, provider_id="test", amount=500, currency_code="usd"
    )
    payment_session_update_data(session=session, data={"outcome": "decline"})

    with pytest.raises(ProviderError):
        payment_session_authorize(session=session)
    with pytest.raises(errors.InvalidData):
        payment_session_update_data(session=session, data={"outcome": "bogus"})

    failed = PaymentEvent.objects.filter(success=False).order_by("created_at")
    assert [(e.type, e.error.split(":")[0]) for e in failed] == [
        ("authorize", "declined"),
        ("update", "invalid"),
    ]
    assert PaymentSession.objects.get().status == "error"


def test_a_cancel_records_the_actor_and_the_provider_reference(cart):
    session = payment_session_create(
        cart_id=cart.id, provider_id="test", amount=500, currency_code="usd"
    )
    authorization = payment_session_authorize(session=session, actor=STOREFRONT)
    payment = Payment.objects.create(
        cart=cart,
        session=session,
        provider_id="test",
        currency_code="usd",
        amount=500,
        data=dict(authorization.data),
    )

    payment_cancel(payment_id=payment.id, actor=SYSTEM)

    cancel = PaymentEvent.objects.get(type="cancel")
    assert (cancel.payment_id, cancel.success, cancel.actor, cancel.amount) == (
        payment.id,
        True,
        "system",
        500,
    )
    assert cancel.provider_reference.startswith("tstcan_")


@pytest.mark.django_db(transaction=True)
def test_a_provider_call_inside_a_transaction_is_refused(region):
    with pytest.raises(RuntimeError, match="transaction"), transaction.atomic():
        provider_call(lambda p: None, type="authorize", provider_id="manual", actor=SYSTEM)
