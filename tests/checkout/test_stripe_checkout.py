"""The storefront flow and webhooks with `stripe` selected, against the fake Stripe server."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import stripe
from django.db import connection
from django.test import Client, TestCase
from django.utils import timezone

from checkout.models import Order
from checkout.tasks import webhooks_process_due
from payments.models import (
    Payment,
    PaymentEvent,
    PaymentOperation,
    PaymentSession,
    Refund,
    WebhookEvent,
)
from payments.services.recovery import operations_resume_due
from providers.registry import get_provider
from tests import factories
from tests.checkout.conftest import Storefront
from tests.providers.stripe_fake import WEBHOOK_SECRET, FakeStripe, Fault

pytestmark = pytest.mark.django_db(transaction=True)


def intent_of(cart_id: str) -> str:
    return PaymentSession.objects.get(cart_id=cart_id, provider_id="stripe").data["id"]


def stripe_cart(store: Storefront, region, product) -> str:  # type: ignore[no-untyped-def]
    return store.cart_ready(region, product, provider="stripe")


def open_intents(server: FakeStripe) -> list[str]:
    return [i["id"] for i in server.intents.values() if i["status"] != "canceled"]


def deliver(  # type: ignore[no-untyped-def]
    event_type: str,
    obj: dict,  # type: ignore[type-arg]
    *,
    event_id: str = "evt_1",
    timestamp: int | None = None,
    client: Client | None = None,
):
    """POST an event signed as Stripe signs it (the SDK's own signing helper). The worker's
    task it queues runs (eagerly) when the request's transaction would have committed."""
    body = json.dumps({"id": event_id, "type": event_type, "data": {"object": obj}})
    signed_at = timestamp or int(time.time())
    signature = stripe.WebhookSignature._compute_signature(f"{signed_at}.{body}", WEBHOOK_SECRET)
    header = f"t={signed_at},v1={signature}"
    with TestCase.captureOnCommitCallbacks(execute=True):
        return (client or Client()).post(
            "/api/hooks/stripe",
            body,
            content_type="application/json",
            headers={"Stripe-Signature": header},
        )


def cart_whose_webhook_failed(store, server, region, product, event_id: str) -> str:  # type: ignore[no-untyped-def]
    """A customer authorized, and the webhook telling us so failed (Stripe answered 500)."""
    cart_id = stripe_cart(store, region, product)
    intent_id = intent_of(cart_id)
    server.customer_confirms(intent_id)
    server.fail_next("payment_intents.retrieve", Fault.SERVER_ERROR)
    received = deliver(
        "payment_intent.amount_capturable_updated", {"id": intent_id}, event_id=event_id
    )
    assert received.status_code == 200  # answered at once; processing is the worker's
    assert WebhookEvent.objects.get(event_id=event_id).status == "failed"
    return cart_id


@pytest.fixture
def product(stripe_region):  # type: ignore[no-untyped-def]
    return factories.ProductFactory(prices={"usd": 1500, "jpy": 1500, "kwd": 1500})


def test_a_stripe_checkout_with_3d_secure_completes_under_the_same_key(
    store, stripe_server, stripe_region, product
):
    cart_id = stripe_cart(store, stripe_region, product)
    intent_id = intent_of(cart_id)
    intent = stripe_server.intents[intent_id]
    assert (intent["amount"], intent["capture_method"]) == (3000, "manual")
    assert intent["metadata"]["cart_id"] == cart_id
    session = store.get(f"carts/{cart_id}").json()["payment_session"]
    assert session["data"]["client_secret"] and "sk_" not in json.dumps(session)

    stripe_server.fail_next("payment_intents.confirm", Fault.REQUIRES_ACTION)
    stripe_server.customer_confirms(intent_id)
    challenged = store.complete(cart_id, key="3ds")
    assert challenged.status_code == 200 and challenged.json()["type"] == "cart"
    assert challenged.json()["data"]["payment_session"]["status"] == "requires_more"

    stripe_server.customer_confirms(intent_id)
    done = store.complete(cart_id, key="3ds")

    assert done.status_code == 200 and done.json()["type"] == "order"
    payment = Payment.objects.get(cart_id=cart_id)
    assert (payment.amount, payment.data["id"]) == (3000, intent_id)
    assert list(stripe_server.intents) == [intent_id]
    assert stripe_server.intents[intent_id]["status"] == "requires_capture"


def test_a_decline_is_402_and_another_card_completes(store, stripe_server, stripe_region, product):
    cart_id = stripe_cart(store, stripe_region, product)
    intent_id = intent_of(cart_id)
    stripe_server.fail_next("payment_intents.confirm", Fault.DECLINE)
    assert stripe_server.customer_confirms(intent_id)["error"]["code"] == "card_declined"

    assert store.complete(cart_id, key="card").status_code == 402

    stripe_server.customer_confirms(intent_id, "pm_card_mastercard")
    assert store.complete(cart_id, key="card").json()["type"] == "order"


def test_a_lost_answer_on_authorize_is_503_and_the_retry_completes_with_one_intent(
    store, stripe_server, stripe_region, product
):
    cart_id = stripe_cart(store, stripe_region, product)
    stripe_server.customer_confirms(intent_of(cart_id))
    stripe_server.fail_next("payment_intents.retrieve", Fault.DROP)

    assert store.complete(cart_id, key="lost").status_code == 503
    assert store.complete(cart_id, key="lost").status_code == 200
    assert (
        len([i for i in stripe_server.intents.values() if i["metadata"]["cart_id"] == cart_id]) == 1
    )


def test_a_region_change_or_a_deleted_session_leaves_no_open_intent(
    store, stripe_server, stripe_region, product
):
    other_region = factories.RegionFactory(currency_code="jpy", providers=["stripe"])
    moved = stripe_cart(store, stripe_region, product)
    deleted = stripe_cart(store, stripe_region, product)
    store.post(f"carts/{moved}/payment-sessions")

    store.post(f"carts/{moved}", {"region_id": other_region.id})
    store.client.delete(f"/api/store/carts/{deleted}/payment-sessions/stripe")

    assert open_intents(stripe_server) == []
    # The moved cart's new session is a new intent, in yen.
    new = store.post(f"carts/{moved}/payment-sessions").json()["payment_sessions"][0]
    assert stripe_server.intents[new["data"]["id"]]["currency"] == "jpy"
    assert open_intents(stripe_server) == [new["data"]["id"]]


@pytest.mark.parametrize(("currency", "price", "sent"), [("jpy", 1500, 3000), ("kwd", 1500, 3000)])
def test_zero_and_three_decimal_amounts_reach_stripe_in_its_minor_units(
    store, stripe_server, product, currency, price, sent
):
    region = factories.RegionFactory(currency_code=currency, providers=["stripe"])

    cart_id = stripe_cart(store, region, product)

    intent = stripe_server.intents[intent_of(cart_id)]
    assert (intent["currency"], intent["amount"]) == (currency, sent)


def test_a_webhook_with_a_bad_or_old_signature_is_refused_and_nothing_is_stored(
    stripe_server, stripe_region
):
    body = json.dumps({"id": "evt_bad", "type": "payment_intent.succeeded", "data": {"object": {}}})
    forged = Client().post(
        "/api/hooks/stripe",
        body,
        content_type="application/json",
        headers={"Stripe-Signature": "t=1,v1=deadbeef"},
    )
    old = deliver("payment_intent.succeeded", {"id": "pi_x"}, timestamp=int(time.time()) - 301)

    assert forged.status_code == 400 and forged.json()["code"] == "invalid_data"
    assert old.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_an_authorization_webhook_completes_a_cart_whose_client_vanished_once(
    store, stripe_server, stripe_region, product
):
    cart_id = stripe_cart(store, stripe_region, product)
    intent_id = intent_of(cart_id)
    stripe_server.customer_confirms(intent_id)

    first = deliver("payment_intent.amount_capturable_updated", {"id": intent_id}, event_id="evt_a")
    again = deliver("payment_intent.amount_capturable_updated", {"id": intent_id}, event_id="evt_a")

    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["id"] == again.json()["id"]  # stored once
    order = Order.objects.get(cart_id=cart_id)
    assert WebhookEvent.objects.get().status == "processed"
    assert PaymentEvent.objects.filter(cart_id=cart_id, type="webhook").count() == 1
    # The client comes back later and gets the same order.
    assert store.complete(cart_id, key="late").json()["data"]["id"] == order.id


def test_webhook_and_client_racing_to_complete_make_one_order(
    store, stripe_server, stripe_region, product
):
    cart_id = stripe_cart(store, stripe_region, product)
    intent_id = intent_of(cart_id)
    stripe_server.customer_confirms(intent_id)
    barrier = threading.Barrier(6)

    def client_completes(n: int):  # type: ignore[no-untyped-def]
        barrier.wait()
        try:
            return Storefront().complete(cart_id, key=f"client-{n}").status_code
        finally:
            connection.close()

    def webhook_arrives(n: int):  # type: ignore[no-untyped-def]
        barrier.wait()
        try:
            return deliver(
                "payment_intent.amount_capturable_updated", {"id": intent_id}, event_id=f"evt_{n}"
            ).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(client_completes, n) for n in range(3)]
        futures += [pool.submit(webhook_arrives, n) for n in range(3)]
        statuses = [f.result() for f in futures]

    assert Order.objects.filter(cart_id=cart_id).count() == 1
    assert Payment.objects.filter(cart_id=cart_id).count() == 1
    assert set(statuses) <= {200, 409}
    # A webhook that lost the race answered 409: Stripe redelivers, and it is a no-op then.
    for event in WebhookEvent.objects.exclude(status="processed"):
        redelivered = deliver(
            "payment_intent.amount_capturable_updated", {"id": intent_id}, event_id=event.event_id
        )
        assert redelivered.status_code == 200
    assert Order.objects.filter(cart_id=cart_id).count() == 1


