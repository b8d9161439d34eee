"""A storefront's first step is generating a client from /api/schema/ (issue #16). These tests
do what it does: validate the served schema, generate a Python client with
openapi-python-client, and run a checkout, a capture and a refund through that client
against a live server (the `test` provider, PostgreSQL). The client must be as strict as
the API: typed answers, no "unset" fields in responses, the Idempotency-Key limits known.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest
from openapi_spec_validator import validate

from tests import factories
from tests.backoffice import MONEY_PERMISSIONS, staff_user

pytestmark = pytest.mark.django_db(transaction=True)

PACKAGE = "payments_api_client"


def served_schema(base_url: str) -> bytes:
    with urllib.request.urlopen(f"{base_url}/api/schema/?format=json") as response:
        assert response.status == 200
        return response.read()


def test_the_served_schema_is_valid_openapi(client):  # type: ignore[no-untyped-def]
    schema = client.get("/api/schema/?format=json").json()

    validate(schema)  # raises on the first error


@pytest.fixture
def generated(live_server, tmp_path: Path) -> Iterator[ModuleType]:  # type: ignore[no-untyped-def]
    """The client package openapi-python-client makes from the live server's schema."""
    schema = tmp_path / "schema.json"
    schema.write_bytes(served_schema(live_server.url))
    config = tmp_path / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatting: the code is imported, not read
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "openapi-python-client"),
            "generate",
            "--path",
            str(schema),
            "--output-path",
            str(tmp_path / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # It warns, and leaves the endpoint or model out, for what it cannot type.
    assert "warning" not in output.lower(), output
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _call(module: str, **kwargs: Any) -> Any:
    """`sync_detailed` of one generated endpoint module: status, headers and parsed body."""
    return importlib.import_module(f"{PACKAGE}.api.{module}").sync_detailed(**kwargs)


def test_response_models_of_the_generated_client_have_no_unset_fields(generated):  # type: ignore[no-untyped-def]
    models = importlib.import_module(f"{PACKAGE}.models")
    types = importlib.import_module(f"{PACKAGE}.types")
    optional = {
        name: [f.name for f in attrs.fields(model) if f.default is types.UNSET]
        for name, model in vars(models).items()
        # Request bodies have optional fields; the error body's `fields` is there only for
        # validation errors.
        if attrs.has(model) and not name.endswith("Request") and name != "Error"
    }

    assert {name: fields for name, fields in optional.items() if fields} == {}
    assert {"Cart", "Order", "PaymentSession", "AdminOrder", "OrderCompletion"} <= set(optional)


def test_a_generated_client_runs_a_checkout_a_capture_and_a_refund(generated, live_server):  # type: ignore[no-untyped-def]
    region = factories.RegionFactory(providers=["manual", "test"])
    product = factories.ProductFactory(prices={region.currency_code: 1500})
    m = importlib.import_module(f"{PACKAGE}.models")
    store = generated.Client(base_url=live_server.url, raise_on_unexpected_status=True)

    cart = _call(
        "store.store_cart_create",
        client=store,
        body=m.CartCreateInputRequest(region_id=region.id, email="c@example.com"),
    ).parsed
    assert isinstance(cart, m.Cart) and cart.payment_session is None
    cart = _call(
        "store.store_cart_add_line_item",
        client=store,
        id=cart.id,
        body=m.LineItemCreateInputRequest(product_id=product.id, quantity=2),
    ).parsed
    cart = _call("store.store_cart_create_payment_sessions", client=store, id=cart.id).parsed
    cart = _call(
        "store.store_cart_select_payment_session",
        client=store,
        id=cart.id,
        body=m.SessionSelectInputRequest(provider_id="test"),
    ).parsed
    assert isinstance(cart.payment_session, m.PaymentSession)
    assert (cart.payment_session.provider_id, cart.payment_session.status) == (
        "test",
        m.SessionStatusEnum.PENDING,
    )

    # A key longer than 255 characters: the API says 400 idempotency_key_invalid, as typed.
    refused = _call(
        "store.store_cartcomplete_complete", client=store, id=cart.id, idempotency_key="k" * 300
    )
    assert refused.status_code == 400
    assert isinstance(refused.parsed, m.Error)
    assert refused.parsed.code == "idempotency_key_invalid"

    completed = _call(
        "store.store_cartcomplete_complete",
        client=store,
        id=cart.id,
        idempotency_key='"checkout 1"',  # the structured-field form
    )
    assert completed.headers["Idempotency-Key"] == "checkout 1"
    assert isinstance(completed.parsed, m.OrderCompletion)
    order = completed.parsed.data
    assert isinstance(order, m.Order)
    assert (order.status, order.payment_status, order.total) == (
        m.OrderStatusEnum.PENDING,
        m.OrderPaymentStatusEnum.AWAITING,
        3000,
    )
    assert [(i.product_id, i.quantity) for i in order.items] == [(product.id, 2)]
    assert all(isinstance(i, m.LineItem) for i in order.items)

    replayed = _call("store.store_cartcomplete_complete", client=store, id=cart.id)
    assert isinstance(replayed.parsed, m.OrderCompletion)
    assert replayed.parsed.data.id == order.id

    operator = staff_user(*MONEY_PERMISSIONS)
    token = importlib.import_module("rest_framework.authtoken.models").Token
    admin = generated.AuthenticatedClient(
        base_url=live_server.url,
        token=token.objects.create(user=operator).key,
        prefix="Token",
        raise_on_unexpected_status=True,
    )

    captured = _call("admin.admin_order_capture", client=admin, id=order.id)
    assert captured.status_code == 200 and captured.headers["Idempotency-Key"]
    assert isinstance(captured.parsed, m.AdminOrder)
    assert (captured.parsed.payment_status, captured.parsed.paid_total) == (
        m.OrderPaymentStatusEnum.CAPTURED,
        3000,
    )

    refund = m.RefundInputRequest(amount=1000, reason=m.ReasonEnum.RETURN, note="damaged")
    refunded = _call(
        "admin.admin_order_refund", client=admin, id=order.id, body=refund, idempotency_key="r-1"
    )
    again = _call(
        "admin.admin_order_refund", client=admin, id=order.id, body=refund, idempotency_key="r-1"
    )
    assert isinstance(refunded.parsed, m.AdminOrder)
    assert (refunded.parsed.payment_status, refunded.parsed.refunded_total) == (
        m.OrderPaymentStatusEnum.PARTIALLY_REFUNDED,
        1000,
    )
    [refund_row] = refunded.parsed.refunds
    assert isinstance(refund_row, m.AdminRefund)
    assert (refund_row.amount, refund_row.status) == (1000, m.RefundStatusEnum.SUCCEEDED)
    # The same key and body: the stored answer, once more, and the money moved once.
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.content == refunded.content
    assert "Idempotent-Replayed" not in refunded.headers

    [payment] = refunded.parsed.payments
    detail = _call("admin.admin_payment_retrieve", client=admin, id=payment.id).parsed
    assert isinstance(detail, m.PaymentDetail)
    assert (detail.amount_captured, detail.amount_refunded) == (3000, 1000)
