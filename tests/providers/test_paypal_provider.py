"""The paypal provider against a fake PayPal: real HTTP over real sockets, no mocks."""

from __future__ import annotations

import json
import secrets
import socket
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured

from providers.base import (
    OperationInput,
    OperationStatus,
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
from providers.paypal import PayPalProvider
from providers.paypal.amounts import from_paypal, to_paypal
from providers.registry import get_provider
from tests.providers.paypal_fake import (
    CLIENT_SECRET,
    WEBHOOK_ID,
    FakePayPal,
    Fault,
    event_body,
    sign_event,
)


def new_session(amount: int = 1000, currency: str = "usd", **fields: str) -> SessionInput:
    return SessionInput(
        session_id=f"ps_{secrets.token_hex(10)}",
        cart_id=f"cart_{secrets.token_hex(10)}",
        amount=amount,
        currency_code=currency,
        **fields,  # type: ignore[arg-type]
    )


def stored(session: SessionInput, result: SessionResult) -> SessionInput:
    """The session as the service keeps it after a provider call."""
    return replace(session, data={**session.data, **result.data})


def opened(provider: PayPalProvider, amount: int = 1000, currency: str = "usd") -> SessionInput:
    session = new_session(amount, currency)
    return stored(
        session, provider.initiate_session(session, idempotency_key=f"{session.session_id}:init")
    )


def authorized(
    provider: PayPalProvider, server: FakePayPal, amount: int = 1000, currency: str = "usd"
) -> PaymentInput:
    session = opened(provider, amount, currency)
    server.buyer_approves(session.data["order_id"])
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
    provider: PayPalProvider, server: FakePayPal, amount: int = 1000, currency: str = "usd"
) -> PaymentInput:
    payment = authorized(provider, server, amount, currency)
    result = provider.capture(payment, amount=amount, idempotency_key=f"{payment.payment_id}:c")
    return replace(payment, amount_captured=amount, data={**payment.data, **result.data})


def delivered(provider: PayPalProvider, event_type: str, resource: dict) -> VerifiedEvent:  # type: ignore[type-arg]
    body = event_body(event_type, resource)
    return provider.verify_webhook(headers=sign_event(body), body=body)


@pytest.fixture
def impatient_provider(paypal_server: FakePayPal, settings) -> PayPalProvider:  # type: ignore[no-untyped-def]
    # A lost answer is only quick to provoke with a client that gives up quickly.
    settings.PAYPAL_TIMEOUT_SECONDS = 0.3
    provider = get_provider("paypal")
    assert isinstance(provider, PayPalProvider)
    return provider


# Amounts and currencies ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "value"),
    [
        (1999, "usd", "19.99"),
        (5, "eur", "0.05"),
        (100000, "gbp", "1000.00"),
        (1500, "jpy", "1500"),
        (1500, "huf", "1500"),
        (150000, "twd", "1500"),  # TWD is in hundredths for us, whole dollars for PayPal
    ],
)
def test_amounts_are_decimal_strings_in_paypals_rules_and_read_back_exactly(
    amount: int, currency: str, value: str
) -> None:
    money = to_paypal(amount, currency)

    assert money == {"currency_code": currency.upper(), "value": value}
    assert from_paypal(money, currency) == amount


def test_an_amount_paypal_cannot_take_whole_is_refused_not_rounded() -> None:
    with pytest.raises(ProviderError) as refused:
        to_paypal(150050, "twd")

    assert refused.value.kind is ProviderErrorKind.INVALID


def test_an_answer_in_another_currency_or_malformed_is_not_taken_for_an_amount() -> None:
    for money in (
        {"currency_code": "EUR", "value": "1.00"},
        {"currency_code": "USD", "value": "x"},
    ):
        with pytest.raises(ProviderError):
            from_paypal(money, "usd")


def test_paypal_declares_its_currencies_and_a_29_day_authorization(db) -> None:  # type: ignore[no-untyped-def]
    provider = PayPalProvider()

    assert provider.unavailable_reason(currency_code="usd", countries=()) == ""
    assert provider.unavailable_reason(currency_code="JPY", countries=()) == ""
    assert "KWD" in provider.unavailable_reason(currency_code="kwd", countries=())
    assert provider.authorization_lifetime == timedelta(days=29)


# Sessions -----------------------------------------------------------------------------


