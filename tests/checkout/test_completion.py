"""Completing a cart exactly once (SPEC section 5), against the real PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from checkout.completion import recovery_point_committed
from checkout.models import Cart, LineItem, Order
from payments import errors
from payments.idempotency import Lease, fingerprint, idempotency_key_advance
from payments.models import IdempotencyKey, Payment, PaymentEvent, PaymentOperation, PaymentSession
from providers.test.models import LedgerEntry
from tests.checkout.conftest import Storefront

pytestmark = pytest.mark.django_db(transaction=True)


def authorizations(cart_id: str) -> int:
    session_ids = list(
        PaymentEvent.objects.filter(cart_id=cart_id).values_list("session_id", flat=True)
    )
    return LedgerEntry.objects.filter(operation="authorize", session_id__in=session_ids).count()


def test_completing_a_cart_creates_one_order_with_its_authorized_payment(store, cart_id):
    response = store.complete(cart_id, key="order-1")

    assert response.status_code == 200
    body = response.json()
    assert body["type"] == "order"
    order = Order.objects.get(cart_id=cart_id)
    assert body["data"]["id"] == order.id
    assert body["data"]["total"] == 3000
    assert body["data"]["payment_status"] == "awaiting"
    payment = Payment.objects.get(cart_id=cart_id)
    assert (payment.order_id, payment.amount, payment.provider_id) == (order.id, 3000, "test")
    session = PaymentSession.objects.get(cart_id=cart_id, provider_id="test")
    assert session.status == "authorized" and session.payment_authorized_at is not None
    cart = Cart.objects.get(pk=cart_id)
    assert cart.completed_at is not None and cart.idempotency_key == "order-1"
    key = IdempotencyKey.objects.get(key="order-1")
    assert (key.recovery_point, key.response_code, key.locked_at) == ("finished", 200, None)
    events = PaymentEvent.objects.filter(cart_id=cart_id, type="authorize")
    assert [(e.success, e.amount, e.actor) for e in events] == [(True, 3000, "storefront")]
    assert authorizations(cart_id) == 1
    # The manual session the customer did not choose was released, not left behind.
    sessions = PaymentSession.objects.filter(cart_id=cart_id)
    assert dict(sessions.values_list("provider_id", "status")) == {
        "test": "authorized",
        "manual": "canceled",
    }
    assert PaymentEvent.objects.filter(cart_id=cart_id, type="release", success=True).count() == 1
    assert store.get(f"carts/{cart_id}").json()["order_id"] == order.id


def test_a_retry_with_the_same_key_replays_the_stored_answer_byte_for_byte(store, cart_id):
    first = store.complete(cart_id, key="replay-me")
    second = store.complete(cart_id, key="replay-me")

    assert second.status_code == 200
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    for response in (first, second):
        assert response["Idempotency-Key"] == "replay-me"
        assert response["Access-Control-Expose-Headers"] == "Idempotency-Key"
    assert Order.objects.count() == 1


def test_without_a_key_the_server_makes_one_and_names_it(store, cart_id):
    response = store.complete(cart_id)

    key = response["Idempotency-Key"]
    assert response.status_code == 200 and len(key) >= 16
    assert Cart.objects.get(pk=cart_id).idempotency_key == key
    assert store.complete(cart_id, key=key)["Idempotent-Replayed"] == "true"


def test_a_quoted_key_is_the_same_key_as_its_bare_form(store, cart_id):
    first = store.complete(cart_id, key='"quoted \\"key\\""')
    assert first.status_code == 200
    assert IdempotencyKey.objects.filter(key='quoted "key"').exists()
    assert store.complete(cart_id, key='quoted "key"')["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize(
    "header",
    ["", "x" * 256, "caf\u00e9", "tab\there", '"unterminated', '"bad \\q escape"', '""'],
)
def test_a_malformed_key_is_refused_before_any_work(store, cart_id, header):
    response = store.complete(cart_id, key=header)

    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_invalid"
    assert not Order.objects.exists() and not IdempotencyKey.objects.exists()


def test_a_key_reused_for_another_cart_or_body_is_a_mismatch(store, region, product, cart_id):
    assert store.complete(cart_id, key="mine").status_code == 200
    other_cart = store.cart_ready(region, product)

    other = store.complete(other_cart, key="mine")
    other_body = store.complete(cart_id, key="mine", body={"note": "different"})

    for response in (other, other_body):
        assert response.status_code == 422
        assert response.json()["code"] == "idempotency_key_mismatch"
    assert not Order.objects.filter(cart_id=other_cart).exists()


def test_an_already_completed_cart_answers_with_its_order_under_any_key(store, cart_id):
    order_id = store.complete(cart_id, key="first").json()["data"]["id"]

    response = store.complete(cart_id, key="second")

    assert response.status_code == 200
    assert response.json()["data"]["id"] == order_id
    assert authorizations(cart_id) == 1


def test_a_lost_authorization_answer_is_503_and_the_retry_authorizes_once(store, region, product):
    cart_id = store.cart_ready(region, product, data={"fail_after_authorize": True})

    lost = store.complete(cart_id, key="flaky")
    assert lost.status_code == 503
    assert lost.json()["code"] == "provider_unavailable"
    assert int(lost["Retry-After"]) > 0
    assert authorizations(cart_id) == 1
    assert not Payment.objects.exists()

    retry = store.complete(cart_id, key="flaky")

    assert retry.status_code == 200 and retry.json()["type"] == "order"
    assert authorizations(cart_id) == 1
    assert Payment.objects.get(cart_id=cart_id).amount == 3000


def test_a_lost_answer_retried_under_another_key_still_authorizes_once(store, region, product):
    cart_id = store.cart_ready(region, product, data={"fail_after_authorize": True})
    assert store.complete(cart_id, key="first-try").status_code == 503

    assert store.complete(cart_id, key="second-try").status_code == 200
    assert authorizations(cart_id) == 1


@pytest.mark.parametrize("point", ["payment_authorized", "finished"])
def test_a_crash_after_a_recovery_point_resumes_without_a_second_authorization(
    store, cart_id, point
):
    def crash(sender, point: str, **kwargs):  # type: ignore[no-untyped-def]
        if point == crashing_at:
            raise RuntimeError("worker died")

    crashing_at = point
    recovery_point_committed.connect(crash)
    try:
        crashed = Storefront(Client(raise_request_exception=False)).complete(cart_id, key="crashy")
    finally:
        recovery_point_committed.disconnect(crash)
    assert crashed.status_code == 500
    assert IdempotencyKey.objects.get(key="crashy").recovery_point == point

    retry = store.complete(cart_id, key="crashy")

    assert retry.status_code == 200 and retry.json()["type"] == "order"
    assert Order.objects.filter(cart_id=cart_id).count() == 1
    assert Payment.objects.filter(cart_id=cart_id).count() == 1
    assert authorizations(cart_id) == 1


def test_a_decline_is_not_final_and_the_same_key_succeeds_after_the_customer_changes_card(
    store, region, product
):
    cart_id = store.cart_ready(region, product, data={"outcome": "decline"})

    declined = store.complete(cart_id, key="card")
    assert declined.status_code == 402
    assert declined.json()["code"] == "payment_authorization_failed"
    assert PaymentSession.objects.get(cart_id=cart_id, provider_id="test").status == "error"
    failed = PaymentEvent.objects.get(cart_id=cart_id, type="authorize")
    assert not failed.success and failed.error.startswith("declined")

    store.post(f"carts/{cart_id}/payment-sessions/test", {"data": {"outcome": "authorized"}})
    retry = store.complete(cart_id, key="card")

    assert retry.status_code == 200 and retry.json()["type"] == "order"
    assert authorizations(cart_id) == 1


def test_requires_more_answers_the_cart_and_the_same_key_continues_after_the_customer_acts(
    store, region, product
):
    cart_id = store.cart_ready(region, product, data={"outcome": "requires_more"})

    challenged = store.complete(cart_id, key="3ds")
    assert challenged.status_code == 200
    body = challenged.json()
    assert body["type"] == "cart"
    assert body["data"]["payment_session"]["status"] == "requires_more"
    assert IdempotencyKey.objects.get(key="3ds").response_code is None

    store.post(f"carts/{cart_id}/payment-sessions/test", {"data": {"outcome": "authorized"}})
    done = store.complete(cart_id, key="3ds")

    assert done.json()["type"] == "order"


def test_nothing_to_pay_for_is_400_and_not_final(store, region, product):
    cart_id = store.post("carts", {"region_id": region.id}).json()["id"]

    empty = store.complete(cart_id, key="early")
    assert empty.status_code == 400 and empty.json()["code"] == "invalid_data"

    store.post(f"carts/{cart_id}/line-items", {"product_id": product.id, "quantity": 1})
    no_session = store.complete(cart_id, key="early")
    assert no_session.status_code == 400

    store.post(f"carts/{cart_id}/payment-session", {"provider_id": "manual"})
    assert store.complete(cart_id, key="early").status_code == 200


def test_a_session_authorized_for_another_amount_is_reauthorized_at_the_cart_total(store, cart_id):
    PaymentSession.objects.filter(cart_id=cart_id).update(amount=1)

    assert store.complete(cart_id, key="amount").status_code == 200

    payment = Payment.objects.get(cart_id=cart_id)
    assert payment.amount == 3000
    entry = LedgerEntry.objects.get(operation="authorize")
    assert entry.amount == 3000


def test_a_request_in_flight_holds_its_key_and_its_cart(store, region, product):
    cart_id = store.cart_ready(region, product, data={"delay_ms": 1500})
    results = {}

    def slow_complete() -> None:
        results["slow"] = Storefront().complete(cart_id, key="slow")
        connection.close()

    worker = threading.Thread(target=slow_complete)
    worker.start()
    try:
        for _ in range(100):
            if IdempotencyKey.objects.filter(key="slow", locked_at__isnull=False).exists():
                break
            threading.Event().wait(0.02)
        same_key = store.complete(cart_id, key="slow")
        other_key = store.complete(cart_id, key="other")
        change = store.post(
            f"carts/{cart_id}/line-items", {"product_id": product.id, "quantity": 1}
        )
    finally:
        worker.join()

    assert same_key.status_code == 409 and same_key.json()["code"] == "idempotency_key_in_use"
    assert same_key["Retry-After"]
    assert other_key.status_code == 409
    assert other_key.json()["code"] == "cart_completion_in_progress"
    assert change.status_code == 409 and change.json()["code"] == "cart_completion_in_progress"
    assert results["slow"].status_code == 200
    assert (
        store.post(f"carts/{cart_id}/line-items", {"product_id": product.id, "quantity": 1}).json()[
            "code"
        ]
        == "cart_completed"
    )


def test_a_dead_requests_lock_is_taken_over_after_its_lease_and_it_cannot_write_after(
    store, cart_id
):
    # What a worker killed mid-request leaves behind: a leased key nobody will release.
    dead_token = uuid.uuid4()
    key = IdempotencyKey.objects.create(
        scope="store",
        key="dead",
        request_method="POST",
        request_path=f"/api/store/carts/{cart_id}/complete",
        request_fingerprint=fingerprint(b""),
        resource_id=cart_id,
        locked_at=timezone.now(),
        lock_token=dead_token,
    )

    assert store.complete(cart_id, key="dead").json()["code"] == "idempotency_key_in_use"

    IdempotencyKey.objects.filter(pk=key.pk).update(
        locked_at=timezone.now() - timedelta(seconds=61)
    )
    taken_over = store.complete(cart_id, key="dead")
    assert taken_over.status_code == 200

    stale = Lease(key_id=key.pk, token=dead_token, recovery_point="started")
    with pytest.raises(errors.IdempotencyKeyInUse), transaction.atomic():
        idempotency_key_advance(stale, "payment_authorized")
    assert IdempotencyKey.objects.get(pk=key.pk).recovery_point == "finished"


def _race(cart_id: str, keys: list[str]) -> list:  # type: ignore[type-arg]
    barrier = threading.Barrier(len(keys))

    def complete(key: str):  # type: ignore[no-untyped-def]
        try:
            barrier.wait()
            return Storefront().complete(cart_id, key=key)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        return list(pool.map(complete, keys))


@pytest.mark.parametrize("distinct_keys", [False, True], ids=["one key", "twenty keys"])
def test_twenty_concurrent_completes_make_one_order_one_payment_one_authorization(
    store, region, product, distinct_keys
):
    cart_id = store.cart_ready(region, product, data={"delay_ms": 50})
    keys = [f"race-{i if distinct_keys else 0}" for i in range(20)]

    responses = _race(cart_id, keys)

    order = Order.objects.get(cart_id=cart_id)
    assert Payment.objects.filter(cart_id=cart_id, canceled_at__isnull=True).count() == 1
    assert authorizations(cart_id) == 1
    for response in responses:
        if response.status_code == 200:
            assert json.loads(response.content)["data"]["id"] == order.id
        else:
            assert response.status_code == 409, response.content
            assert response.json()["code"] in {
                "idempotency_key_in_use",
                "cart_completion_in_progress",
            }
    assert any(r.status_code == 200 for r in responses)


def test_stalled_checkouts_are_finished_or_their_authorization_canceled(store, region, product):
    from django.core.management import call_command

    def crash(sender, point: str, **kwargs):  # type: ignore[no-untyped-def]
        if point == "payment_authorized":
            raise RuntimeError("client vanished")

    finishable = store.cart_ready(region, product)
    broken = store.cart_ready(region, product)
    lost = store.cart_ready(region, product, data={"fail_after_authorize": True})
    recovery_point_committed.connect(crash)
    try:
        crashing = Storefront(Client(raise_request_exception=False))
        assert crashing.complete(finishable, key="k-finishable").status_code == 500
        assert crashing.complete(broken, key="k-broken").status_code == 500
    finally:
        recovery_point_committed.disconnect(crash)
    assert store.complete(lost, key="k-lost").status_code == 503
    # The broken cart's contents changed behind the checkout's back: it cannot be completed.
    LineItem.objects.filter(cart_id=broken).update(quantity=5)

    from io import StringIO

    out = StringIO()
    call_command("complete_stalled_checkouts", "--older-than", "0", stdout=out)

    assert Order.objects.filter(cart_id=finishable).exists()
    assert Order.objects.filter(cart_id=lost).exists()
    assert not Order.objects.filter(cart_id=broken).exists()
    canceled = Payment.objects.get(cart_id=broken)
    assert canceled.canceled_at is not None
    assert LedgerEntry.objects.filter(operation="cancel", amount=3000).count() == 1
    assert authorizations(lost) == 1
    assert f"{broken} (key k-broken): canceled" in out.getvalue()
    assert f"{finishable} (key k-finishable): completed" in out.getvalue()
    # Every remote authorization is now attached to an order or canceled.
    assert_every_authorization_has_an_order_or_a_cancel()


def assert_every_authorization_has_an_order_or_a_cancel() -> None:
    for entry in LedgerEntry.objects.filter(operation="authorize"):
        canceled = LedgerEntry.objects.filter(operation="cancel", authorization=entry.reference)
        ordered = Payment.objects.filter(
            data__authorization=entry.reference, order__isnull=False, canceled_at__isnull=True
        )
        assert canceled.exists() or ordered.exists(), entry.reference


def test_a_worker_that_died_after_the_authorization_but_before_its_payment_is_finished(
    store, cart_id, monkeypatch
):
    from io import StringIO

    from django.core.management import call_command

    import checkout.completion

    def worker_dies(**kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("worker killed")

    monkeypatch.setattr(checkout.completion, "payment_create_from_authorization", worker_dies)
    crashed = Storefront(Client(raise_request_exception=False)).complete(cart_id, key="dies")
    monkeypatch.undo()
    assert crashed.status_code == 500
    assert authorizations(cart_id) == 1 and not Payment.objects.exists()
    # The dead process's authorization is still `requested`; its lease lapses.
    PaymentOperation.objects.filter(type="authorize").update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )

    call_command("complete_stalled_checkouts", "--older-than", "0", stdout=StringIO())

    assert Order.objects.filter(cart_id=cart_id).exists()
    assert authorizations(cart_id) == 1
    assert_every_authorization_has_an_order_or_a_cancel()


def test_keys_expire_a_day_after_they_finish_and_not_before(store, region, product):
    from io import StringIO

    from django.core.management import call_command

    finished_long_ago = store.cart_ready(region, product)
    store.complete(finished_long_ago, key="old")
    store.complete(store.cart_ready(region, product), key="recent")
    declined = store.cart_ready(region, product, data={"outcome": "decline"})
    store.complete(declined, key="unfinished")
    IdempotencyKey.objects.filter(key__in=["old", "unfinished"]).update(
        created_at=timezone.now() - timedelta(hours=30)
    )
    IdempotencyKey.objects.filter(key="old").update(
        finished_at=timezone.now() - timedelta(hours=25)
    )

    out = StringIO()
    call_command("expire_idempotency_keys", stdout=out)

    assert "1 expired key(s) deleted" in out.getvalue()
    assert sorted(IdempotencyKey.objects.values_list("key", flat=True)) == ["recent", "unfinished"]


def test_an_authorization_canceled_before_its_order_is_never_reused(store, cart_id):
    from tests.backoffice import admin_client, admin_post, staff_user

    def crash(sender, point: str, **kwargs):  # type: ignore[no-untyped-def]
        if point == "payment_authorized":
            raise RuntimeError("worker died")

    recovery_point_committed.connect(crash)
    try:
        Storefront(Client(raise_request_exception=False)).complete(cart_id, key="k")
    finally:
        recovery_point_committed.disconnect(crash)
    operator = admin_client(staff_user(username="ops", superuser=True))
    payment = Payment.objects.get(cart_id=cart_id)
    assert admin_post(operator, f"payments/{payment.pk}/cancel").status_code == 200

    retry = store.complete(cart_id, key="k")

    assert (retry.status_code, retry.json()["code"]) == (400, "invalid_data")
    assert not Order.objects.exists()
    store.post(f"carts/{cart_id}/payment-sessions/test/refresh")
    final = store.complete(cart_id, key="k")
    assert final.json()["type"] == "order", final.json()
    live = Payment.objects.get(cart_id=cart_id, canceled_at__isnull=True)
    assert live.data["authorization"] != payment.data["authorization"]
    assert_every_authorization_has_an_order_or_a_cancel()
