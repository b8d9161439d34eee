"""The `test` provider (SPEC section 3): outcomes, its remote ledger, idempotency on a key."""

from __future__ import annotations

import pytest

from providers.base import (
    PaymentInput,
    ProviderError,
    ProviderErrorKind,
    RefundReason,
    SessionInput,
)
from providers.test.models import LedgerEntry
from providers.test.provider import TestProvider, ledger_entries

pytestmark = pytest.mark.django_db

provider = TestProvider()


def session(amount: int = 1000, **data) -> SessionInput:  # type: ignore[no-untyped-def]
    initiated = provider.initiate_session(
        SessionInput(session_id="ps_1", cart_id="cart_1", amount=amount, currency_code="usd"),
        idempotency_key="ps_1:initiate",
    )
    base = SessionInput(
        session_id="ps_1", cart_id="cart_1", amount=amount, currency_code="usd", data=initiated.data
    )
    updated = provider.update_session_data(base, data) if data else initiated
    return SessionInput(**{**base.__dict__, "data": updated.data})


def payment_for(authorization_data, amount: int = 1000, captured: int = 0) -> PaymentInput:  # type: ignore[no-untyped-def]
    return PaymentInput(
        payment_id="pay_1",
        session_id="ps_1",
        amount=amount,
        amount_captured=captured,
        amount_refunded=0,
        currency_code="usd",
        data=authorization_data,
    )


def test_an_authorized_outcome_records_one_authorization():
    result = provider.authorize(session(), idempotency_key="k1")

    assert (result.status, result.amount) == ("authorized", 1000)
    assert [(e.operation, e.amount, e.idempotency_key) for e in ledger_entries()] == [
        ("authorize", 1000, "k1")
    ]


def test_a_repeated_key_returns_the_same_authorization_and_records_nothing():
    first = provider.authorize(session(), idempotency_key="k1")
    second = provider.authorize(session(outcome="decline"), idempotency_key="k1")

    assert second.provider_reference == first.provider_reference
    assert LedgerEntry.objects.count() == 1


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [("decline", ProviderErrorKind.DECLINED), ("error", ProviderErrorKind.OTHER)],
)
def test_failing_outcomes_raise_and_record_nothing(outcome, kind):
    with pytest.raises(ProviderError) as raised:
        provider.authorize(session(outcome=outcome), idempotency_key="k1")

    assert raised.value.kind is kind
    assert not LedgerEntry.objects.exists()


def test_requires_more_asks_for_the_customer_without_authorizing():
    result = provider.authorize(session(outcome="requires_more"), idempotency_key="k1")

    assert result.status == "requires_more"
    assert not LedgerEntry.objects.exists()


def test_fail_after_authorize_records_then_drops_the_answer_once():
    flaky = session(fail_after_authorize=True)

    with pytest.raises(ProviderError) as raised:
        provider.authorize(flaky, idempotency_key="k1")
    assert raised.value.outcome_unknown
    retried = provider.authorize(flaky, idempotency_key="k1")

    assert retried.status == "authorized"
    assert LedgerEntry.objects.filter(operation="authorize").count() == 1


@pytest.mark.parametrize(
    "data",
    [
        {"outcome": "maybe"},
        {"delay_ms": 5001},
        {"delay_ms": "5"},
        {"fail_after_authorize": 1},
        {"x": 1},
    ],
)
def test_session_data_outside_the_documented_keys_is_invalid(data):
    with pytest.raises(ProviderError) as raised:
        session(**data)
    assert raised.value.kind is ProviderErrorKind.INVALID


def test_capture_refund_and_cancel_are_checked_against_the_ledger():
    authorization = provider.authorize(session(), idempotency_key="auth")
    paid = payment_for(authorization.data)

    with pytest.raises(ProviderError):
        provider.capture(paid, amount=1001, idempotency_key="cap-too-much")
    provider.capture(paid, amount=600, idempotency_key="cap")
    provider.capture(paid, amount=600, idempotency_key="cap")  # replayed: nothing new
    with pytest.raises(ProviderError):
        provider.capture(paid, amount=100, idempotency_key="cap-again")
    provider.refund(paid, amount=400, reason=RefundReason.RETURN, idempotency_key="ref-1")
    with pytest.raises(ProviderError):
        provider.refund(paid, amount=201, reason=RefundReason.RETURN, idempotency_key="ref-2")
    with pytest.raises(ProviderError):
        provider.cancel(paid, idempotency_key="cancel")

    assert [(e.operation, e.amount) for e in ledger_entries(session_id="ps_1")] == [
        ("authorize", 1000),
        ("capture", 600),
        ("refund", 400),
    ]


def test_an_amount_change_or_a_deleted_session_voids_the_live_authorization():
    provider.authorize(session(1000), idempotency_key="auth-1000")

    provider.update_session(session(2000))
    assert LedgerEntry.objects.filter(operation="cancel", amount=1000).count() == 1
    provider.authorize(session(2000), idempotency_key="auth-2000")
    provider.delete_session(session(2000))

    assert LedgerEntry.objects.filter(operation="cancel").count() == 2