def test_a_webhook_that_fails_to_process_stays_visible_and_the_worker_retries_it(
    store, stripe_server, stripe_region, product, settings
):
    cart_id = stripe_cart(store, stripe_region, product)
    intent_id = intent_of(cart_id)
    stripe_server.customer_confirms(intent_id)
    stripe_server.fail_next("payment_intents.retrieve", Fault.SERVER_ERROR)

    received = deliver(
        "payment_intent.amount_capturable_updated", {"id": intent_id}, event_id="evt_f"
    )
    record = WebhookEvent.objects.get()
    assert received.status_code == 200
    assert (record.status, record.attempts) == ("failed", 1) and record.last_error
    # Backoff: due again WEBHOOK_RETRY_BASE_SECONDS later, not before.
    assert record.next_attempt_at is not None
    wait = (record.next_attempt_at - record.received_at).total_seconds()
    assert settings.WEBHOOK_RETRY_BASE_SECONDS <= wait < settings.WEBHOOK_RETRY_BASE_SECONDS + 5
    assert webhooks_process_due() == 0
    WebhookEvent.objects.update(next_attempt_at=timezone.now())

    assert webhooks_process_due() == 1  # no redelivery needed

    assert WebhookEvent.objects.get().status == "processed"
    assert Order.objects.filter(cart_id=cart_id).exists()


