"""Money operations racing on one payment, with real threads against PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from payments.models import Payment, Refund
from tests.backoffice import (
    MONEY_PERMISSIONS,
    admin_client,
    admin_post,
    place_order,
    remote,
    staff_user,
)

pytestmark = pytest.mark.django_db(transaction=True)


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls at once, each on its own thread and database connection."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = calls[index]()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.fixture
def clients(db):  # type: ignore[no-untyped-def]
    """Ten operators' clients (each with their own Idempotency-Key scope)."""
    return [
        admin_client(staff_user(*MONEY_PERMISSIONS, username=f"operator{i}")) for i in range(10)
    ]


@pytest.fixture
def payment(region, product):  # type: ignore[no-untyped-def]
    order = place_order(region=region, items=[(product, 2)])
    return Payment.objects.get(order_id=order["id"])


def test_ten_concurrent_refunds_never_refund_more_than_was_captured_and_the_losers_get_422(
    clients, payment
):
    assert (
        admin_post(clients[0], f"payments/{payment.id}/capture", {"amount": 2000}).status_code
        == 200
    )
    path = f"payments/{payment.id}/refund"

    responses = race(
        [
            lambda c=client: admin_post(c, path, {"amount": 300, "reason": "return"})
            for client in clients
        ]
    )

    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 6 + [422] * 4
    assert {r.json()["code"] for r in responses if r.status_code == 422} == {
        "amount_exceeds_refundable"
    }
    payment.refresh_from_db()
    assert payment.amount_refunded == 1800 <= payment.amount_captured
    assert [e.amount for e in remote("refund")] == [300] * 6
    assert set(Refund.objects.values_list("status", flat=True)) == {"succeeded"}


def test_concurrent_captures_capture_once(clients, payment):
    path = f"payments/{payment.id}/capture"

    responses = race([lambda c=client: admin_post(c, path) for client in clients[:5]])

    assert sorted(r.status_code for r in responses) == [200] + [409] * 4
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"invalid_state"}
    assert [e.amount for e in remote("capture")] == [3000]
    payment.refresh_from_db()
    assert (payment.amount_captured, payment.open_operations()) == (3000, [])


def test_a_capture_racing_a_cancel_leaves_exactly_one_of_them_done(clients, payment):
    responses = race(
        [
            lambda: admin_post(clients[0], f"payments/{payment.id}/capture"),
            lambda: admin_post(clients[1], f"payments/{payment.id}/cancel"),
        ]
    )

    assert sorted(r.status_code for r in responses) == [200, 409]
    done = remote("capture") + remote("cancel")
    assert len(done) == 1
    payment.refresh_from_db()
    assert (payment.captured_at is None) != (payment.canceled_at is None)
