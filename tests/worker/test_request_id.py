"""The request id crosses the broker: a real worker logs a checkout's task under the id of
the request that queued it (config/requestid.py)."""

from __future__ import annotations

import pytest

from tests.checkout.conftest import Storefront
from tests.worker.conftest import eventually

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_worker_logs_the_checkouts_task_under_the_checkouts_request_id(worker, region, product):
    store = Storefront()
    cart_id = store.cart_ready(region, product)
    request_id = "req-0f1e2d3c4b5a6978"

    completed = store.post(f"carts/{cart_id}/complete", None, **{"X-Request-Id": request_id})

    assert completed.status_code == 200
    released = f"[{request_id}] Released 1 unselected sessions of cart {cart_id}"
    eventually(
        lambda: released in worker.log.read_text(errors="replace"),
        what="log the release under the checkout's request id",
    )
