"""The klarna provider against a fake Klarna: our httpx client, over real sockets."""

from __future__ import annotations

import json
import secrets
import socket
from dataclasses import replace

import pytest

from providers.base import (
    NextAction,
    PaymentInput,
    ProviderError,
    ProviderErrorKind,
    PurchaseLine,
    RefundReason,
    SessionInput,
    SessionResult,
    SessionStatus,
)
from providers.klarna import KlarnaProvider
from providers.klarna.client import klarna_idempotency_key
from providers.registry import get_provider
from tests.providers.klarna_fake import FakeKlarna, Fault

# A lost answer is only quick to provoke with a client that gives up quickly.
IMPATIENT_TIMEOUT_SECONDS = 0.3


def new_session(
    lines: tuple[tuple[int, int], ...] = ((2, 1500),),
    *,
    amount: int | None = None,
    currency: str = "sek",
    country: str = "se",
) -> SessionInput:
    """A session for lines of (quantity, unit price); the amount is their sum unless said."""
    purchase = tuple(
        PurchaseLine(
            reference=f"prod_{n}", title=f"Product {n}", quantity=q, unit_price=p, total=q * p
        )
        for n, (q, p) in enumerate(lines)
    )
    return SessionInput(
        session_id=f"ps_{secrets.token_hex(10)}",
        cart_id=f"cart_{secrets.token_hex(10)}",
        amount=sum(line.total for line in purchase) if amount is None else amount,
        currency_code=currency,
        country=country,
        lines=purchase,
    )


def stored(session: SessionInput, result: SessionResult) -> SessionInput:
    """The session as the service keeps it after a provider call."""
    return replace(session, data=dict(result.data))


def opened(provider: KlarnaProvider, session: SessionInput | None = None) -> SessionInput:
    session = session or new_session()
    result = provider.initiate_session(session, idempotency_key=f"{session.session_id}:initiate")
    return stored(session, result)


def with_token(provider: KlarnaProvider, session: SessionInput, token: str) -> SessionInput:
    return stored(session, provider.update_session_data(session, {"authorization_token": token}))


def authorized(
    provider: KlarnaProvider, server: FakeKlarna, *, fraud_status: str = "ACCEPTED"
) -> PaymentInput:
    session = opened(provider)
    token = server.customer_authorizes(session.data["session_id"], fraud_status=fraud_status)
    session = with_token(provider, session, token)
    result = provider.authorize(session, idempotency_key=f"{session.session_id}:authorize:0")
    assert result.status is SessionStatus.AUTHORIZED
    return PaymentInput(
        payment_id=f"pay_{secrets.token_hex(10)}",
        session_id=session.session_id,
        amount=result.amount,
        amount_captured=0,
        amount_refunded=0,
        currency_code=session.currency_code,
        data=dict(result.data),
    )


def captured(provider: KlarnaProvider, server: FakeKlarna, amount: int = 3000) -> PaymentInput:
    payment = authorized(provider, server)
    provider.capture(payment, amount=amount, idempotency_key=f"{payment.payment_id}:capture:0")
    return replace(payment, amount_captured=amount)


@pytest.fixture
def impatient_provider(klarna_server: FakeKlarna, settings) -> KlarnaProvider:  # type: ignore[no-untyped-def]
    settings.KLARNA_TIMEOUT_SECONDS = IMPATIENT_TIMEOUT_SECONDS
    provider = get_provider("klarna")
    assert isinstance(provider, KlarnaProvider)
    return provider


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Markets -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "countries", "available"),
    [
        ("sek", ("se",), True),
        ("eur", ("de", "se"), True),  # the first country is the purchase country
        ("usd", ("us",), True),
        ("sek", (), False),  # Klarna needs a purchase country
        ("jpy", ("jp",), False),  # neither currency nor country is Klarna's
        ("eur", ("se",), False),  # Klarna sells in Sweden in SEK only
        ("sek", ("br",), False),
    ],
)
def test_klarna_is_offered_only_where_it_sells_in_that_currency(currency, countries, available):  # type: ignore[no-untyped-def]
    reason = KlarnaProvider().unavailable_reason(currency_code=currency, countries=countries)

    assert (reason == "") is available
    assert KlarnaProvider.needs_purchase_country is True
    assert KlarnaProvider.authorization_lifetime is not None
    assert KlarnaProvider.authorization_lifetime.days == 28


