"""The storefront flow, the admin API and webhooks with `paypal` selected, against the fake
PayPal server: real HTTP, real PostgreSQL, the buyer played through the fake's own pages."""

from __future__ import annotations

import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client, TestCase
from django.utils import timezone

from checkout.models import Order
from payments.models import Payment, PaymentOperation, PaymentSession, Refund, WebhookEvent
from tests import factories
from tests.backoffice import admin_client, admin_post, staff_user
from tests.checkout.conftest import Storefront
from tests.providers.paypal_fake import FakePayPal, Fault, event_body, sign_event

pytestmark = pytest.mark.django_db(transaction=True)

RETURN_URL = "http://127.0.0.1:8000/paypal/return"
CANCEL_URL = "http://127.0.0.1:8000/paypal/cancel"


@pytest.fixture
def paypal_region(paypal_server):  # type: ignore[no-untyped-def]
    return factories.RegionFactory(currency_code="usd", providers=["paypal", "manual"])


@pytest.fixture
def product(paypal_region):  # type: ignore[no-untyped-def]
    return factories.ProductFactory(prices={"usd": 1500, "jpy": 1500, "huf": 1500})


@pytest.fixture
def operator(db):  # type: ignore[no-untyped-def]
    return admin_client(staff_user(username="ops", superuser=True))


def paypal_cart(store: Storefront, region, product) -> str:  # type: ignore[no-untyped-def]
    return store.cart_ready(region, product, provider="paypal")


def order_of(cart_id: str) -> str:
    return str(PaymentSession.objects.get(cart_id=cart_id, provider_id="paypal").data["order_id"])


def paid_order(store: Storefront, server: FakePayPal, region, product) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A completed PayPal checkout: the order's JSON."""
    cart_id = paypal_cart(store, region, product)
    server.buyer_approves(order_of(cart_id))
    done = store.complete(cart_id, key=f"pay-{cart_id}")
    assert done.status_code == 200 and done.json()["type"] == "order", done.json()
    return dict(done.json()["data"])


def deliver(event_type: str, resource: dict[str, Any], *, event_id: str = "", **headers: str):  # type: ignore[no-untyped-def]
    """POST an event as PayPal delivers it, signed for our webhook id (or as `headers` say)."""
    body = event_body(event_type, resource, event_id=event_id)
    return Client(raise_request_exception=False).post(
        "/api/hooks/paypal",
        body,
        content_type="application/json",
        headers={**sign_event(body), **headers},
    )


def follow_redirect(url: str) -> str:
    """The buyer's browser on PayPal's approval page: where PayPal sends it back to."""

    class NoFollow(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoFollow)
    try:
        opener.open(url, timeout=5)
    except urllib.error.HTTPError as answer:
        assert answer.code == 302
        return str(answer.headers["Location"])
    raise AssertionError("PayPal's page did not send the buyer back")


# Checkout -----------------------------------------------------------------------------


def test_a_paypal_checkout_redirects_to_approval_and_completes_under_the_same_key(
    store, paypal_server, paypal_region, product
):
    cart_id = paypal_cart(store, paypal_region, product)
    # The storefront says where PayPal sends the buyer back; the order is made anew with it.
    redirects = {"data": {"return_url": RETURN_URL, "cancel_url": CANCEL_URL}}
    assert store.post(f"carts/{cart_id}/payment-sessions/paypal", redirects).status_code == 200
    assert store.post(f"carts/{cart_id}/payment-sessions/paypal/refresh").status_code == 200
    order_id = order_of(cart_id)
    unit = paypal_server.orders[order_id]["purchase_units"][0]
    assert unit["amount"] == {"currency_code": "USD", "value": "30.00"}
    assert (unit["reference_id"], unit["custom_id"]) == (
        cart_id,
        PaymentSession.objects.get(cart_id=cart_id, provider_id="paypal").id,
    )

    asked = store.complete(cart_id, key="pp-1")
    session = asked.json()["data"]["payment_session"]
    assert asked.status_code == 200 and asked.json()["type"] == "cart"
    assert session["status"] == "requires_more"
    assert session["next_action"]["type"] == "redirect"
    back = follow_redirect(session["next_action"]["url"])
    done = store.complete(cart_id, key="pp-1")

    assert back == f"{RETURN_URL}?token={order_id}"
    assert done.status_code == 200 and done.json()["type"] == "order"
    payment = Payment.objects.get(cart_id=cart_id)
    [authorization] = paypal_server.authorizations.values()
    assert payment.amount == 3000
    assert payment.data["authorization_id"] == authorization["id"]
    assert payment.authorization_expires_at is not None
    expected_expiry = timezone.now() + timedelta(days=29)
    assert abs(payment.authorization_expires_at - expected_expiry) < timedelta(minutes=5)
    # The first order (made before the return URL) was never authorized; nothing is held.
    assert len(paypal_server.orders) == 2