def test_a_refund_made_in_stripes_dashboard_shows_up_as_a_refund(
    store, stripe_server, stripe_region, product
):
    cart_id = stripe_cart(store, stripe_region, product)
    intent_id = intent_of(cart_id)
    stripe_server.customer_confirms(intent_id)
    store.complete(cart_id, key="k")
    provider = get_provider("stripe")
    payment = Payment.objects.get(cart_id=cart_id)
    provider.capture(payment.as_input(), amount=3000, idempotency_key="dashboard-capture")
    stripe_server.refund_outside(intent_id, 1000)

    # Delivered out of order: the refund event first, the capture's after it.
    assert (
        deliver("charge.refunded", {"payment_intent": intent_id}, event_id="evt_r").status_code
        == 200
    )
    assert (
        deliver("payment_intent.succeeded", {"id": intent_id}, event_id="evt_s").status_code == 200
    )

    payment.refresh_from_db()
    assert (payment.amount_captured, payment.amount_refunded) == (3000, 1000)
    refund = Refund.objects.get()
    assert (refund.amount, refund.payment_id, refund.order_id) == (
        1000,
        payment.id,
        payment.order_id,
    )
    events = PaymentEvent.objects.filter(payment=payment, actor="webhook")
    assert sorted(e.type for e in events) == ["capture", "refund"]
    assert Order.objects.get(pk=payment.order_id).payment_status == "partially_refunded"


def test_an_operator_reprocesses_a_failed_webhook(store, stripe_server, stripe_region, product):
    from io import StringIO

    from django.core.management import call_command

    cart_id = cart_whose_webhook_failed(store, stripe_server, stripe_region, product, "evt_op")
    assert WebhookEvent.objects.get().status == "failed"

    out = StringIO()
    call_command("reprocess_webhooks", stdout=out)

    assert "processed" in out.getvalue()
    assert WebhookEvent.objects.get().status == "processed"
    assert Order.objects.filter(cart_id=cart_id).exists()