def test_initiate_session_creates_an_authorize_order_for_the_session_with_its_approve_link(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    session = new_session(amount=3000)

    result = paypal_provider.initiate_session(session, idempotency_key=f"{session.session_id}:i")

    [order] = paypal_server.orders.values()
    unit = order["purchase_units"][0]
    assert order["intent"] == "AUTHORIZE"
    assert (unit["custom_id"], unit["reference_id"]) == (session.session_id, session.cart_id)
    assert unit["amount"] == {"currency_code": "USD", "value": "30.00"}
    assert result.data == {"order_id": order["id"], "status": "CREATED"}
    assert result.status is SessionStatus.PENDING
    assert result.next_action is not None and result.next_action.type == "redirect"
    assert result.next_action.url == f"{paypal_server.url}/checkoutnow?token={order['id']}"
    [request] = paypal_server.operations("orders.create")
    assert request.request_id == f"{session.session_id}:i"
    assert CLIENT_SECRET not in json.dumps(result.data)


def test_initiate_session_passes_the_storefronts_return_and_cancel_urls(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    session = new_session(
        return_url="https://shop.example/paid", cancel_url="https://shop.example/cart"
    )

    result = paypal_provider.initiate_session(session, idempotency_key=f"{session.session_id}:i")

    [order] = paypal_server.orders.values()
    context = order["payment_source"]["paypal"]["experience_context"]
    assert (context["return_url"], context["cancel_url"]) == (
        "https://shop.example/paid",
        "https://shop.example/cart",
    )
    # PayPal's link for such an order is `payer-action`; it is the redirect all the same.
    assert result.data["status"] == "PAYER_ACTION_REQUIRED"
    assert result.next_action is not None and order["id"] in result.next_action.url


def test_initiate_session_repeated_after_a_lost_answer_creates_one_order(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    session = new_session()
    paypal_server.fail_next("orders.create", Fault.DROP)

    with pytest.raises(ProviderError) as lost:
        paypal_provider.initiate_session(session, idempotency_key=f"{session.session_id}:i")
    result = paypal_provider.initiate_session(session, idempotency_key=f"{session.session_id}:i")

    assert lost.value.kind is ProviderErrorKind.UNAVAILABLE
    assert list(paypal_server.orders) == [result.data["order_id"]]


def test_update_session_patches_the_amount_of_an_open_order(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    session = opened(paypal_provider, amount=1000)

    result = paypal_provider.update_session(replace(session, amount=2550))

    order = paypal_server.orders[session.data["order_id"]]
    assert order["purchase_units"][0]["amount"]["value"] == "25.50"
    assert result.data["order_id"] == order["id"]
    assert result.next_action is not None  # the buyer has still to approve


def test_update_session_keeps_the_buyers_approval_when_the_amount_changes(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    session = opened(paypal_provider, amount=1000)
    paypal_server.buyer_approves(session.data["order_id"])

    result = paypal_provider.update_session(replace(session, amount=1200))

    assert result.data == {"order_id": session.data["order_id"], "status": "APPROVED"}
    assert result.next_action is None


def test_update_session_to_the_same_amount_changes_nothing_at_paypal(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    session = opened(paypal_provider, amount=1000)

    paypal_provider.update_session(session)

    assert paypal_server.operations("orders.patch") == []


def test_update_session_of_an_authorized_order_voids_it_and_opens_a_new_order(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    session = opened(paypal_provider, amount=1000)
    old = paypal_server.orders[session.data["order_id"]]
    paypal_server.buyer_approves(old["id"])
    held = paypal_provider.authorize(session, idempotency_key=f"{session.session_id}:a:0")
    session = replace(stored(session, held), amount=1500)

    result = paypal_provider.update_session(session)

    assert paypal_server.authorizations[held.data["authorization_id"]]["status"] == "VOIDED"
    new = paypal_server.orders[result.data["order_id"]]
    assert new["id"] != old["id"] and new["purchase_units"][0]["amount"]["value"] == "15.00"
    assert result.status is SessionStatus.PENDING and result.next_action is not None


def test_delete_session_voids_a_held_authorization_and_leaves_an_unapproved_order_alone(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    payment = authorized(paypal_provider, paypal_server)
    unapproved = opened(paypal_provider)

    paypal_provider.delete_session(replace(new_session(), data=payment.data))
    paypal_provider.delete_session(unapproved)

    assert paypal_server.authorizations[payment.data["authorization_id"]]["status"] == "VOIDED"
    assert len(paypal_server.operations("authorizations.void")) == 1


# Authorization ------------------------------------------------------------------------


def test_authorize_before_the_buyer_approved_requires_more_with_the_approve_redirect(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    session = opened(paypal_provider)

    result = paypal_provider.authorize(session, idempotency_key=f"{session.session_id}:a:0")

    assert result.status is SessionStatus.REQUIRES_MORE
    assert result.amount == 0
    assert result.next_action is not None
    assert result.next_action.url.endswith(f"token={session.data['order_id']}")
    assert paypal_server.authorizations == {}


def test_authorize_after_approval_holds_the_amount_for_29_days(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    session = opened(paypal_provider, amount=4999)
    paypal_server.buyer_approves(session.data["order_id"])

    result = paypal_provider.authorize(session, idempotency_key=f"{session.session_id}:a:0")

    [authorization] = paypal_server.authorizations.values()
    assert result.status is SessionStatus.AUTHORIZED
    assert result.amount == 4999
    assert result.data == {
        "order_id": session.data["order_id"],
        "status": "COMPLETED",
        "authorization_id": authorization["id"],
    }
    assert result.provider_reference == authorization["id"]
    assert result.expires_at is not None
    assert abs(result.expires_at - (datetime.now(UTC) + timedelta(days=29))) < timedelta(minutes=1)
    [request] = paypal_server.operations("orders.authorize")
    assert request.request_id == f"{session.session_id}:a:0"


def test_a_declined_funding_source_is_declined_with_the_approve_page_again(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    session = opened(paypal_provider)
    paypal_server.buyer_approves(session.data["order_id"], funding="declined")

    with pytest.raises(ProviderError) as declined:
        paypal_provider.authorize(session, idempotency_key=f"{session.session_id}:a:0")
    paypal_server.buyer_approves(session.data["order_id"])
    result = paypal_provider.authorize(session, idempotency_key=f"{session.session_id}:a:1")

    assert declined.value.kind is ProviderErrorKind.DECLINED
    assert declined.value.data["issue"] == "INSTRUMENT_DECLINED"
    assert declined.value.next_action is not None
    assert declined.value.next_action.url.endswith(f"token={session.data['order_id']}")
    assert result.status is SessionStatus.AUTHORIZED
    assert len(paypal_server.authorizations) == 1


def test_a_lost_authorize_answer_retried_with_the_same_key_authorizes_once(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    session = opened(paypal_provider)
    paypal_server.buyer_approves(session.data["order_id"])
    paypal_server.fail_next("orders.authorize", Fault.DROP)

    with pytest.raises(ProviderError) as lost:
        paypal_provider.authorize(session, idempotency_key=f"{session.session_id}:a:0")
    result = paypal_provider.authorize(session, idempotency_key=f"{session.session_id}:a:0")

    assert lost.value.kind is ProviderErrorKind.UNAVAILABLE
    assert [result.data["authorization_id"]] == list(paypal_server.authorizations)


def test_authorize_under_another_key_reads_the_one_authorization_paypal_holds(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    session = opened(paypal_provider)
    paypal_server.buyer_approves(session.data["order_id"])
    first = paypal_provider.authorize(session, idempotency_key=f"{session.session_id}:a:0")

    again = paypal_provider.authorize(session, idempotency_key=f"{session.session_id}:a:1")

    assert again.status is SessionStatus.AUTHORIZED
    assert again.data["authorization_id"] == first.data["authorization_id"]
    assert len(paypal_server.authorizations) == 1


def test_an_order_of_another_session_is_never_taken_for_this_ones(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    theirs = opened(paypal_provider)
    paypal_server.buyer_approves(theirs.data["order_id"])
    mine = replace(new_session(), data=theirs.data)

    with pytest.raises(ProviderError) as refused:
        paypal_provider.authorize(mine, idempotency_key=f"{mine.session_id}:a:0")

    assert refused.value.kind is ProviderErrorKind.OTHER


# Capture, refund, void ----------------------------------------------------------------


def test_capture_is_final_and_keeps_the_capture_id_for_refunds(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    payment = authorized(paypal_provider, paypal_server, amount=3000)

    result = paypal_provider.capture(payment, amount=2000, idempotency_key="pay_1:capture:0")

    [capture] = paypal_server.captures.values()
    assert capture["amount"] == {"currency_code": "USD", "value": "20.00"}
    assert capture["final_capture"] is True
    assert result.status is OperationStatus.SUCCEEDED
    assert (result.amount, result.provider_reference) == (2000, capture["id"])
    assert result.data == {"capture_id": capture["id"], "capture_status": "COMPLETED"}
    [request] = paypal_server.operations("authorizations.capture")
    assert request.request_id == "pay_1:capture:0"


def test_a_pending_capture_settles_by_re_reading_it(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    payment = authorized(paypal_provider, paypal_server, amount=3000)
    paypal_server.fail_next("authorizations.capture", Fault.PENDING)

    taken = paypal_provider.capture(payment, amount=3000, idempotency_key="pay_2:capture:0")
    asked = OperationInput(
        type="capture",
        amount=3000,
        idempotency_key="pay_2:capture:0",
        provider_reference=taken.provider_reference,
    )
    still = paypal_provider.operation_status(payment, asked)
    paypal_server.settle(taken.provider_reference)
    settled = paypal_provider.operation_status(payment, asked)

    assert taken.status is OperationStatus.PENDING
    assert still.status is OperationStatus.PENDING
    assert settled.status is OperationStatus.SUCCEEDED
    assert settled.amount == 3000
    assert settled.data["capture_id"] == taken.provider_reference


def test_a_pending_capture_paypal_denies_settles_as_failed(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    payment = authorized(paypal_provider, paypal_server)
    paypal_server.fail_next("authorizations.capture", Fault.PENDING)
    taken = paypal_provider.capture(payment, amount=1000, idempotency_key="pay_3:capture:0")
    paypal_server.settle(taken.provider_reference, "DECLINED")

    settled = paypal_provider.operation_status(
        payment,
        OperationInput(
            type="capture",
            amount=1000,
            idempotency_key="pay_3:capture:0",
            provider_reference=taken.provider_reference,
        ),
    )

    assert settled.status is OperationStatus.FAILED


def test_refund_names_the_capture_and_a_lost_answer_retried_refunds_once(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    payment = captured(paypal_provider, paypal_server, amount=3000)
    paypal_server.fail_next("captures.refund", Fault.DROP)

    with pytest.raises(ProviderError) as lost:
        paypal_provider.refund(
            payment, amount=500, reason=RefundReason.RETURN, idempotency_key="ref_1"
        )
    result = paypal_provider.refund(
        payment, amount=500, reason=RefundReason.RETURN, idempotency_key="ref_1"
    )

    assert lost.value.kind is ProviderErrorKind.UNAVAILABLE
    [refund] = paypal_server.refunds.values()
    assert refund["amount"]["value"] == "5.00" and refund["custom_id"] == "ref_1"
    assert (result.amount, result.provider_reference) == (500, refund["id"])
    assert {r.path for r in paypal_server.operations("captures.refund")} == {
        f"/v2/payments/captures/{payment.data['capture_id']}/refund"
    }


def test_refund_finds_the_capture_at_paypal_when_the_payment_does_not_keep_it(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    payment = captured(paypal_provider, paypal_server, amount=3000)
    data = {key: value for key, value in payment.data.items() if key != "capture_id"}

    result = paypal_provider.refund(
        replace(payment, data=data), amount=3000, reason=RefundReason.OTHER, idempotency_key="r2"
    )

    assert result.amount == 3000
    assert [r["amount"]["value"] for r in paypal_server.refunds.values()] == ["30.00"]


def test_refunding_more_than_was_captured_is_a_definitive_refusal(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    payment = captured(paypal_provider, paypal_server, amount=1000)

    with pytest.raises(ProviderError) as refused:
        paypal_provider.refund(
            payment, amount=1001, reason=RefundReason.OTHER, idempotency_key="ref_over"
        )

    assert refused.value.kind is ProviderErrorKind.OTHER
    assert refused.value.data["issue"] == "REFUND_AMOUNT_EXCEEDED"
    assert refused.value.request_id  # PayPal-Debug-Id, kept for the ledger
    assert paypal_server.refunds == {}


def test_a_pending_refund_settles_by_re_reading_it(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    payment = captured(paypal_provider, paypal_server, amount=1000)
    paypal_server.fail_next("captures.refund", Fault.PENDING)
    taken = paypal_provider.refund(
        payment, amount=1000, reason=RefundReason.OTHER, idempotency_key="ref_p"
    )
    paypal_server.settle(taken.provider_reference)

    settled = paypal_provider.operation_status(
        payment,
        OperationInput(
            type="refund",
            amount=1000,
            idempotency_key="ref_p",
            provider_reference=taken.provider_reference,
        ),
    )

    assert taken.status is OperationStatus.PENDING
    assert (settled.status, settled.amount) == (OperationStatus.SUCCEEDED, 1000)


def test_cancel_voids_the_authorization_and_a_second_void_is_the_same_outcome(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    payment = authorized(paypal_provider, paypal_server, amount=2500)

    first = paypal_provider.cancel(payment, idempotency_key="pay_4:cancel:0")
    again = paypal_provider.cancel(payment, idempotency_key="pay_4:cancel:1")

    assert paypal_server.authorizations[payment.data["authorization_id"]]["status"] == "VOIDED"
    assert first.amount == again.amount == 2500
    assert first.provider_reference == payment.data["authorization_id"]


def test_cancel_after_a_capture_is_refused(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    payment = captured(paypal_provider, paypal_server)

    with pytest.raises(ProviderError) as refused:
        paypal_provider.cancel(payment, idempotency_key="pay_5:cancel:0")

    assert refused.value.kind is ProviderErrorKind.OTHER


# Failures and the client --------------------------------------------------------------


def test_a_server_error_is_an_unknown_outcome(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    payment = authorized(paypal_provider, paypal_server)
    paypal_server.fail_next("authorizations.capture", Fault.SERVER_ERROR)

    with pytest.raises(ProviderError) as failed:
        paypal_provider.capture(payment, amount=1000, idempotency_key="pay_6:capture:0")

    assert failed.value.kind is ProviderErrorKind.UNAVAILABLE
    assert failed.value.data["name"] == "INTERNAL_SERVER_ERROR"
    assert paypal_server.captures == {}


def test_a_slow_paypal_times_out_as_an_unknown_outcome_and_the_retry_finds_its_capture(
    impatient_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    payment = authorized(impatient_provider, paypal_server)
    paypal_server.fail_next("authorizations.capture", Fault.DELAY, seconds=1.0)

    with pytest.raises(ProviderError) as slow:
        impatient_provider.capture(payment, amount=1000, idempotency_key="pay_7:capture:0")
    result = impatient_provider.capture(payment, amount=1000, idempotency_key="pay_7:capture:0")

    assert slow.value.kind is ProviderErrorKind.UNAVAILABLE
    assert [result.provider_reference] == list(paypal_server.captures)


def test_the_token_is_fetched_once_and_reused_until_it_expires(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    for _ in range(3):
        opened(paypal_provider)
    assert paypal_server.tokens_issued == 1

    paypal_server.token_lifetime = 1  # the next token lasts a second
    paypal_server.revoke_tokens()
    opened(paypal_provider)
    opened(paypal_provider)
    assert paypal_server.tokens_issued == 2  # the revoked one was replaced once

    time.sleep(1.0)
    opened(paypal_provider)
    assert paypal_server.tokens_issued == 3  # lapsed: a new one before the call, not after
    assert len(paypal_server.operations("orders.create")) == 6


def test_wrong_credentials_are_a_definitive_error(paypal_server: FakePayPal, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PAYPAL_CLIENT_SECRET = "not-the-secret"
    provider = get_provider("paypal")

    with pytest.raises(ProviderError) as refused:
        opened(provider)  # type: ignore[arg-type]

    assert refused.value.kind is ProviderErrorKind.OTHER
    assert paypal_server.orders == {}


def test_an_unreachable_paypal_is_an_unknown_outcome(paypal_server: FakePayPal, settings) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.PAYPAL_API_BASE = f"http://127.0.0.1:{closed_port}"
    provider = get_provider("paypal")

    with pytest.raises(ProviderError) as unreachable:
        opened(provider)  # type: ignore[arg-type]

    assert unreachable.value.kind is ProviderErrorKind.UNAVAILABLE


def test_missing_credentials_fail_loudly(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PAYPAL_CLIENT_ID = ""

    with pytest.raises(ImproperlyConfigured):
        PayPalProvider().client  # noqa: B018 (building the client is what is tested)


# Webhooks -----------------------------------------------------------------------------


def test_a_signed_event_is_verified_by_asking_paypal(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    body = event_body("CHECKOUT.ORDER.APPROVED", {"id": "5O190127TN364715T"}, event_id="WH-1")

    event = paypal_provider.verify_webhook(headers=sign_event(body), body=body)

    assert (event.event_id, event.type) == ("WH-1", "CHECKOUT.ORDER.APPROVED")
    [request] = paypal_server.operations("webhooks.verify")
    assert request.body["webhook_id"] == "WH-FAKE-0123456789"
    assert request.body["webhook_event"] == json.loads(body)


@pytest.mark.parametrize(
    "tamper",
    [
        "forged_signature",
        "missing_header",
        "other_webhook",
        "changed_body",
    ],
)
def test_a_forged_or_unsigned_event_is_invalid(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal, tamper: str
) -> None:
    body = event_body("CHECKOUT.ORDER.APPROVED", {"id": "5O190127TN364715T"})
    headers = sign_event(
        body, webhook_id="WH-SOMEONE-ELSE" if tamper == "other_webhook" else WEBHOOK_ID
    )
    if tamper == "forged_signature":
        headers["PAYPAL-TRANSMISSION-SIG"] = "Zm9yZ2Vk"
    elif tamper == "missing_header":
        del headers["PAYPAL-CERT-URL"]
    else:
        body = body.replace(b"5O190127TN364715T", b"9X999999XX999999X")

    with pytest.raises(ProviderError) as refused:
        paypal_provider.verify_webhook(headers=headers, body=body)

    assert refused.value.kind is ProviderErrorKind.INVALID
    # A delivery without the headers never reaches PayPal at all.
    assert len(paypal_server.operations("webhooks.verify")) == (tamper != "missing_header")


def test_a_body_that_is_not_a_paypal_event_is_invalid(paypal_provider: PayPalProvider) -> None:
    body = b'{"id": "WH-1", "type": "payment_intent.succeeded", "data": {}}'

    with pytest.raises(ProviderError) as refused:
        paypal_provider.verify_webhook(headers=sign_event(body), body=body)

    assert refused.value.kind is ProviderErrorKind.INVALID


def test_an_approval_event_is_read_from_the_order_at_paypal_not_from_its_body(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    session = opened(paypal_provider)
    order_id = session.data["order_id"]
    paypal_server.buyer_approves(order_id)
    # The body claims another session and an amount: only the order's id is used.
    forged = {"id": order_id, "purchase_units": [{"custom_id": "ps_other", "amount": {}}]}

    state = paypal_provider.webhook_state(
        delivered(paypal_provider, "CHECKOUT.ORDER.APPROVED", forged)
    )

    assert state is not None
    assert (state.session_id, state.cart_id) == (session.session_id, session.cart_id)
    assert state.customer_approved is True
    assert state.status is SessionStatus.PENDING
    assert state.provider_reference == order_id


def test_capture_refund_and_void_events_re_read_the_order_they_belong_to(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    payment = captured(paypal_provider, paypal_server, amount=3000)
    capture_id = payment.data["capture_id"]
    ours = paypal_provider.refund(
        payment, amount=500, reason=RefundReason.OTHER, idempotency_key="ref_ours"
    )
    dashboard = paypal_server.refund_outside(capture_id, "2.00")

    on_capture = paypal_provider.webhook_state(
        delivered(paypal_provider, "PAYMENT.CAPTURE.COMPLETED", {"id": capture_id})
    )
    on_refund = paypal_provider.webhook_state(
        delivered(paypal_provider, "PAYMENT.CAPTURE.REFUNDED", {"id": dashboard["id"]})
    )

    assert on_capture == on_refund
    assert on_capture is not None
    assert on_capture.session_id == payment.session_id
    assert (on_capture.status, on_capture.amount_captured) == (SessionStatus.AUTHORIZED, 3000)
    assert on_capture.refunds == (
        RemoteRefund(
            provider_reference=ours.provider_reference, amount=500, idempotency_key="ref_ours"
        ),
        RemoteRefund(provider_reference=dashboard["id"], amount=200, idempotency_key=""),
    )


def test_a_voided_authorization_event_reads_as_canceled(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    payment = authorized(paypal_provider, paypal_server)
    paypal_provider.cancel(payment, idempotency_key="pay_8:cancel:0")

    state = paypal_provider.webhook_state(
        delivered(
            paypal_provider,
            "PAYMENT.AUTHORIZATION.VOIDED",
            {"id": payment.data["authorization_id"], "status": "CREATED"},
        )
    )

    assert state is not None and state.status is SessionStatus.CANCELED


def test_events_about_nothing_of_ours_are_ignored(
    paypal_provider: PayPalProvider, paypal_server: FakePayPal
) -> None:
    unknown = delivered(paypal_provider, "CHECKOUT.ORDER.APPROVED", {"id": "1AB23456CD789012E"})
    unrelated = VerifiedEvent(
        event_id="WH-2", type="BILLING.SUBSCRIPTION.CREATED", payload={"resource": {"id": "I-1"}}
    )

    assert paypal_provider.webhook_state(unknown) is None
    assert paypal_provider.webhook_state(unrelated) is None
