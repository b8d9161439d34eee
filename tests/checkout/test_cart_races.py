"""A cart change racing its completion, and a provider that is down (SPEC 4).

One of the two wins and the other gets its 409, never a 500; no order is ever left with an
authorization that the change released. A provider that cannot be reached fails only its
own session."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection

from checkout.models import Order
from payments.models import Payment, PaymentOperation, PaymentSession
from payments.services import SYSTEM
from payments.services.sessions import payment_session_release
from tests import factories
from tests.backoffice import remote
from tests.checkout.conftest import Storefront


def race(*calls: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return call()
        finally:
            connection.close()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("delay_ms", [0, 300])
def test_a_cart_change_racing_its_completion_never_orders_a_released_authorization(
    region, product, delay_ms
):
    outcomes = set()
    for attempt in range(6):
        store = Storefront()
        cart_id = store.cart_ready(region, product, data={"delay_ms": delay_ms})
        add = {"product_id": product.id, "quantity": 1}

        def complete(cart_id: str = cart_id, key: str = f"k{attempt}") -> int:
            return Storefront().complete(cart_id, key=key).status_code

        def change(cart_id: str = cart_id, body: dict[str, object] = add) -> int:
            return Storefront().post(f"carts/{cart_id}/line-items", body).status_code

        completed, changed = race(complete, change)

        outcomes.add((completed, changed))
        assert (completed, changed) in {(200, 409), (409, 200), (200, 200)}, (completed, changed)
        order = Order.objects.filter(cart_id=cart_id).first()
        assert (order is not None) == (completed == 200)
        if order is not None:
            payment = Payment.objects.get(order=order)
            assert payment.canceled_at is None and payment.amount == order.total
            released = {e.authorization for e in remote("cancel")}
            assert payment.data["authorization"] not in released
    # A change that won, and a completion that waited for it, is a completion of the new cart.
    assert outcomes


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.django_db
def test_stripe_down_fails_only_its_own_session_and_manual_still_pays(
    stripe_server, settings, product
):
    region = factories.RegionFactory(currency_code="usd", providers=["stripe", "manual"])
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{closed_port()}"
    store = Storefront()
    cart_id = store.post("carts", {"region_id": region.id}).json()["id"]
    store.post(f"carts/{cart_id}/line-items", {"product_id": product.id, "quantity": 1})

    sessions = store.post(f"carts/{cart_id}/payment-sessions")
    stripe_selected = store.post(f"carts/{cart_id}/payment-session", {"provider_id": "stripe"})
    manual_selected = store.post(f"carts/{cart_id}/payment-session", {"provider_id": "manual"})
    completed = store.complete(cart_id)

    assert sessions.status_code == 200
    statuses = {s["provider_id"]: s["status"] for s in sessions.json()["payment_sessions"]}
    assert statuses == {"stripe": "error", "manual": "pending"}
    assert stripe_selected.status_code == 503
    assert stripe_selected.json()["code"] == "provider_unavailable"
    assert int(stripe_selected["Retry-After"]) > 0
    assert manual_selected.status_code == 200
    assert (completed.status_code, completed.json()["type"]) == (200, "order")


@pytest.mark.django_db(transaction=True)
def test_two_workers_releasing_one_session_at_once_release_it_once(region, product):
    cart_id = Storefront().cart_ready(region, product, provider="manual")
    session_id = PaymentSession.objects.get(cart_id=cart_id, provider_id="test").id

    def release() -> str:
        session = PaymentSession.objects.get(pk=session_id)
        return payment_session_release(session=session, actor=SYSTEM).id

    first, second = race(release, release)

    assert first == second  # one operation, written down once
    assert PaymentOperation.objects.get(type="release").status == "succeeded"
    assert PaymentSession.objects.get(pk=session_id).status == "canceled"