def test_lost_capture_and_refund_answers_retried_through_the_admin_api_move_money_once(
    store, stripe_server, stripe_region, product
):
    from tests.backoffice import admin_client, admin_post, staff_user

    cart_id = stripe_cart(store, stripe_region, product)
    intent_id = intent_of(cart_id)
    stripe_server.customer_confirms(intent_id)
    payment_id = store.complete(cart_id).json()["data"]["payments"][0]["id"]
    operator = admin_client(staff_user(username="ops", superuser=True))

    stripe_server.fail_next("payment_intents.capture", Fault.DROP)
    lost = admin_post(operator, f"payments/{payment_id}/capture", {"amount": 2000}, key="cap-1")
    retried = admin_post(operator, f"payments/{payment_id}/capture", {"amount": 2000}, key="cap-1")
    assert (lost.status_code, retried.status_code) == (503, 200)

    stripe_server.fail_next("refunds.create", Fault.DROP)
    body = {"amount": 500, "reason": "return"}
    lost = admin_post(operator, f"payments/{payment_id}/refund", body, key="ref-1")
    retried = admin_post(operator, f"payments/{payment_id}/refund", body, key="ref-1")
    assert (lost.status_code, retried.status_code) == (503, 200)

    assert [c["amount"] for c in stripe_server.captures] == [2000]
    assert [r["amount"] for r in stripe_server.refunds.values()] == [500]
    payment = Payment.objects.get(pk=payment_id)
    assert (payment.amount_captured, payment.amount_refunded) == (2000, 500)


def test_the_webhook_list_reprocesses_a_failed_event(store, stripe_server, stripe_region, product):
    from django.urls import reverse

    from tests.backoffice import staff_user

    cart_id = cart_whose_webhook_failed(store, stripe_server, stripe_region, product, "evt_admin")
    operator = Client()
    operator.force_login(staff_user(username="ops", superuser=True))
    changelist = reverse("admin:payments_webhookevent_changelist")
    assert "failed" in operator.get(changelist).content.decode()

    record = WebhookEvent.objects.get()
    response = operator.post(
        changelist,
        {"action": "reprocess", "index": 0, "_selected_action": [record.pk]},
        follow=True,
    )

    assert "Event evt_admin: processed" in response.content.decode()
    record.refresh_from_db()
    assert (record.status, record.attempts) == ("processed", 2)
    assert Order.objects.filter(cart_id=cart_id).exists()


def test_a_dashboard_refund_is_recorded_while_one_of_ours_is_pending(
    store, stripe_server, stripe_region, product
):
    cart_id = stripe_cart(store, stripe_region, product)
    intent_id = intent_of(cart_id)
    stripe_server.customer_confirms(intent_id)
    store.complete(cart_id, key="k")
    payment = Payment.objects.get(cart_id=cart_id)
    get_provider("stripe").capture(payment.as_input(), amount=3000, idempotency_key="cap")
    deliver("payment_intent.succeeded", {"id": intent_id}, event_id="evt_cap")
    # One of our refunds is reserved and waits for its provider's answer.
    Refund.objects.create(
        payment=payment, amount=200, reason="return", status=Refund.Status.PENDING
    )
    dashboard = stripe_server.refund_outside(intent_id, 700)

    deliver("charge.refunded", {"payment_intent": intent_id}, event_id="evt_dash")

    payment.refresh_from_db()
    assert payment.amount_refunded == 700
    assert Refund.objects.get(provider_reference=dashboard["id"]).amount == 700


def test_the_stripe_intent_a_customer_did_not_pay_with_is_canceled_after_the_order(
    store, stripe_server, stripe_region, product
):
    cart_id = store.cart_ready(stripe_region, product, provider="manual")
    intent_id = intent_of(cart_id)

    completed = store.complete(cart_id)

    # Released by the worker's task once the completion committed (eager here; the
    # worker tests run it in a real worker process).
    assert completed.status_code == 200
    assert stripe_server.intents[intent_id]["status"] == "canceled"
    assert open_intents(stripe_server) == []
    release = PaymentOperation.objects.get(type="release", session_id=intent_session(cart_id))
    assert (release.status, release.actor) == ("succeeded", "system")


def intent_session(cart_id: str) -> str:
    return PaymentSession.objects.get(cart_id=cart_id, provider_id="stripe").id


def test_an_intent_made_by_a_session_whose_answer_was_lost_is_found_not_orphaned(
    store, stripe_server, stripe_region, product
):
    cart_id = store.post("carts", {"region_id": stripe_region.id}).json()["id"]
    store.post(f"carts/{cart_id}/line-items", {"product_id": product.id, "quantity": 1})
    stripe_server.fail_next("payment_intents.create", Fault.DROP)

    sessions = store.post(f"carts/{cart_id}/payment-sessions")
    # The shopper walks away; the worker's sweep sends the initiate again, same key.
    resumed = operations_resume_due()

    assert sessions.status_code == 200
    session = PaymentSession.objects.get(cart_id=cart_id, provider_id="stripe")
    assert [op.type for op in resumed] == ["initiate"]
    assert resumed[0].status == "succeeded"
    assert list(stripe_server.intents) == [session.data["id"]]  # one intent, and it is known
