"""The storefront flow, the admin API and notifications with `klarna` selected, against the
fake Klarna server."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from checkout.models import Order
from payments.models import Payment, PaymentProvider, PaymentSession, WebhookEvent
from tests import factories
from tests.backoffice import admin_client, admin_post, staff_user
from tests.checkout.conftest import Storefront
from tests.providers.klarna_fake import FakeKlarna, Fault

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def klarna_region(klarna_server):  # type: ignore[no-untyped-def]
    return factories.RegionFactory(
        currency_code="sek", countries=["se"], providers=["klarna", "manual"]
    )


@pytest.fixture
def product(klarna_region):  # type: ignore[no-untyped-def]
    return factories.ProductFactory(title="Lamp", prices={"sek": 1500})


@pytest.fixture
def operator(klarna_server):  # type: ignore[no-untyped-def]
    return admin_client(staff_user(username="ops", superuser=True))


def klarna_session_of(cart_id: str) -> PaymentSession:
    return PaymentSession.objects.get(cart_id=cart_id, provider_id="klarna")


def klarna_cart(store: Storefront, region, product) -> str:  # type: ignore[no-untyped-def]
    return store.cart_ready(region, product, provider="klarna")


def widget_authorizes(
    store: Storefront, server: FakeKlarna, cart_id: str, *, fraud_status: str = "ACCEPTED"
) -> str:
    """The customer completes Klarna's widget; the storefront sends us its token."""
    token = server.customer_authorizes(
        klarna_session_of(cart_id).data["session_id"], fraud_status=fraud_status
    )
    response = store.post(
        f"carts/{cart_id}/payment-sessions/klarna", {"data": {"authorization_token": token}}
    )
    assert response.status_code == 200, response.json()
    return token


def paid_cart(
    store: Storefront, server: FakeKlarna, region, product, *, fraud_status: str = "ACCEPTED"
) -> Payment:  # type: ignore[no-untyped-def]
    cart_id = klarna_cart(store, region, product)
    widget_authorizes(store, server, cart_id, fraud_status=fraud_status)
    completed = store.complete(cart_id, key=f"complete-{cart_id}")
    assert completed.status_code == 200 and completed.json()["type"] == "order", completed.json()
    return Payment.objects.get(cart_id=cart_id)


def notify(body: dict) -> object:  # type: ignore[type-arg]
    """Klarna posts a notification: unsigned JSON naming an order."""
    return Client().post("/api/hooks/klarna", json.dumps(body), content_type="application/json")


def test_a_klarna_checkout_authorizes_in_the_widget_then_captures_and_refunds(
    store, klarna_server, klarna_region, product, operator
):
    cart_id = klarna_cart(store, klarna_region, product)
    session = store.get(f"carts/{cart_id}").json()["payment_session"]
    [remote] = klarna_server.sessions.values()
    assert session["next_action"] == {
        "type": "klarna_widget",
        "client_token": remote["client_token"],
    }
    assert session["data"]["session_id"] == remote["session_id"]
    assert session["data"]["payment_method_categories"][0]["identifier"] == "klarna"
    assert (remote["purchase_country"], remote["purchase_currency"], remote["order_amount"]) == (
        "SE",
        "SEK",
        3000,
    )
    assert [(line["name"], line["quantity"]) for line in remote["order_lines"]] == [("Lamp", 2)]
    assert remote["merchant_reference1"] == cart_id
    assert "klarna_test_password" not in json.dumps(session)

    # Completing before the widget: the customer must act, and nothing is stored as final.
    early = store.complete(cart_id, key="checkout")
    assert early.status_code == 200 and early.json()["type"] == "cart"
    assert early.json()["data"]["payment_session"]["status"] == "requires_more"
    assert early.json()["data"]["payment_session"]["next_action"]["type"] == "klarna_widget"

    widget_authorizes(store, klarna_server, cart_id)
    done = store.complete(cart_id, key="checkout")

    assert done.status_code == 200 and done.json()["type"] == "order"
    [order] = klarna_server.orders.values()
    payment = Payment.objects.get(cart_id=cart_id)
    assert (payment.amount, payment.data["order_id"], payment.data["fraud_status"]) == (
        3000,
        order["order_id"],
        "ACCEPTED",
    )
    assert order["merchant_reference2"] == klarna_session_of(cart_id).id
    assert payment.authorization_expires_at is not None
    expected_expiry = timezone.now() + timedelta(days=28)
    assert abs(payment.authorization_expires_at - expected_expiry) < timedelta(minutes=5)

    captured = admin_post(operator, f"payments/{payment.id}/capture", key="cap")
    refunded = admin_post(
        operator, f"payments/{payment.id}/refund", {"amount": 1000, "reason": "return"}, key="r1"
    )

    assert (captured.status_code, refunded.status_code) == (200, 200), refunded.json()
    assert [c["amount"] for c in klarna_server.captures] == [3000]
    assert [r["amount"] for r in klarna_server.refunds] == [1000]
    payment.refresh_from_db()
    assert (payment.amount_captured, payment.amount_refunded) == (3000, 1000)
    assert order["status"] == "CAPTURED" and order["refunded_amount"] == 1000


