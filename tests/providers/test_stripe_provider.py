"""The stripe provider against a fake Stripe: the real SDK, over real sockets."""

from __future__ import annotations

import json
import secrets
import socket
import time
from dataclasses import replace

import pytest
import stripe
from django.core.exceptions import ImproperlyConfigured

from providers.base import (
    PaymentInput,
    ProviderError,
    ProviderErrorKind,
    RefundReason,
    RemoteRefund,
    SessionInput,
    SessionResult,
    SessionStatus,
    VerifiedEvent,
)
from providers.registry import get_provider
from providers.stripe import StripeProvider
from tests.providers.stripe_fake import API_KEY, WEBHOOK_SECRET, FakeStripe, Fault

# A lost answer is only quick to provoke with a client that gives up quickly.
IMPATIENT_TIMEOUT_SECONDS = 0.3


def new_session(amount: int = 1000, currency: str = "usd") -> SessionInput:
    return SessionInput(
        session_id=f"ps_{secrets.token_hex(10)}",
        cart_id=f"cart_{secrets.token_hex(10)}",
        amount=amount,
        currency_code=currency,
    )


def stored(session: SessionInput, result: SessionResult) -> SessionInput:
    """The session as the service keeps it after a provider call."""
    return replace(session, data=dict(result.data))


def opened(provider: StripeProvider, amount: int = 1000, currency: str = "usd") -> SessionInput:
    session = new_session(amount, currency)
    return stored(
        session,
        provider.initiate_session(session, idempotency_key=f"{session.session_id}:initiate"),
    )


def authorized(
    provider: StripeProvider, server: FakeStripe, amount: int = 1000, currency: str = "usd"
) -> PaymentInput:
    session = opened(provider, amount, currency)
    server.customer_confirms(session.data["id"])
    result = provider.authorize(session, idempotency_key=f"{session.session_id}:authorize:0")
    assert result.status is SessionStatus.AUTHORIZED
    return PaymentInput(
        payment_id=f"pay_{secrets.token_hex(10)}",
        session_id=session.session_id,
        amount=result.amount,
        amount_captured=0,
        amount_refunded=0,
        currency_code=currency,
        data=dict(result.data),
    )


def captured(
    provider: StripeProvider, server: FakeStripe, amount: int = 1000, currency: str = "usd"
) -> PaymentInput:
    payment = authorized(provider, server, amount, currency)
    provider.capture(payment, amount=amount, idempotency_key=f"{payment.payment_id}:capture")
    return replace(payment, amount_captured=amount)


@pytest.fixture
def impatient_provider(stripe_server: FakeStripe, settings) -> StripeProvider:  # type: ignore[no-untyped-def]
    settings.STRIPE_TIMEOUT_SECONDS = IMPATIENT_TIMEOUT_SECONDS
    provider = get_provider("stripe")
    assert isinstance(provider, StripeProvider)
    return provider


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Sessions ------------------------------------------------------------------------------