def test_a_declined_funding_source_is_402_with_the_approval_page_and_another_completes(
    store, paypal_server, paypal_region, product
):
    cart_id = paypal_cart(store, paypal_region, product)
    paypal_server.buyer_approves(order_of(cart_id), funding="declined")

    declined = store.complete(cart_id, key="fund")
    session = store.get(f"carts/{cart_id}").json()["payment_session"]
    paypal_server.buyer_approves(order_of(cart_id))
    done = store.complete(cart_id, key="fund")

    assert declined.status_code == 402
    assert declined.json()["code"] == "payment_authorization_failed"
    assert session["status"] == "error"
    assert session["next_action"]["url"].endswith(f"token={order_of(cart_id)}")
    assert done.status_code == 200 and done.json()["type"] == "order"
    assert len(paypal_server.authorizations) == 1


def test_a_lost_authorize_answer_is_503_and_the_retry_completes_with_one_authorization(
    store, paypal_server, paypal_region, product
):
    cart_id = paypal_cart(store, paypal_region, product)
    paypal_server.buyer_approves(order_of(cart_id))
    paypal_server.fail_next("orders.authorize", Fault.DROP)

    lost = store.complete(cart_id, key="lost")
    retried = store.complete(cart_id, key="lost")

    assert lost.status_code == 503 and lost.headers["Retry-After"]
    assert retried.status_code == 200 and retried.json()["type"] == "order"
    assert len(paypal_server.authorizations) == 1
    sent = {r.request_id for r in paypal_server.operations("orders.authorize")}
    assert len(paypal_server.operations("orders.authorize")) == 2 and len(sent) == 1


def test_twenty_racing_completes_make_one_order_and_one_paypal_authorization(
    store, paypal_server, paypal_region, product
):
    cart_id = paypal_cart(store, paypal_region, product)
    paypal_server.buyer_approves(order_of(cart_id))
    barrier = threading.Barrier(20)

    def complete(n: int) -> int:
        barrier.wait()
        try:
            return int(Storefront().complete(cart_id, key=f"race-{n % 3}").status_code)
        finally:
            connection.close()

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(complete, range(20)))

    assert Order.objects.filter(cart_id=cart_id).count() == 1
    assert Payment.objects.filter(cart_id=cart_id).count() == 1
    assert len(paypal_server.authorizations) == 1
    assert 200 in statuses and set(statuses) <= {200, 409}


@pytest.mark.parametrize(
    ("currency", "price", "value"), [("jpy", 1500, "3000"), ("huf", 1500, "3000")]
)
def test_zero_decimal_currencies_reach_paypal_without_decimals(
    store, paypal_server, product, currency, price, value
):
    region = factories.RegionFactory(currency_code=currency, providers=["paypal"])

    cart_id = paypal_cart(store, region, product)

    unit = paypal_server.orders[order_of(cart_id)]["purchase_units"][0]
    assert unit["amount"] == {"currency_code": currency.upper(), "value": value}