# Sessions ----------------------------------------------------------------------------


def test_initiate_session_opens_a_klarna_session_with_the_carts_lines_and_country(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    session = new_session(((2, 1500), (1, 999)))

    result = klarna_provider.initiate_session(
        session, idempotency_key=f"{session.session_id}:initiate"
    )

    [remote] = klarna_server.sessions.values()
    assert (remote["purchase_country"], remote["purchase_currency"]) == ("SE", "SEK")
    assert (remote["locale"], remote["order_amount"], remote["order_tax_amount"]) == (
        "en-SE",
        3999,
        0,
    )
    assert [
        (line["name"], line["quantity"], line["total_amount"]) for line in remote["order_lines"]
    ] == [
        ("Product 0", 2, 3000),
        ("Product 1", 1, 999),
    ]
    assert (remote["merchant_reference1"], remote["merchant_reference2"]) == (
        session.cart_id,
        session.session_id,
    )
    assert result.status is SessionStatus.PENDING
    assert result.data["session_id"] == remote["session_id"]
    assert result.data["payment_method_categories"][0]["identifier"] == "klarna"
    assert result.next_action == NextAction.klarna_widget(remote["client_token"])
    assert result.next_action.as_json() == {
        "type": "klarna_widget",
        "client_token": remote["client_token"],
    }
    assert "password" not in json.dumps(result.data)


def test_lines_that_do_not_add_up_to_the_amount_get_an_adjustment_line(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    # A swap cart's difference, say: Klarna refuses lines whose sum is not the amount.
    session = new_session(((2, 1500),), amount=1800)

    opened(klarna_provider, session)

    [remote] = klarna_server.sessions.values()
    assert remote["order_amount"] == 1800
    assert [(line["type"], line["total_amount"]) for line in remote["order_lines"]] == [
        ("physical", 3000),
        ("discount", -1200),
    ]


def test_a_region_without_a_klarna_country_is_refused_before_klarna_is_asked(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    session = new_session(country="")

    with pytest.raises(ProviderError) as refused:
        klarna_provider.initiate_session(session, idempotency_key="k")

    assert refused.value.kind is ProviderErrorKind.INVALID
    assert klarna_server.requests == []


def test_update_session_sends_the_new_cart_and_releases_a_token_given_for_the_old_one(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    session = opened(klarna_provider)
    token = klarna_server.customer_authorizes(session.data["session_id"])
    session = with_token(klarna_provider, session, token)
    grown = new_session(((3, 1500),))

    result = klarna_provider.update_session(
        replace(session, amount=grown.amount, lines=grown.lines)
    )

    remote = klarna_server.sessions[session.data["session_id"]]
    assert (remote["order_amount"], remote["order_lines"][0]["quantity"]) == (4500, 3)
    assert "authorization_token" not in result.data
    assert result.data["session_id"] == session.data["session_id"]
    assert result.next_action == NextAction.klarna_widget(remote["client_token"])
    [released] = klarna_server.operations("authorizations.cancel")
    assert released.path.endswith(token)
    # The old token cannot make an order any more.
    with pytest.raises(ProviderError) as stale:
        klarna_provider.authorize(session, idempotency_key="stale")
    assert stale.value.kind is ProviderErrorKind.DECLINED


def test_update_session_opens_a_new_klarna_session_when_the_old_one_expired(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    session = opened(klarna_provider)
    klarna_server.sessions.clear()  # Klarna forgets a session after 48 hours

    result = klarna_provider.update_session(replace(session, amount=4000, lines=()))

    [remote] = klarna_server.sessions.values()
    assert result.data["session_id"] == remote["session_id"] != session.data["session_id"]
    assert remote["order_amount"] == 4000


def test_update_session_data_keeps_the_widgets_token_and_refuses_anything_else(
    klarna_provider: KlarnaProvider,
) -> None:
    session = opened(klarna_provider)

    result = klarna_provider.update_session_data(session, {"authorization_token": "tok-123_abc"})

    assert result.data["authorization_token"] == "tok-123_abc"
    assert result.data["session_id"] == session.data["session_id"]
    for bad in (
        {"authorization_token": "../../ordermanagement/v1/orders/x"},
        {"authorization_token": ""},
        {"authorization_token": 12},
        {"authorization_token": "t", "amount": 1},
        {"payment_method": "pm_card_visa"},
    ):
        with pytest.raises(ProviderError) as refused:
            klarna_provider.update_session_data(session, bad)
        assert refused.value.kind is ProviderErrorKind.INVALID, bad


# Authorize -------------------------------------------------------------------------------


def test_authorize_without_a_token_asks_for_the_widget(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    session = opened(klarna_provider)

    result = klarna_provider.authorize(session, idempotency_key="a")

    assert result.status is SessionStatus.REQUIRES_MORE
    assert result.next_action == NextAction.klarna_widget(session.data["client_token"])
    assert klarna_server.orders == {}


def test_authorize_creates_the_klarna_order_with_the_authorized_purchase_data(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    session = opened(klarna_provider)
    token = klarna_server.customer_authorizes(session.data["session_id"])
    session = with_token(klarna_provider, session, token)

    result = klarna_provider.authorize(session, idempotency_key=f"{session.session_id}:auth")

    [order] = klarna_server.orders.values()
    assert result.status is SessionStatus.AUTHORIZED
    assert result.amount == order["order_amount"] == 3000
    assert result.data["order_id"] == result.provider_reference == order["order_id"]
    assert result.data["fraud_status"] == "ACCEPTED"
    assert (order["merchant_reference1"], order["merchant_reference2"]) == (
        session.cart_id,
        session.session_id,
    )
    [request] = klarna_server.operations("orders.create")
    assert request.body["merchant_urls"] == {
        "notification": "https://shop.example.com/api/hooks/klarna"
    }
    assert klarna_server.sessions[session.data["session_id"]]["status"] == "complete"


def test_a_lost_order_answer_asked_again_with_the_same_key_makes_one_order(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    session = opened(klarna_provider)
    session = with_token(
        klarna_provider, session, klarna_server.customer_authorizes(session.data["session_id"])
    )
    klarna_server.fail_next("orders.create", Fault.DROP)

    with pytest.raises(ProviderError) as lost:
        klarna_provider.authorize(session, idempotency_key="auth-key")
    result = klarna_provider.authorize(session, idempotency_key="auth-key")

    assert lost.value.kind is ProviderErrorKind.UNAVAILABLE
    assert list(klarna_server.orders) == [result.data["order_id"]]


@pytest.mark.parametrize("where", ["expired", "order", "changed"])
def test_a_refused_expired_or_outdated_authorization_is_declined_with_the_widget_again(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna, where: str
) -> None:
    session = opened(klarna_provider)
    klarna_session = session.data["session_id"]
    if where == "order":
        token = klarna_server.customer_refuses(klarna_session, at="order")["authorization_token"]
    else:
        token = klarna_server.customer_authorizes(klarna_session)
    if where == "expired":
        klarna_server.expire(token)
    session = with_token(klarna_provider, session, token)
    if where == "changed":
        # The cart changed after the widget authorized, without its total changing.
        session = replace(session, lines=new_session(((1, 3000),)).lines)

    with pytest.raises(ProviderError) as declined:
        klarna_provider.authorize(session, idempotency_key=f"auth-{where}")

    assert declined.value.kind is ProviderErrorKind.DECLINED
    assert declined.value.next_action == NextAction.klarna_widget(session.data["client_token"])
    assert klarna_server.orders == {}
    if where == "changed":
        # Klarna's session now holds the cart as it is, for the next authorization.
        assert klarna_server.sessions[klarna_session]["order_lines"][0]["quantity"] == 1


def test_a_customer_refused_in_the_widget_has_no_token_so_authorize_asks_again(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    session = opened(klarna_provider)

    refusal = klarna_server.customer_refuses(session.data["session_id"])
    result = klarna_provider.authorize(session, idempotency_key="after-refusal")

    assert refusal == {"approved": False, "show_form": False}
    assert result.status is SessionStatus.REQUIRES_MORE
    assert klarna_server.orders == {}


# Money ---------------------------------------------------------------------------------


def test_a_full_capture_answers_klarnas_capture_id_and_releases_nothing(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    payment = authorized(klarna_provider, klarna_server)

    result = klarna_provider.capture(payment, amount=3000, idempotency_key="pay_1:capture:0")

    [capture] = klarna_server.captures
    assert (result.amount, result.provider_reference) == (3000, capture["capture_id"])
    assert klarna_server.orders[payment.data["order_id"]]["status"] == "CAPTURED"
    assert klarna_server.releases == []
    [request] = klarna_server.operations("orders.capture")
    assert request.idempotency_key == klarna_idempotency_key("pay_1:capture:0")
    assert request.body == {"captured_amount": 3000, "reference": "pay_1:capture:0"}


def test_a_partial_capture_releases_the_remaining_authorization(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    payment = authorized(klarna_provider, klarna_server)

    result = klarna_provider.capture(payment, amount=1000, idempotency_key="cap")

    order = klarna_server.orders[payment.data["order_id"]]
    assert result.amount == order["captured_amount"] == 1000
    assert (order["status"], order["remaining_authorized_amount"]) == ("CAPTURED", 0)
    assert klarna_server.releases == [payment.data["order_id"]]


@pytest.mark.parametrize("operation", ["orders.capture", "orders.release"])
def test_a_lost_capture_answer_asked_again_with_the_same_key_captures_once(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna, operation: str
) -> None:
    payment = authorized(klarna_provider, klarna_server)
    klarna_server.fail_next(operation, Fault.DROP)

    with pytest.raises(ProviderError) as lost:
        klarna_provider.capture(payment, amount=1000, idempotency_key="cap-lost")
    again = klarna_provider.capture(payment, amount=1000, idempotency_key="cap-lost")

    assert lost.value.kind is ProviderErrorKind.UNAVAILABLE
    [capture] = klarna_server.captures
    assert again.provider_reference == capture["capture_id"]
    assert klarna_server.releases == [payment.data["order_id"]]


def test_an_order_in_fraud_review_is_not_ready_to_capture_until_klarna_accepts_it(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    payment = authorized(klarna_provider, klarna_server, fraud_status="PENDING")
    assert payment.data["fraud_status"] == "PENDING"

    with pytest.raises(ProviderError) as waiting:
        klarna_provider.capture(payment, amount=3000, idempotency_key="cap-1")
    assert waiting.value.kind is ProviderErrorKind.NOT_READY
    assert klarna_server.operations("orders.capture") == []

    klarna_server.fraud_decides(payment.data["order_id"], "ACCEPTED")
    result = klarna_provider.capture(payment, amount=3000, idempotency_key="cap-2")

    assert result.data["fraud_status"] == "ACCEPTED"
    assert [c["amount"] for c in klarna_server.captures] == [3000]


def test_an_order_rejected_in_fraud_review_reads_as_canceled_and_cannot_be_captured(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    payment = authorized(klarna_provider, klarna_server, fraud_status="PENDING")
    klarna_server.fraud_decides(payment.data["order_id"], "REJECTED")

    state = klarna_provider.payment_state(payment)
    with pytest.raises(ProviderError) as refused:
        klarna_provider.capture(payment, amount=3000, idempotency_key="cap")
    canceled = klarna_provider.cancel(payment, idempotency_key="cancel")

    assert state is not None and state.status is SessionStatus.CANCELED
    assert (state.session_id, state.provider_reference) == (
        payment.session_id,
        payment.data["order_id"],
    )
    assert refused.value.kind is ProviderErrorKind.OTHER
    # Klarna canceled it already: that is the outcome a cancel asks for.
    assert canceled.provider_reference == payment.data["order_id"]
    assert klarna_server.captures == []


def test_refunds_many_and_partial_carry_our_key_as_their_reference(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    payment = captured(klarna_provider, klarna_server)

    first = klarna_provider.refund(
        payment, amount=1000, reason=RefundReason.RETURN, idempotency_key="ref_a"
    )
    again = klarna_provider.refund(
        payment, amount=1000, reason=RefundReason.RETURN, idempotency_key="ref_a"
    )
    second = klarna_provider.refund(
        payment, amount=500, reason=RefundReason.OTHER, idempotency_key="ref_b"
    )
    with pytest.raises(ProviderError) as too_much:
        klarna_provider.refund(
            payment, amount=1501, reason=RefundReason.OTHER, idempotency_key="ref_c"
        )

    assert [r["amount"] for r in klarna_server.refunds] == [1000, 500]
    assert [first.provider_reference, second.provider_reference] == [
        r["refund_id"] for r in klarna_server.refunds
    ]
    assert again.provider_reference == first.provider_reference
    assert too_much.value.kind is ProviderErrorKind.OTHER
    assert too_much.value.data["error_code"] == "REFUND_NOT_ALLOWED"
    state = klarna_provider.payment_state(payment)
    assert state is not None
    assert state.amount_captured == 3000
    assert [(r.amount, r.idempotency_key) for r in state.refunds] == [
        (1000, "ref_a"),
        (500, "ref_b"),
    ]


def test_cancel_releases_an_uncaptured_order_and_is_refused_after_a_capture(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    payment = authorized(klarna_provider, klarna_server)
    kept = captured(klarna_provider, klarna_server)

    result = klarna_provider.cancel(payment, idempotency_key="cancel-1")
    with pytest.raises(ProviderError) as refused:
        klarna_provider.cancel(kept, idempotency_key="cancel-2")

    assert klarna_server.orders[payment.data["order_id"]]["status"] == "CANCELLED"
    assert result.provider_reference == payment.data["order_id"]
    assert klarna_server.cancels == [payment.data["order_id"]]
    assert refused.value.kind is ProviderErrorKind.OTHER
    assert refused.value.data["error_code"] == "CANCEL_NOT_ALLOWED"


def test_delete_session_releases_a_token_no_order_used(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    session = opened(klarna_provider)
    token = klarna_server.customer_authorizes(session.data["session_id"])
    session = with_token(klarna_provider, session, token)

    klarna_provider.delete_session(session)
    klarna_provider.delete_session(session)  # again: gone already, nothing to do

    assert [r.path for r in klarna_server.operations("authorizations.cancel")] == [
        f"/payments/v1/authorizations/{token}"
    ] * 2
    with pytest.raises(ProviderError):
        klarna_provider.authorize(session, idempotency_key="after-delete")


# Failures ------------------------------------------------------------------------------


def test_a_klarna_server_error_is_unavailable_and_a_retry_with_the_key_captures_once(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    payment = authorized(klarna_provider, klarna_server)
    klarna_server.fail_next("orders.capture", Fault.SERVER_ERROR)

    with pytest.raises(ProviderError) as failed:
        klarna_provider.capture(payment, amount=3000, idempotency_key="cap")
    klarna_provider.capture(payment, amount=3000, idempotency_key="cap")

    assert failed.value.kind is ProviderErrorKind.UNAVAILABLE
    assert failed.value.data["error_code"] == "INTERNAL_SERVER_ERROR"
    assert failed.value.request_id  # Klarna's correlation id, for its support
    assert len(klarna_server.captures) == 1


def test_a_slow_klarna_times_out_as_unavailable_and_the_retry_replays(
    impatient_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    payment = authorized(impatient_provider, klarna_server)
    klarna_server.fail_next("orders.refund", Fault.DELAY, seconds=2)
    impatient_provider.capture(payment, amount=3000, idempotency_key="cap")

    with pytest.raises(ProviderError) as slow:
        impatient_provider.refund(
            payment, amount=100, reason=RefundReason.OTHER, idempotency_key="ref"
        )
    impatient_provider.refund(payment, amount=100, reason=RefundReason.OTHER, idempotency_key="ref")

    assert slow.value.kind is ProviderErrorKind.UNAVAILABLE
    assert [r["amount"] for r in klarna_server.refunds] == [100]


def test_klarna_unreachable_is_unavailable(klarna_server: FakeKlarna, settings) -> None:  # type: ignore[no-untyped-def]
    settings.KLARNA_API_BASE = f"http://127.0.0.1:{closed_port()}"
    provider = get_provider("klarna")

    with pytest.raises(ProviderError) as down:
        provider.initiate_session(new_session(), idempotency_key="k")

    assert down.value.kind is ProviderErrorKind.UNAVAILABLE


def test_wrong_credentials_are_a_definitive_refusal_with_klarnas_error(
    klarna_server: FakeKlarna,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.KLARNA_PASSWORD = "wrong"
    provider = get_provider("klarna")

    with pytest.raises(ProviderError) as refused:
        provider.initiate_session(new_session(), idempotency_key="k")

    assert refused.value.kind is ProviderErrorKind.OTHER
    assert refused.value.data["http_status"] == 401
    assert refused.value.raw["error_code"] == "UNAUTHORIZED"
    assert klarna_server.sessions == {}


# Notifications ---------------------------------------------------------------------------


def test_a_notification_is_an_event_per_order_type_and_body(
    klarna_provider: KlarnaProvider,
) -> None:
    body = json.dumps({"order_id": "0b1d9815-165e-42e2", "event_type": "FRAUD_RISK_ACCEPTED"})

    event = klarna_provider.verify_webhook(headers={}, body=body.encode())
    again = klarna_provider.verify_webhook(headers={}, body=body.encode())
    other = klarna_provider.verify_webhook(
        headers={}, body=body.replace("ACCEPTED", "REJECTED").encode()
    )

    assert event.event_id == again.event_id
    assert event.event_id.startswith("0b1d9815-165e-42e2:FRAUD_RISK_ACCEPTED:")
    assert other.event_id != event.event_id
    assert event.type == "FRAUD_RISK_ACCEPTED"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"event_type": "FRAUD_RISK_ACCEPTED"}',
        b'{"order_id": "abc"}',
        b'{"order_id": "../../payments/v1/sessions/x", "event_type": "FRAUD_RISK_ACCEPTED"}',
        b'{"order_id": 12, "event_type": "FRAUD_RISK_ACCEPTED"}',
        '{"order_id": "a", "event_type": "X"}'.encode("utf-16"),
    ],
)
def test_a_body_not_of_a_notifications_shape_is_invalid(
    klarna_provider: KlarnaProvider, body: bytes
) -> None:
    with pytest.raises(ProviderError) as refused:
        klarna_provider.verify_webhook(headers={}, body=body)

    assert refused.value.kind is ProviderErrorKind.INVALID


def test_webhook_state_re_reads_the_order_and_an_unknown_order_changes_nothing(
    klarna_provider: KlarnaProvider, klarna_server: FakeKlarna
) -> None:
    payment = authorized(klarna_provider, klarna_server, fraud_status="PENDING")
    notification = klarna_server.fraud_decides(payment.data["order_id"], "ACCEPTED")
    event = klarna_provider.verify_webhook(headers={}, body=json.dumps(notification).encode())
    unknown = klarna_provider.verify_webhook(
        headers={},
        body=json.dumps(
            {"order_id": "no-such-order", "event_type": "FRAUD_RISK_ACCEPTED"}
        ).encode(),
    )

    state = klarna_provider.webhook_state(event)

    assert state is not None
    assert state.status is SessionStatus.AUTHORIZED
    assert state.session_id == payment.session_id
    assert state.cart_id == klarna_server.orders[payment.data["order_id"]]["merchant_reference1"]
    assert klarna_provider.webhook_state(unknown) is None