def test_initiate_session_opens_a_manual_capture_intent_for_the_session(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = new_session(amount=1000)

    result = stripe_provider.initiate_session(
        session, idempotency_key=f"{session.session_id}:initiate"
    )

    [intent] = stripe_server.intents.values()
    assert intent["amount"] == 1000
    assert intent["currency"] == "usd"
    assert intent["capture_method"] == "manual"
    assert intent["metadata"] == {"cart_id": session.cart_id, "session_id": session.session_id}
    assert result.status is SessionStatus.PENDING
    assert result.data == {
        "id": intent["id"],
        "client_secret": intent["client_secret"],
        "status": "pending",
    }
    [request] = stripe_server.operations("payment_intents.create")
    assert request.idempotency_key == f"{session.session_id}:initiate"
    assert API_KEY not in json.dumps(result.data)


def test_initiate_session_repeated_after_a_lost_answer_opens_one_intent(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = new_session()
    stripe_server.fail_next("payment_intents.create", Fault.DROP)

    with pytest.raises(ProviderError) as lost:
        stripe_provider.initiate_session(session, idempotency_key=f"{session.session_id}:initiate")
    result = stripe_provider.initiate_session(
        session, idempotency_key=f"{session.session_id}:initiate"
    )

    assert lost.value.kind is ProviderErrorKind.UNAVAILABLE
    assert list(stripe_server.intents) == [result.data["id"]]


def test_update_session_changes_the_amount_of_an_open_intent(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = opened(stripe_provider, amount=1000)

    result = stripe_provider.update_session(replace(session, amount=2500))

    assert result.data["id"] == session.data["id"]
    assert stripe_server.intents[session.data["id"]]["amount"] == 2500
    assert result.status is SessionStatus.PENDING


def test_update_session_applies_every_amount_when_the_total_goes_back_and_forth(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = opened(stripe_provider, amount=1000)

    for amount in (2000, 1000, 2000, 1000, 2000):
        session = stored(session, stripe_provider.update_session(replace(session, amount=amount)))
        assert stripe_server.intents[session.data["id"]]["amount"] == amount


def test_update_session_to_the_same_amount_changes_nothing_at_stripe(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = opened(stripe_provider, amount=1000)

    result = stripe_provider.update_session(session)

    assert result.data["id"] == session.data["id"]
    assert stripe_server.operations("payment_intents.update") == []


def test_update_session_replaces_an_authorized_intent_and_releases_the_old_one(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = opened(stripe_provider, amount=1000)
    old_id = session.data["id"]
    stripe_server.customer_confirms(old_id)

    result = stripe_provider.update_session(replace(session, amount=1500))

    assert result.data["id"] != old_id
    assert stripe_server.intents[old_id]["status"] == "canceled"
    assert stripe_server.cancels == [old_id]
    assert stripe_server.intents[result.data["id"]]["amount"] == 1500
    assert result.status is SessionStatus.PENDING


def test_update_session_data_attaches_a_payment_method(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = opened(stripe_provider)

    result = stripe_provider.update_session_data(session, {"payment_method": "pm_card_visa"})

    intent = stripe_server.intents[session.data["id"]]
    assert intent["payment_method"] == "pm_card_visa"
    assert result.status is SessionStatus.PENDING  # the customer still confirms


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"amount": 1},
        {"payment_method": "pm_card_visa", "status": "authorized"},
        {"payment_method": 42},
        {"payment_method": "tok_visa"},
    ],
)
def test_update_session_data_refuses_anything_but_a_payment_method(
    stripe_provider: StripeProvider, stripe_server: FakeStripe, data: dict[str, object]
) -> None:
    session = opened(stripe_provider)

    with pytest.raises(ProviderError) as refused:
        stripe_provider.update_session_data(session, data)

    assert refused.value.kind is ProviderErrorKind.INVALID
    assert stripe_server.operations("payment_intents.update") == []


def test_delete_session_cancels_the_intent(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = opened(stripe_provider)

    stripe_provider.delete_session(session)

    assert stripe_server.cancels == [session.data["id"]]
    assert stripe_server.intents[session.data["id"]]["status"] == "canceled"


def test_delete_session_releases_an_authorized_intent(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = opened(stripe_provider)
    stripe_server.customer_confirms(session.data["id"])

    stripe_provider.delete_session(session)

    assert stripe_server.intents[session.data["id"]]["amount_capturable"] == 0
    assert stripe_server.cancels == [session.data["id"]]


def test_delete_session_leaves_a_finished_intent_alone(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = opened(stripe_provider)
    stripe_provider.delete_session(session)

    stripe_provider.delete_session(session)

    assert len(stripe_server.operations("payment_intents.cancel")) == 1


# Authorization -------------------------------------------------------------------------


def test_authorize_before_the_customer_confirms_is_pending(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = opened(stripe_provider)

    result = stripe_provider.authorize(session, idempotency_key="k")

    assert (result.status, result.amount) == (SessionStatus.PENDING, 0)


def test_authorize_after_the_customer_confirms_holds_the_amount(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = opened(stripe_provider, amount=1000)
    stripe_server.customer_confirms(session.data["id"])

    result = stripe_provider.authorize(session, idempotency_key="k")

    assert (result.status, result.amount) == (SessionStatus.AUTHORIZED, 1000)
    assert result.provider_reference == session.data["id"]
    assert result.data["id"] == session.data["id"]
    assert result.data["status"] == "authorized"


def test_authorize_during_3d_secure_requires_more_then_authorizes(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = opened(stripe_provider, amount=1000)
    stripe_server.fail_next("payment_intents.confirm", Fault.REQUIRES_ACTION)
    stripe_server.customer_confirms(session.data["id"])

    waiting = stripe_provider.authorize(session, idempotency_key="k")
    stripe_server.customer_confirms(session.data["id"])  # the customer passes the challenge
    done = stripe_provider.authorize(session, idempotency_key="k")

    assert (waiting.status, waiting.amount) == (SessionStatus.REQUIRES_MORE, 0)
    assert waiting.data["client_secret"] == session.data["client_secret"]
    assert (done.status, done.amount) == (SessionStatus.AUTHORIZED, 1000)


def test_a_declined_card_is_declined_and_another_card_can_still_pay(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = opened(stripe_provider)
    stripe_server.fail_next("payment_intents.confirm", Fault.DECLINE)
    answer = stripe_server.customer_confirms(session.data["id"])

    with pytest.raises(ProviderError) as declined:
        stripe_provider.authorize(session, idempotency_key="k")
    stripe_server.customer_confirms(session.data["id"], "pm_card_mastercard")
    retried = stripe_provider.authorize(session, idempotency_key="k")

    assert answer["error"]["code"] == "card_declined"
    assert declined.value.kind is ProviderErrorKind.DECLINED
    assert declined.value.data["decline_code"] == "generic_decline"
    assert retried.status is SessionStatus.AUTHORIZED


def test_authorize_a_canceled_intent_reports_it_canceled(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = opened(stripe_provider)
    stripe_provider.delete_session(session)

    result = stripe_provider.authorize(session, idempotency_key="k")

    assert (result.status, result.amount) == (SessionStatus.CANCELED, 0)


def test_authorize_refuses_an_intent_of_another_session(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = opened(stripe_provider)
    stripe_server.customer_confirms(session.data["id"])
    other = replace(new_session(), data=session.data)

    with pytest.raises(ProviderError) as refused:
        stripe_provider.authorize(other, idempotency_key="k")

    assert refused.value.kind is ProviderErrorKind.OTHER


def test_authorize_an_intent_stripe_does_not_know_is_an_error(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    session = replace(new_session(), data={"id": "pi_unknown", "status": "pending"})

    with pytest.raises(ProviderError) as failed:
        stripe_provider.authorize(session, idempotency_key="k")

    assert failed.value.kind is ProviderErrorKind.OTHER


# Capture, refund, cancel ---------------------------------------------------------------


def test_capture_takes_the_whole_authorization(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    payment = authorized(stripe_provider, stripe_server, amount=1000)

    result = stripe_provider.capture(payment, amount=1000, idempotency_key="cap-1")

    assert result.amount == 1000
    assert result.provider_reference == payment.data["id"]
    assert stripe_server.captures == [{"intent": payment.data["id"], "amount": 1000}]


def test_a_partial_capture_releases_the_rest(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    payment = authorized(stripe_provider, stripe_server, amount=1000)

    result = stripe_provider.capture(payment, amount=600, idempotency_key="cap-1")

    intent = stripe_server.intents[payment.data["id"]]
    assert result.amount == 600
    assert (intent["amount_received"], intent["amount_capturable"]) == (600, 0)


@pytest.mark.parametrize("fault", [Fault.HANG, Fault.DROP])
def test_capture_repeated_with_its_key_after_a_lost_answer_captures_once(
    impatient_provider: StripeProvider, stripe_server: FakeStripe, fault: Fault
) -> None:
    payment = authorized(impatient_provider, stripe_server, amount=1000)
    stripe_server.fail_next("payment_intents.capture", fault)

    with pytest.raises(ProviderError) as lost:
        impatient_provider.capture(payment, amount=600, idempotency_key="cap-1")
    result = impatient_provider.capture(payment, amount=600, idempotency_key="cap-1")

    assert lost.value.outcome_unknown
    assert result.amount == 600
    assert stripe_server.captures == [{"intent": payment.data["id"], "amount": 600}]


def test_several_partial_refunds_add_up_to_the_capture(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    payment = captured(stripe_provider, stripe_server, amount=1000)

    results = [
        stripe_provider.refund(
            payment, amount=amount, reason=RefundReason.RETURN, idempotency_key=f"ref-{n}"
        )
        for n, amount in enumerate((300, 200, 500))
    ]
    with pytest.raises(ProviderError) as exhausted:
        stripe_provider.refund(
            payment, amount=1, reason=RefundReason.OTHER, idempotency_key="ref-4"
        )

    assert [result.amount for result in results] == [300, 200, 500]
    assert [refund["amount"] for refund in stripe_server.refunds.values()] == [300, 200, 500]
    assert {result.provider_reference for result in results} == set(stripe_server.refunds)
    assert exhausted.value.kind is ProviderErrorKind.OTHER


def test_refund_more_than_captured_is_refused(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    payment = captured(stripe_provider, stripe_server, amount=1000)

    with pytest.raises(ProviderError) as refused:
        stripe_provider.refund(
            payment, amount=1001, reason=RefundReason.OTHER, idempotency_key="ref-1"
        )

    assert refused.value.kind is ProviderErrorKind.OTHER
    assert stripe_server.refunds == {}


@pytest.mark.parametrize(
    ("reason", "stripe_reason"),
    [
        (RefundReason.RETURN, "requested_by_customer"),
        (RefundReason.SWAP, "requested_by_customer"),
        (RefundReason.CLAIM, "requested_by_customer"),
        (RefundReason.DISCOUNT, None),
        (RefundReason.OTHER, None),
    ],
)
def test_refund_reasons_reach_stripe_in_its_terms_and_ours_in_metadata(
    stripe_provider: StripeProvider,
    stripe_server: FakeStripe,
    reason: RefundReason,
    stripe_reason: str | None,
) -> None:
    payment = captured(stripe_provider, stripe_server)

    stripe_provider.refund(payment, amount=100, reason=reason, idempotency_key="ref-1")

    [refund] = stripe_server.refunds.values()
    assert refund["reason"] == stripe_reason
    assert refund["metadata"] == {
        "reason": reason.value,
        "payment_id": payment.payment_id,
        "idempotency_key": "ref-1",
    }


@pytest.mark.parametrize("fault", [Fault.HANG, Fault.DROP])
def test_refund_repeated_with_its_key_after_a_lost_answer_refunds_once(
    impatient_provider: StripeProvider, stripe_server: FakeStripe, fault: Fault
) -> None:
    payment = captured(impatient_provider, stripe_server, amount=1000)
    stripe_server.fail_next("refunds.create", fault)

    with pytest.raises(ProviderError) as lost:
        impatient_provider.refund(
            payment, amount=400, reason=RefundReason.RETURN, idempotency_key="ref-1"
        )
    result = impatient_provider.refund(
        payment, amount=400, reason=RefundReason.RETURN, idempotency_key="ref-1"
    )

    assert lost.value.outcome_unknown
    assert [refund["id"] for refund in stripe_server.refunds.values()] == [
        result.provider_reference
    ]


def test_cancel_releases_the_authorization(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    payment = authorized(stripe_provider, stripe_server, amount=1000)

    result = stripe_provider.cancel(payment, idempotency_key="can-1")

    assert result.amount == 1000
    assert stripe_server.cancels == [payment.data["id"]]


def test_cancel_repeated_with_its_key_after_a_lost_answer_cancels_once(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    payment = authorized(stripe_provider, stripe_server)
    stripe_server.fail_next("payment_intents.cancel", Fault.DROP)

    with pytest.raises(ProviderError) as lost:
        stripe_provider.cancel(payment, idempotency_key="can-1")
    stripe_provider.cancel(payment, idempotency_key="can-1")

    assert lost.value.outcome_unknown
    assert stripe_server.cancels == [payment.data["id"]]


def test_cancel_of_an_intent_already_canceled_succeeds_without_releasing_twice(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    payment = authorized(stripe_provider, stripe_server)
    stripe_provider.cancel(payment, idempotency_key="can-1")

    again = stripe_provider.cancel(payment, idempotency_key="can-2")

    assert again.amount == 0
    assert stripe_server.cancels == [payment.data["id"]]


def test_cancel_of_a_captured_payment_is_refused(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    payment = captured(stripe_provider, stripe_server)

    with pytest.raises(ProviderError) as refused:
        stripe_provider.cancel(payment, idempotency_key="can-1")

    assert refused.value.kind is ProviderErrorKind.OTHER


# Errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        # Stripe documents a 5xx as indeterminate: the capture may have happened.
        (Fault.SERVER_ERROR, ProviderErrorKind.UNAVAILABLE),
        (Fault.DECLINE, ProviderErrorKind.DECLINED),
    ],
)
def test_stripe_error_answers_map_to_error_kinds(
    stripe_provider: StripeProvider,
    stripe_server: FakeStripe,
    fault: Fault,
    kind: ProviderErrorKind,
) -> None:
    payment = authorized(stripe_provider, stripe_server)
    stripe_server.fail_next("payment_intents.capture", fault)

    with pytest.raises(ProviderError) as failed:
        stripe_provider.capture(payment, amount=1000, idempotency_key="cap-1")

    assert failed.value.kind is kind
    assert stripe_server.captures == []


def test_a_key_reused_for_another_amount_is_refused_and_moves_nothing(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    payment = captured(stripe_provider, stripe_server, amount=1000)
    stripe_provider.refund(payment, amount=100, reason=RefundReason.OTHER, idempotency_key="r")

    with pytest.raises(ProviderError) as refused:
        stripe_provider.refund(payment, amount=200, reason=RefundReason.OTHER, idempotency_key="r")

    assert refused.value.kind is ProviderErrorKind.OTHER
    assert [refund["amount"] for refund in stripe_server.refunds.values()] == [100]


def test_stripe_out_of_reach_is_unavailable(stripe_server: FakeStripe, settings) -> None:  # type: ignore[no-untyped-def]
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{closed_port()}"

    with pytest.raises(ProviderError) as unreachable:
        get_provider("stripe").initiate_session(new_session(), idempotency_key="initiate-key")

    assert unreachable.value.kind is ProviderErrorKind.UNAVAILABLE


def test_a_wrong_api_key_is_refused(stripe_server: FakeStripe, settings) -> None:  # type: ignore[no-untyped-def]
    settings.STRIPE_API_KEY = "sk_test_wrong"

    with pytest.raises(ProviderError) as refused:
        get_provider("stripe").initiate_session(new_session(), idempotency_key="initiate-key")

    assert refused.value.kind is ProviderErrorKind.OTHER
    assert stripe_server.intents == {}


def test_no_api_key_is_a_configuration_error(stripe_server: FakeStripe, settings) -> None:  # type: ignore[no-untyped-def]
    settings.STRIPE_API_KEY = ""

    with pytest.raises(ImproperlyConfigured):
        get_provider("stripe").initiate_session(new_session(), idempotency_key="initiate-key")


# Currencies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "amount", "at_stripe"),
    [
        ("usd", 1234, 1234),  # cents
        ("eur", 1999, 1999),
        ("jpy", 1234, 1234),  # zero-decimal: yen
        ("kwd", 12340, 12340),  # three-decimal: fils, last digit 0
        ("isk", 500, 50000),  # zero-decimal in ISO, two-decimal in Stripe's API
    ],
)
def test_amounts_reach_stripe_in_its_minor_units_and_come_back_in_ours(
    stripe_provider: StripeProvider,
    stripe_server: FakeStripe,
    currency: str,
    amount: int,
    at_stripe: int,
) -> None:
    payment = authorized(stripe_provider, stripe_server, amount=amount, currency=currency)
    capture = stripe_provider.capture(payment, amount=amount, idempotency_key="cap-1")
    refund = stripe_provider.refund(
        payment, amount=amount, reason=RefundReason.RETURN, idempotency_key="ref-1"
    )

    intent = stripe_server.intents[payment.data["id"]]
    assert (intent["currency"], intent["amount"]) == (currency, at_stripe)
    assert stripe_server.captures[0]["amount"] == at_stripe
    assert [r["amount"] for r in stripe_server.refunds.values()] == [at_stripe]
    assert payment.amount == capture.amount == refund.amount == amount


def test_a_three_decimal_amount_stripe_cannot_take_is_refused_before_calling_it(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    with pytest.raises(ProviderError) as refused:
        stripe_provider.initiate_session(
            new_session(amount=12345, currency="kwd"), idempotency_key="kwd:initiate"
        )

    assert refused.value.kind is ProviderErrorKind.INVALID
    assert stripe_server.requests == []


# Webhooks ------------------------------------------------------------------------------


def signed(
    payload: dict[str, object], *, secret: str = WEBHOOK_SECRET, age: int = 0
) -> tuple[str, bytes]:
    """A body and its Stripe-Signature, made with the SDK's own signing helper."""
    body = json.dumps(payload)
    header = stripe.WebhookSignature.generate_signature_header(
        body, secret, timestamp=int(time.time()) - age
    )
    return header, body.encode()


EVENT = {
    "id": "evt_1",
    "object": "event",
    "type": "payment_intent.amount_capturable_updated",
    "data": {"object": {"id": "pi_1", "object": "payment_intent"}},
}


@pytest.mark.parametrize("header_name", ["Stripe-Signature", "stripe-signature"])
def test_a_signed_event_is_verified(stripe_provider: StripeProvider, header_name: str) -> None:
    header, body = signed(EVENT, age=290)

    event = stripe_provider.verify_webhook(headers={header_name: header}, body=body)

    assert (event.event_id, event.type) == ("evt_1", EVENT["type"])
    assert event.payload == EVENT


def test_an_event_signed_with_another_secret_is_refused(stripe_provider: StripeProvider) -> None:
    header, body = signed(EVENT, secret="whsec_someone_else")

    with pytest.raises(ProviderError) as refused:
        stripe_provider.verify_webhook(headers={"Stripe-Signature": header}, body=body)

    assert refused.value.kind is ProviderErrorKind.INVALID


def test_an_event_changed_after_signing_is_refused(stripe_provider: StripeProvider) -> None:
    header, body = signed(EVENT)
    tampered = body.replace(b"evt_1", b"evt_2")

    with pytest.raises(ProviderError) as refused:
        stripe_provider.verify_webhook(headers={"Stripe-Signature": header}, body=tampered)

    assert refused.value.kind is ProviderErrorKind.INVALID


def test_an_event_without_a_signature_is_refused(stripe_provider: StripeProvider) -> None:
    _, body = signed(EVENT)

    with pytest.raises(ProviderError) as refused:
        stripe_provider.verify_webhook(headers={}, body=body)

    assert refused.value.kind is ProviderErrorKind.INVALID


def test_a_signature_older_than_five_minutes_is_refused(stripe_provider: StripeProvider) -> None:
    header, body = signed(EVENT, age=301)

    with pytest.raises(ProviderError) as refused:
        stripe_provider.verify_webhook(headers={"Stripe-Signature": header}, body=body)

    assert refused.value.kind is ProviderErrorKind.INVALID


def test_a_signed_body_that_is_not_an_event_is_refused(stripe_provider: StripeProvider) -> None:
    header, body = signed({"object": "event"})

    with pytest.raises(ProviderError) as refused:
        stripe_provider.verify_webhook(headers={"Stripe-Signature": header}, body=body)

    assert refused.value.kind is ProviderErrorKind.INVALID


def test_webhooks_without_a_secret_are_a_configuration_error(  # type: ignore[no-untyped-def]
    stripe_provider: StripeProvider, settings
) -> None:
    header, body = signed(EVENT)
    settings.STRIPE_WEBHOOK_SECRET = ""

    with pytest.raises(ImproperlyConfigured):
        stripe_provider.verify_webhook(headers={"Stripe-Signature": header}, body=body)


def test_webhook_state_rereads_the_intent_and_its_refunds(
    stripe_provider: StripeProvider, stripe_server: FakeStripe
) -> None:
    payment = authorized(stripe_provider, stripe_server)
    intent_id = payment.data["id"]
    # A stale event (the intent was captured and refunded since) still yields today's state.
    stale = VerifiedEvent(
        event_id="evt_1",
        type="payment_intent.amount_capturable_updated",
        payload={"data": {"object": {"id": intent_id, "status": "requires_capture"}}},
    )
    stripe_provider.capture(payment, amount=600, idempotency_key="cap")
    refund = stripe_server.refund_outside(intent_id, 100)

    state = stripe_provider.webhook_state(stale)

    assert state is not None
    assert (state.session_id, state.status, state.provider_reference) == (
        payment.session_id,
        SessionStatus.AUTHORIZED,
        intent_id,
    )
    assert state.amount_captured == 600
    assert state.refunds == (RemoteRefund(provider_reference=refund["id"], amount=100),)
    charge_event = VerifiedEvent(
        event_id="evt_2",
        type="charge.refunded",
        payload={"data": {"object": {"payment_intent": intent_id}}},
    )
    assert stripe_provider.webhook_state(charge_event) == state
    assert stripe_provider.webhook_state(VerifiedEvent("evt_3", "customer.created", {})) is None
    stripe_provider.refund(
        payment, amount=50, reason=RefundReason.RETURN, idempotency_key="ref_ours"
    )
    ours = stripe_provider.webhook_state(stale).refunds  # type: ignore[union-attr]
    assert sorted(r.idempotency_key for r in ours) == ["", "ref_ours"]