def test_a_currency_paypal_does_not_support_cannot_enable_it(paypal_server, operator):
    call_command("register_providers", stdout=StringIO())  # PAYPAL_CLIENT_ID is set
    created = operator.post(
        "/api/admin/regions",
        {"name": "Kuwait", "currency_code": "kwd", "payment_providers": ["paypal"]},
        format="json",
    )
    usd = operator.post(
        "/api/admin/regions",
        {"name": "US", "currency_code": "usd", "payment_providers": ["paypal"]},
        format="json",
    )

    assert created.status_code == 422 and created.json()["code"] == "provider_not_available"
    assert usd.status_code in (200, 201), usd.json()


def test_a_cart_total_change_patches_the_paypal_order(store, paypal_server, paypal_region, product):
    cart_id = paypal_cart(store, paypal_region, product)
    item_id = store.get(f"carts/{cart_id}").json()["items"][0]["id"]

    changed = store.post(f"carts/{cart_id}/line-items/{item_id}", {"quantity": 3})

    assert changed.status_code == 200
    order = paypal_server.orders[order_of(cart_id)]
    assert order["purchase_units"][0]["amount"]["value"] == "45.00"
    assert len(paypal_server.operations("orders.patch")) == 1


# Back office --------------------------------------------------------------------------


def test_capture_and_refund_through_the_admin_api_name_paypals_objects(
    store, paypal_server, paypal_region, product, operator
):
    payment_id = paid_order(store, paypal_server, paypal_region, product)["payments"][0]["id"]

    captured = admin_post(operator, f"payments/{payment_id}/capture", {}, key="cap")
    refunded = admin_post(
        operator, f"payments/{payment_id}/refund", {"amount": 500, "reason": "return"}, key="r"
    )

    assert (captured.status_code, refunded.status_code) == (200, 200), refunded.json()
    [capture] = paypal_server.captures.values()
    [refund] = paypal_server.refunds.values()
    assert capture["amount"]["value"] == "30.00" and capture["final_capture"] is True
    assert refund["amount"]["value"] == "5.00"
    assert refund["links"][1]["href"].endswith(f"/v2/payments/captures/{capture['id']}")
    payment = Payment.objects.get(pk=payment_id)
    assert (payment.amount_captured, payment.amount_refunded) == (3000, 500)
    assert payment.data["capture_id"] == capture["id"]
    assert Order.objects.get(pk=payment.order_id).payment_status == "partially_refunded"


def test_a_lost_refund_answer_retried_with_the_same_key_refunds_once(
    store, paypal_server, paypal_region, product, operator
):
    payment_id = paid_order(store, paypal_server, paypal_region, product)["payments"][0]["id"]
    assert admin_post(operator, f"payments/{payment_id}/capture", {}).status_code == 200
    paypal_server.fail_next("captures.refund", Fault.DROP)
    body = {"amount": 500, "reason": "return"}

    lost = admin_post(operator, f"payments/{payment_id}/refund", body, key="ref-1")
    retried = admin_post(operator, f"payments/{payment_id}/refund", body, key="ref-1")

    assert (lost.status_code, retried.status_code) == (503, 200)
    assert [r["amount"]["value"] for r in paypal_server.refunds.values()] == ["5.00"]
    assert Payment.objects.get(pk=payment_id).amount_refunded == 500


def test_a_lost_refund_answer_is_settled_under_its_own_key_before_another_refund(
    store, paypal_server, paypal_region, product, operator
):
    payment_id = paid_order(store, paypal_server, paypal_region, product)["payments"][0]["id"]
    assert admin_post(operator, f"payments/{payment_id}/capture", {}).status_code == 200
    paypal_server.fail_next("captures.refund", Fault.DROP)

    lost = admin_post(
        operator, f"payments/{payment_id}/refund", {"amount": 500, "reason": "return"}, key="a"
    )
    other = admin_post(
        operator, f"payments/{payment_id}/refund", {"amount": 300, "reason": "other"}, key="b"
    )

    assert (lost.status_code, other.status_code) == (503, 200)
    # The lost one was asked again with its PayPal-Request-Id: PayPal made it once.
    keys = [r.request_id for r in paypal_server.operations("captures.refund")]
    assert len(keys) == 3 and keys[0] == keys[1] != keys[2]
    assert sorted(r["amount"]["value"] for r in paypal_server.refunds.values()) == ["3.00", "5.00"]
    assert Payment.objects.get(pk=payment_id).amount_refunded == 800