def test_a_refused_purchase_is_402_and_a_new_widget_token_completes_under_the_same_key(
    store, klarna_server, klarna_region, product
):
    cart_id = klarna_cart(store, klarna_region, product)
    klarna_session = klarna_session_of(cart_id).data["session_id"]
    refused = klarna_server.customer_refuses(klarna_session, at="order")
    store.post(
        f"carts/{cart_id}/payment-sessions/klarna",
        {"data": {"authorization_token": refused["authorization_token"]}},
    )

    declined = store.complete(cart_id, key="k")
    assert declined.status_code == 402
    assert declined.json()["code"] == "payment_authorization_failed"
    assert klarna_session_of(cart_id).status == "error"

    widget_authorizes(store, klarna_server, cart_id)
    done = store.complete(cart_id, key="k")

    assert done.status_code == 200 and done.json()["type"] == "order"
    assert len(klarna_server.orders) == 1


def test_session_data_other_than_the_widgets_token_is_400(
    store, klarna_server, klarna_region, product
):
    cart_id = klarna_cart(store, klarna_region, product)

    response = store.post(
        f"carts/{cart_id}/payment-sessions/klarna", {"data": {"order_id": "someone-elses"}}
    )

    assert response.status_code == 400 and response.json()["code"] == "invalid_data"


def test_a_cart_total_change_updates_klarnas_session_and_asks_for_the_widget_again(
    store, klarna_server, klarna_region, product
):
    cart_id = klarna_cart(store, klarna_region, product)
    token = widget_authorizes(store, klarna_server, cart_id)
    item_id = store.get(f"carts/{cart_id}").json()["items"][0]["id"]

    changed = store.post(f"carts/{cart_id}/line-items/{item_id}", {"quantity": 3})
    completion = store.complete(cart_id, key="after-change")

    assert changed.status_code == 200
    remote = klarna_server.sessions[klarna_session_of(cart_id).data["session_id"]]
    assert (remote["order_amount"], remote["order_lines"][0]["quantity"]) == (4500, 3)
    assert "authorization_token" not in klarna_session_of(cart_id).data
    [released] = klarna_server.operations("authorizations.cancel")
    assert released.path.endswith(token)
    assert completion.status_code == 200 and completion.json()["type"] == "cart"
    assert klarna_server.orders == {}


def test_a_lost_capture_answer_retried_with_the_same_and_another_key_captures_once(
    store, klarna_server, klarna_region, product, operator
):
    payment = paid_cart(store, klarna_server, klarna_region, product)
    klarna_server.fail_next("orders.capture", Fault.DROP)

    lost = admin_post(operator, f"payments/{payment.id}/capture", {"amount": 2000}, key="cap-1")
    retried = admin_post(operator, f"payments/{payment.id}/capture", {"amount": 2000}, key="cap-1")
    another = admin_post(operator, f"payments/{payment.id}/capture", {"amount": 2000}, key="cap-2")

    assert (lost.status_code, retried.status_code) == (503, 200)
    # The other key first settles the lost capture under its own key, then finds the
    # payment captured: Klarna captures once.
    assert (another.status_code, another.json()["code"]) == (409, "invalid_state")
    assert [c["amount"] for c in klarna_server.captures] == [2000]
    # A partial capture releases the rest of the authorization, once.
    assert klarna_server.releases == [payment.data["order_id"]]
    payment.refresh_from_db()
    assert payment.amount_captured == 2000


def test_a_lost_capture_answer_is_settled_first_when_another_key_asks(
    store, klarna_server, klarna_region, product, operator
):
    payment = paid_cart(store, klarna_server, klarna_region, product)
    klarna_server.fail_next("orders.capture", Fault.DROP)

    lost = admin_post(operator, f"payments/{payment.id}/capture", key="first")
    other = admin_post(operator, f"payments/{payment.id}/capture", key="second")

    assert lost.status_code == 503
    assert (other.status_code, other.json()["code"]) == (409, "invalid_state")
    assert [c["amount"] for c in klarna_server.captures] == [3000]
    payment.refresh_from_db()
    assert payment.amount_captured == 3000


