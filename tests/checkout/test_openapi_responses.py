"""Real answers against the schema that documents them, component by component (issue #16).

A walk through the storefront and the admin API (checkout, 3-D Secure, swap, captures,
refunds, cancels, regions, products, errors) records every answer. Each must validate
against its operation's documented schema for that status, and more strictly than JSON
Schema asks: every key it has is declared, every required one is there, a null sits only in
a nullable field, and an object is typed, not free-form (but a provider's own `data`). Every
response component must list all its properties as required (the API writes them all), and
the walk must meet each one. Nothing here names a resource's fields: a field added to a
serializer is checked as soon as it is there.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import stripe
from openapi_schema_validator import OAS30Validator
from rest_framework.test import APIClient

from tests import factories
from tests.backoffice import admin_client, staff_user
from tests.providers.stripe_fake import WEBHOOK_SECRET

pytestmark = pytest.mark.django_db

# A provider's `data` is its own (a Stripe client secret, the test provider's switches):
# free-form on purpose. Any other object in an answer must be typed.
FREE_FORM = {"data"}
# The error body's `fields` is only in validation errors.
OPTIONAL = {("Error", "fields")}


@dataclass
class Answer:
    method: str
    template: str
    status: int
    body: Any


@dataclass
class Recorder:
    client: APIClient
    answers: list[Answer] = field(default_factory=list)

    def __call__(
        self,
        method: str,
        template: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        **ids: str,
    ) -> Any:
        path = template.format(**ids)
        # A str is sent as it is (a signed webhook), anything else as JSON.
        encoding = (
            {"content_type": "application/json"} if isinstance(body, str) else {"format": "json"}
        )
        response = getattr(self.client, method)(path, body, headers=headers or {}, **encoding)
        assert response.status_code == status, (method, path, response.content)
        answer = response.json()
        self.answers.append(Answer(method, template, status, answer))
        return answer


@pytest.fixture
def schema(client) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return client.get("/api/schema/?format=json").json()


def stripe_event(event_type: str) -> tuple[str, dict[str, str]]:
    """A body and the Stripe-Signature Stripe would send with it."""
    body = json.dumps({"id": "evt_walk", "type": event_type, "data": {"object": {}}})
    now = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(f"{now}.{body}", WEBHOOK_SECRET)
    return body, {"Stripe-Signature": f"t={now},v1={signature}"}


@pytest.fixture
def answers(region, product, stripe_server, klarna_server) -> Iterator[list[Answer]]:  # type: ignore[no-untyped-def]
    """Every answer of a walk through both APIs and a webhook."""
    store = Recorder(APIClient())
    boss = Recorder(admin_client(staff_user(username="boss", superuser=True)))
    shirt = factories.ProductFactory(title="Shirt", prices={region.currency_code: 2000})

    store("get", "/api/store/regions", 200)
    store("get", "/api/store/products?region_id={region}", 200, region=region.id)
    store("get", "/api/store/products", 400)
    store("post", "/api/store/carts", 400, {"region_id": region.id, "email": "nope"})
    store("get", "/api/store/carts/{id}", 404, id="cart_unknown")

    def checkout(cart: str, outcome: str = "authorized") -> Any:
        base = "/api/store/carts/{id}"
        session = base + "/payment-sessions/test"
        store("post", base + "/payment-sessions", 200, id=cart)
        store("post", base + "/payment-session", 200, {"provider_id": "test"}, id=cart)
        if outcome != "authorized":
            store("post", session, 200, {"data": {"outcome": outcome}}, id=cart)
            assert store("post", base + "/complete", 200, id=cart)["type"] == "cart"
            store("post", session, 200, {"data": {"outcome": "authorized"}}, id=cart)
        return store("post", base + "/complete", 200, id=cart)

    def order(quantity: int = 2, outcome: str = "authorized") -> dict[str, Any]:
        cart = store("post", "/api/store/carts", 201, {"region_id": region.id})["id"]
        body = {"product_id": product.id, "quantity": quantity}
        store("post", "/api/store/carts/{id}/line-items", 200, body, id=cart)
        completion = checkout(cart, outcome)
        assert completion["type"] == "order"
        return completion["data"]

    cart = store("post", "/api/store/carts", 201, {"region_id": region.id, "email": "a@b.co"})
    cart_id = cart["id"]
    store("get", "/api/store/carts/{id}", 200, id=cart_id)
    store("post", "/api/store/carts/{id}", 200, {"email": "c@example.com"}, id=cart_id)
    items = "/api/store/carts/{id}/line-items"
    store("post", items, 200, {"product_id": product.id, "quantity": 3}, id=cart_id)
    cart = store("post", items, 200, {"product_id": shirt.id, "quantity": 1}, id=cart_id)
    first, second = (item["id"] for item in cart["items"])
    store("post", items + "/{item_id}", 200, {"quantity": 2}, id=cart_id, item_id=first)
    store("delete", items + "/{item_id}", 200, id=cart_id, item_id=second)
    store("post", "/api/store/carts/{id}/payment-sessions", 200, id=cart_id)
    sessions = "/api/store/carts/{id}/payment-sessions/{provider_id}"
    store("post", sessions + "/refresh", 200, id=cart_id, provider_id="manual")
    store("delete", sessions, 200, id=cart_id, provider_id="manual")
    store("post", "/api/store/carts/{id}/complete", 400, id=cart_id)  # no session selected
    complete = "/api/store/carts/{id}/complete"
    store("post", complete, 400, headers={"Idempotency-Key": "k" * 256}, id=cart_id)

    paid = order(outcome="requires_more")
    store("get", "/api/store/orders/{id}", 200, id=paid["id"])
    boss("post", "/api/admin/orders/{id}/capture", 200, id=paid["id"])
    refund = {"amount": 500, "reason": "return", "note": "torn"}
    boss("post", "/api/admin/orders/{id}/refund", 200, refund, id=paid["id"])
    boss("post", "/api/admin/orders/{id}/refund", 422, {**refund, "amount": 10**9}, id=paid["id"])

    swap_body = {
        "return_items": [{"item_id": paid["items"][0]["id"], "quantity": 1}],
        "additional_items": [{"product_id": shirt.id, "quantity": 1}],
    }
    swap = boss("post", "/api/admin/orders/{id}/swaps", 201, swap_body, id=paid["id"])
    assert checkout(swap["cart_id"])["type"] == "swap"
    boss("get", "/api/admin/swaps/{id}", 200, id=swap["id"])
    boss("post", "/api/admin/swaps/{id}/process-payment", 200, id=swap["id"])
    store("get", "/api/store/orders/{id}", 200, id=paid["id"])  # with its refund and swap
    returned = {"return_items": swap_body["return_items"], "additional_items": []}
    other = boss("post", "/api/admin/orders/{id}/swaps", 201, returned, id=paid["id"])
    boss("post", "/api/admin/swaps/{id}/cancel", 200, id=other["id"])

    payment = order()["payments"][0]["id"]
    boss("post", "/api/admin/payments/{id}/capture", 200, {"amount": 1000}, id=payment)
    boss("post", "/api/admin/payments/{id}/refund", 200, refund, id=payment)
    boss("get", "/api/admin/payments/{id}", 200, id=payment)
    boss("post", "/api/admin/payments/{id}/cancel", 200, id=order()["payments"][0]["id"])
    boss("post", "/api/admin/orders/{id}/cancel", 200, id=order()["id"])
    boss("get", "/api/admin/orders/{id}", 200, id=paid["id"])
    boss("get", "/api/admin/orders?limit=2", 200)
    boss("get", "/api/admin/orders?cursor=garbage", 404)
    boss("get", "/api/admin/providers/test/ledger", 200)

    boss("get", "/api/admin/payment-providers", 200)
    regions = "/api/admin/regions"
    created = boss("post", regions, 201, {"name": "Japan", "currency_code": "jpy"})
    boss("get", regions, 200)
    boss("get", regions + "/{id}", 200, id=created["id"])
    boss("post", regions + "/{id}", 200, {"name": "Nippon"}, id=created["id"])
    boss(
        "post", regions + "/{id}/payment-providers", 200, {"provider_id": "test"}, id=created["id"]
    )
    boss(
        "post", regions + "/{id}/payment-providers", 422, {"provider_id": "nope"}, id=created["id"]
    )
    boss(
        "delete",
        regions + "/{id}/payment-providers/{provider_id}",
        200,
        id=created["id"],
        provider_id="test",
    )
    prices = [{"currency_code": "jpy", "amount": 500}]
    boss("post", "/api/admin/products", 201, {"title": "Fan", "sku": "fan-1", "prices": prices})
    boss("get", "/api/admin/products", 200)
    Recorder(APIClient())("get", "/api/admin/products", 401)

    stripe_region = factories.RegionFactory(
        currency_code=region.currency_code, providers=["stripe"]
    )
    card = store("post", "/api/store/carts", 201, {"region_id": stripe_region.id})["id"]
    store("post", items, 200, {"product_id": product.id, "quantity": 1}, id=card)
    sessions = store("post", "/api/store/carts/{id}/payment-sessions", 200, id=card)
    assert sessions["payment_sessions"][0]["next_action"]["type"] == "use_stripe_sdk"
    klarna_region = factories.RegionFactory(
        currency_code="sek", countries=["se"], providers=["klarna"]
    )
    krona = factories.ProductFactory(title="Lamp", prices={"sek": 29900})
    widget = store("post", "/api/store/carts", 201, {"region_id": klarna_region.id})["id"]
    store("post", items, 200, {"product_id": krona.id, "quantity": 1}, id=widget)
    sessions = store("post", "/api/store/carts/{id}/payment-sessions", 200, id=widget)
    assert sessions["payment_sessions"][0]["next_action"]["type"] == "klarna_widget"
    hooks = Recorder(APIClient())
    event, signature = stripe_event("customer.created")  # nothing to do for it
    hooks("post", "/api/hooks/stripe", 200, event, headers=signature)
    hooks("post", "/api/hooks/stripe", 200, event, headers=signature)  # delivered again
    hooks("post", "/api/hooks/stripe", 400, event)  # unsigned
    hooks("post", "/api/hooks/nope", 404, "{}")

    yield store.answers + boss.answers + hooks.answers


def _component(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _allows_null(schema: dict[str, Any]) -> bool:
    # `nullable` next to `allOf: [{$ref}]` is how drf-spectacular says "this object or
    # null", and how generators (openapi-python-client) and schemathesis read it.
    return bool(schema.get("nullable")) or not schema


class Walk:
    """Checks one answer against its schema; remembers which object components it met."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.components = schema["components"]["schemas"]
        self.met: set[str] = set()
        self.problems: list[str] = []

    def check(self, value: Any, schema: dict[str, Any], where: str) -> None:
        if "$ref" in schema:
            name = _component(schema["$ref"])
            if value is not None and "properties" in self.components[name]:
                self.met.add(name)
            self.check(value, self.components[name], f"{where}<{name}>")
        elif value is None:
            if not _allows_null(schema):
                self.problems.append(f"{where}: null, but not nullable")
        elif "allOf" in schema:
            [only] = schema["allOf"]  # a nullable reference
            self.check(value, only, where)
        elif "discriminator" in schema:
            discriminator = schema["discriminator"]
            ref = discriminator["mapping"][value[discriminator["propertyName"]]]
            self.check(value, {"$ref": ref}, where)
        elif "properties" in schema:
            self._object(value, schema, where)
        elif schema.get("type") == "array":
            for index, item in enumerate(value):
                self.check(item, schema["items"], f"{where}[{index}]")
        elif isinstance(value, dict) and where.rsplit(".", 1)[-1] not in FREE_FORM:
            typed_values = schema.get("additionalProperties")
            if not (isinstance(typed_values, dict) and typed_values):
                self.problems.append(f"{where}: an object the schema leaves untyped")
        else:  # a value: its type, format, enum, limits
            validator = OAS30Validator(
                {**schema, "components": {"schemas": self.components}},
                format_checker=OAS30Validator.FORMAT_CHECKER,
            )
            self.problems += [f"{where}: {error.message}" for error in validator.iter_errors(value)]

    def _object(self, value: dict[str, Any], schema: dict[str, Any], where: str) -> None:
        properties = schema["properties"]
        undeclared = set(value) - set(properties)
        missing = set(schema.get("required", [])) - set(value)
        if undeclared:
            self.problems.append(f"{where}: undeclared {sorted(undeclared)}")
        if missing:
            self.problems.append(f"{where}: required but absent {sorted(missing)}")
        for name, item in value.items():
            if name in properties:
                self.check(item, properties[name], f"{where}.{name}")