def test_a_pending_capture_waits_for_paypal_and_its_webhook_settles_it(
    store, paypal_server, paypal_region, product, operator
):
    payment_id = paid_order(store, paypal_server, paypal_region, product)["payments"][0]["id"]
    paypal_server.fail_next("authorizations.capture", Fault.PENDING)

    asked = admin_post(operator, f"payments/{payment_id}/capture", {}, key="cap")
    waiting = Payment.objects.get(pk=payment_id)
    [capture_id] = paypal_server.captures
    paypal_server.settle(capture_id)
    settled = deliver("PAYMENT.CAPTURE.COMPLETED", {"id": capture_id, "status": "COMPLETED"})

    assert asked.status_code == 200
    assert (waiting.amount_captured, waiting.captured_at) == (0, None)
    assert settled.status_code == 200
    payment = Payment.objects.get(pk=payment_id)
    assert payment.amount_captured == 3000 and payment.data["capture_id"] == capture_id
    operation = PaymentOperation.objects.get(payment_id=payment_id, type="capture")
    assert (operation.status, operation.provider_reference) == ("succeeded", capture_id)
    # Refunds name the capture PayPal settled.
    refunded = admin_post(
        operator, f"payments/{payment_id}/refund", {"amount": 3000, "reason": "other"}
    )
    assert refunded.status_code == 200 and len(paypal_server.refunds) == 1


def test_cancel_voids_the_paypal_authorization(
    store, paypal_server, paypal_region, product, operator
):
    payment_id = paid_order(store, paypal_server, paypal_region, product)["payments"][0]["id"]

    canceled = admin_post(operator, f"payments/{payment_id}/cancel", {}, key="void")

    assert canceled.status_code == 200
    [authorization] = paypal_server.authorizations.values()
    assert authorization["status"] == "VOIDED"
    assert Payment.objects.get(pk=payment_id).canceled_at is not None


# Webhooks -----------------------------------------------------------------------------


def test_an_approval_webhook_completes_a_cart_whose_client_vanished_once(
    store, paypal_server, paypal_region, product
):
    cart_id = paypal_cart(store, paypal_region, product)
    order_id = order_of(cart_id)
    paypal_server.buyer_approves(order_id)

    first = deliver("CHECKOUT.ORDER.APPROVED", {"id": order_id}, event_id="WH-A")
    again = deliver("CHECKOUT.ORDER.APPROVED", {"id": order_id}, event_id="WH-A")

    assert (first.status_code, again.status_code) == (200, 200)
    order = Order.objects.get(cart_id=cart_id)
    assert WebhookEvent.objects.get().status == "processed"
    assert len(paypal_server.authorizations) == 1
    # The client comes back later and gets the same order.
    assert store.complete(cart_id, key="late").json()["data"]["id"] == order.id


def test_a_forged_or_unsigned_webhook_is_400_and_changes_nothing(
    store, paypal_server, paypal_region, product
):
    cart_id = paypal_cart(store, paypal_region, product)
    order_id = order_of(cart_id)
    paypal_server.buyer_approves(order_id)

    forged = deliver(
        "CHECKOUT.ORDER.APPROVED", {"id": order_id}, **{"PAYPAL-TRANSMISSION-SIG": "Zm9yZ2Vk"}
    )
    unsigned = Client().post(
        "/api/hooks/paypal",
        event_body("CHECKOUT.ORDER.APPROVED", {"id": order_id}),
        content_type="application/json",
    )

    assert forged.status_code == 400 and forged.json()["code"] == "invalid_data"
    assert unsigned.status_code == 400
    assert not WebhookEvent.objects.exists()
    assert not Order.objects.filter(cart_id=cart_id).exists()
    assert paypal_server.authorizations == {}
    # Only the forged one reached PayPal's verification: the unsigned had nothing to check.
    assert len(paypal_server.operations("webhooks.verify")) == 1