def test_fraud_review_pending_refuses_captures_until_klarnas_notification_accepts_it(
    store, klarna_server, klarna_region, product, operator
):
    payment = paid_cart(store, klarna_server, klarna_region, product, fraud_status="PENDING")
    assert payment.data["fraud_status"] == "PENDING"

    waiting = admin_post(operator, f"payments/{payment.id}/capture", key="cap-early")
    assert waiting.status_code == 409 and waiting.json()["code"] == "invalid_state"
    assert klarna_server.captures == []

    notification = klarna_server.fraud_decides(payment.data["order_id"], "ACCEPTED")
    delivered = notify(notification)
    redelivered = notify(notification)
    captured = admin_post(operator, f"payments/{payment.id}/capture", key="cap-late")

    # A redelivery is the same event: stored once, processed once (by the worker, which
    # runs eagerly here).
    assert (delivered.status_code, redelivered.status_code) == (200, 200)
    event = WebhookEvent.objects.get(provider_id="klarna")
    assert (event.status, event.attempts, event.type) == ("processed", 1, "FRAUD_RISK_ACCEPTED")
    payment.refresh_from_db()
    assert payment.data["fraud_status"] == "ACCEPTED"  # what the back office shows
    assert captured.status_code == 200, captured.json()
    assert [c["amount"] for c in klarna_server.captures] == [3000]


def test_a_fraud_rejection_notification_cancels_the_payment(
    store, klarna_server, klarna_region, product
):
    payment = paid_cart(store, klarna_server, klarna_region, product, fraud_status="PENDING")

    delivered = notify(klarna_server.fraud_decides(payment.data["order_id"], "REJECTED"))

    assert delivered.status_code == 200
    payment.refresh_from_db()
    assert payment.canceled_at is not None
    assert Order.objects.get(pk=payment.order_id).payment_status == "canceled"


def test_a_notification_for_an_unknown_order_changes_nothing_and_a_malformed_one_is_400(
    klarna_server, klarna_region
):
    unknown = notify({"order_id": "0b1d9815-0000-0000", "event_type": "FRAUD_RISK_ACCEPTED"})
    malformed = notify({"event_type": "FRAUD_RISK_ACCEPTED"})

    assert unknown.status_code == 200
    assert WebhookEvent.objects.get().status == "processed"
    assert malformed.status_code == 400 and malformed.json()["code"] == "invalid_data"
    assert WebhookEvent.objects.count() == 1
    assert not Payment.objects.exists()


def test_twenty_racing_completes_make_one_klarna_order(
    store, klarna_server, klarna_region, product
):
    cart_id = klarna_cart(store, klarna_region, product)
    widget_authorizes(store, klarna_server, cart_id)
    barrier = threading.Barrier(20)

    def complete(n: int) -> int:
        barrier.wait()
        try:
            return Storefront().complete(cart_id, key=f"client-{n % 4}").status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(complete, range(20)))

    assert set(statuses) <= {200, 409}, statuses
    assert 200 in statuses
    assert len(klarna_server.orders) == 1
    assert len(klarna_server.operations("orders.create")) == 1
    assert Order.objects.filter(cart_id=cart_id).count() == 1
    assert Payment.objects.filter(cart_id=cart_id).count() == 1


def test_a_lost_order_answer_is_503_and_the_retry_completes_with_one_klarna_order(
    store, klarna_server, klarna_region, product
):
    cart_id = klarna_cart(store, klarna_region, product)
    widget_authorizes(store, klarna_server, cart_id)
    klarna_server.fail_next("orders.create", Fault.DROP)

    lost = store.complete(cart_id, key="lost")
    retried = store.complete(cart_id, key="lost")

    assert lost.status_code == 503 and lost.headers["Retry-After"]
    assert retried.status_code == 200 and retried.json()["type"] == "order"
    assert len(klarna_server.orders) == 1


def test_klarna_is_enabled_only_in_a_region_with_a_country_and_currency_it_sells_in(
    klarna_server,
):
    PaymentProvider.objects.get_or_create(id="klarna")
    boss = admin_client(staff_user(username="boss", superuser=True))

    def create(currency: str, countries: list[str]):  # type: ignore[no-untyped-def]
        return admin_post(
            boss,
            "regions",
            {
                "name": f"{currency} {countries}",
                "currency_code": currency,
                "countries": countries,
                "payment_providers": ["klarna"],
            },
        )

    no_country = create("sek", [])
    unsupported = create("jpy", ["jp"])
    wrong_currency = create("eur", ["se"])
    sweden = create("sek", ["se"])
    bare = factories.RegionFactory(currency_code="sek", providers=["manual"])
    added = admin_post(boss, f"regions/{bare.id}/payment-providers", {"provider_id": "klarna"})

    for refused in (no_country, unsupported, wrong_currency, added):
        assert refused.status_code == 422, refused.json()
        assert refused.json()["code"] == "provider_not_available"
    assert sweden.status_code in (200, 201), sweden.json()
    assert sweden.json()["payment_providers"] == ["klarna"]