def _response_schema(schema: dict[str, Any], answer: Answer) -> dict[str, Any]:
    path = answer.template.split("?")[0]
    [template] = [
        template
        for template in schema["paths"]
        if re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", template), path)
        and answer.method in schema["paths"][template]
    ]
    responses = schema["paths"][template][answer.method]["responses"]
    assert str(answer.status) in responses, (
        f"{answer.method.upper()} {template} answered {answer.status}, which is undocumented"
    )
    return responses[str(answer.status)]["content"]["application/json"]["schema"]


def _response_components(schema: dict[str, Any]) -> set[str]:
    """The object components an answer can contain, by following references from responses."""
    components = schema["components"]["schemas"]
    found: set[str] = set()
    pending = [
        media["schema"]
        for operations in schema["paths"].values()
        for operation in operations.values()
        for response in operation.get("responses", {}).values()
        for media in response.get("content", {}).values()
    ]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and _component(ref) not in found:
                found.add(_component(ref))
                pending.append(components[_component(ref)])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return {name for name in found if "properties" in components[name]}


def test_every_answer_matches_its_documented_schema_strictly(schema, answers):  # type: ignore[no-untyped-def]
    walk = Walk(schema)
    for answer in answers:
        documented = _response_schema(schema, answer)
        walk.check(answer.body, documented, f"{answer.method.upper()} {answer.template}")

    assert walk.problems == []
    # The walk met every object an answer can hold, so each was checked at least once.
    assert _response_components(schema) - walk.met == set()


def test_response_components_list_every_property_as_required(schema):  # type: ignore[no-untyped-def]
    components = schema["components"]["schemas"]
    not_required = {
        (name, prop)
        for name in _response_components(schema)
        for prop in components[name]["properties"]
        if prop not in components[name].get("required", [])
    }

    assert not_required == OPTIONAL