@pytest.mark.parametrize("event_type", ["PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED"])
def test_a_refund_or_reversal_made_at_paypal_shows_up_as_a_refund(
    store, paypal_server, paypal_region, product, operator, event_type
):
    payment_id = paid_order(store, paypal_server, paypal_region, product)["payments"][0]["id"]
    assert admin_post(operator, f"payments/{payment_id}/capture", {}).status_code == 200
    [capture_id] = paypal_server.captures
    outside = paypal_server.refund_outside(capture_id, "10.00")

    delivered = deliver(event_type, {"id": outside["id"], "status": "COMPLETED"})

    assert delivered.status_code == 200
    payment = Payment.objects.get(pk=payment_id)
    assert payment.amount_refunded == 1000
    refund = Refund.objects.get(payment_id=payment_id)
    assert (refund.amount, refund.provider_reference) == (1000, outside["id"])
    assert Order.objects.get(pk=payment.order_id).payment_status == "partially_refunded"


def test_a_pending_capture_paypal_denies_leaves_the_payment_uncaptured(
    store, paypal_server, paypal_region, product, operator
):
    payment_id = paid_order(store, paypal_server, paypal_region, product)["payments"][0]["id"]
    paypal_server.fail_next("authorizations.capture", Fault.PENDING)
    assert admin_post(operator, f"payments/{payment_id}/capture", {}).status_code == 200
    [capture_id] = paypal_server.captures
    paypal_server.settle(capture_id, "DECLINED")

    delivered = deliver("PAYMENT.CAPTURE.DENIED", {"id": capture_id})

    assert delivered.status_code == 200
    payment = Payment.objects.get(pk=payment_id)
    assert (payment.amount_captured, payment.captured_at) == (0, None)
    operation = PaymentOperation.objects.get(payment_id=payment_id, type="capture")
    assert operation.status == "failed"


def test_an_authorization_voided_at_paypal_cancels_the_payment(
    store, paypal_server, paypal_region, product
):
    payment_id = paid_order(store, paypal_server, paypal_region, product)["payments"][0]["id"]
    [authorization_id] = paypal_server.authorizations
    paypal_server.void_outside(authorization_id)

    delivered = deliver("PAYMENT.AUTHORIZATION.VOIDED", {"id": authorization_id})

    assert delivered.status_code == 200
    assert Payment.objects.get(pk=payment_id).canceled_at is not None


@pytest.mark.django_db  # the test's own transaction: the worker's task is queued, not run
def test_a_webhook_is_answered_at_once_while_paypals_api_is_slow(
    store, paypal_server, paypal_region, product
):
    cart_id = paypal_cart(store, paypal_region, product)
    order_id = order_of(cart_id)
    paypal_server.buyer_approves(order_id)
    paypal_server.fail_next("orders.get", Fault.DELAY, seconds=1.5)
    reads = len(paypal_server.operations("orders.get"))

    with TestCase.captureOnCommitCallbacks(execute=False) as queued:
        started = time.monotonic()
        answered = deliver("CHECKOUT.ORDER.APPROVED", {"id": order_id})
        took = time.monotonic() - started

    assert answered.status_code == 200 and took < 1.0
    assert len(paypal_server.operations("orders.get")) == reads  # nothing re-read yet
    assert WebhookEvent.objects.get().status == "received"
    assert not Order.objects.filter(cart_id=cart_id).exists()
    # The worker then re-reads the order, however slowly PayPal answers.
    for task in queued:
        task()
    assert len(paypal_server.operations("orders.get")) > reads  # the slow re-read
    assert WebhookEvent.objects.get().status == "processed"
    assert Order.objects.filter(cart_id=cart_id).exists()
