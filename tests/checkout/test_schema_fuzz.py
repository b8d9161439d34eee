"""Schemathesis drives every storefront operation from the OpenAPI schema the project
serves at /api/schema/ (SPEC section 8): never a 5xx, and every 4xx is the contract's JSON
error body (SPEC section 1). It complements test_fuzz_storefront.py (hand-written Hypothesis
bodies) by deriving paths, parameters, headers and bodies, valid and invalid, from the schema.

Generated ids are random strings, so on their own nearly every call would be a 404. So
the schema's id-like parameters and body fields get a placeholder as their `example` (used
by the examples and coverage phases), and hooks sometimes swap generated ones for a
placeholder (fuzzing phase). Just before each request the test replaces every placeholder
with a real id: a fresh cart with an item and both payment sessions (`test` selected), a
completed cart and its order, a usd and a eur region, two products, a provider.

Every built-in check runs, so a schema-valid request the API refuses (other than 404/409)
and a schema-violating one it accepts both fail the test, as does an undocumented status,
header or body.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from payments.models import IdempotencyKey
from tests import factories
from tests.checkout.conftest import Storefront

pytestmark = pytest.mark.django_db(transaction=True)

# Placeholders that `World.resolve` replaces with real ids just before a request is sent.
FRESH_CART = "__fresh_cart__"  # a new cart: one item, both sessions, `test` selected
FRESH_ITEM = "__fresh_item__"  # that cart's item
COMPLETED_CART = "__completed_cart__"  # a cart already turned into an order
ORDER = "__order__"  # that order
REGION = "__region__"  # usd, providers manual and test
OTHER_REGION = "__other_region__"  # eur, no price for the product: a region change drops it
PRODUCT = "__product__"  # the one in the fresh cart
NEW_PRODUCT = "__new_product__"  # priced in usd, in no cart
PROVIDER = "__provider__"  # test
OTHER_PROVIDER = "__other_provider__"  # manual
DISABLED_PROVIDER = "__disabled_provider__"  # stripe: not enabled in the region (422)


def _real_values(operation_path: str, name: str) -> list[Any]:
    """Real values for a parameter or body field of this name, the likeliest first."""
    if name == "id":
        if operation_path.startswith("/api/store/orders/"):
            return [ORDER, ORDER, COMPLETED_CART]
        return [FRESH_CART, FRESH_CART, COMPLETED_CART]
    return {
        "item_id": [FRESH_ITEM, FRESH_ITEM],
        "provider_id": [PROVIDER, OTHER_PROVIDER, DISABLED_PROVIDER],
        "region_id": [REGION, REGION, OTHER_REGION],
        "product_id": [PRODUCT, NEW_PRODUCT],
    }.get(name, [])


def _with_examples(raw: dict[str, Any]) -> dict[str, Any]:
    """The served schema, each id-like parameter and body field given a real id as its
    `example`: the examples and coverage phases build their valid requests from these."""
    components = raw.get("components", {}).get("schemas", {})
    for path, operations in raw["paths"].items():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                real = _real_values(path, parameter["name"])
                if real:
                    parameter["schema"]["example"] = real[0]
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                body = media.get("schema", {})
                ref = body.get("$ref", "")
                body = components.get(ref.rsplit("/", 1)[-1], body) if ref else body
                for name, field in body.get("properties", {}).items():
                    real = _real_values(path, name)
                    if real and isinstance(field, dict):
                        field["example"] = real[0]
    return raw


# Django's own handler answers every request in-process through the production stack
# (middleware, URLconf, DRF's exception handler, handler500), via WSGI.
APP = WSGIHandler()
_served = Client().get("/api/schema/?format=json")
assert _served.status_code == 200, _served.content
schema = schemathesis.openapi.from_dict(_with_examples(_served.json())).include(
    path_regex=r"^/api/store/"
)
schema.app = APP


def _sometimes_real(operation_path: str, values: Any) -> st.SearchStrategy[Any]:
    """Keep the generated dict, or swap some of its id-like fields for real ids (fuzzing)."""
    if not isinstance(values, dict):
        return st.just(values)
    fields = {
        name: st.sampled_from([*_real_values(operation_path, name), value])
        for name, value in values.items()
        if isinstance(name, str) and _real_values(operation_path, name)
    }
    if not fields:
        return st.just(values)
    return st.fixed_dictionaries(fields).map(lambda drawn: {**values, **drawn})


def _path(ctx: schemathesis.HookContext) -> str:
    return ctx.operation.path if ctx.operation is not None else ""


@schema.hook
def flatmap_path_parameters(ctx: schemathesis.HookContext, path_parameters: Any) -> Any:
    return _sometimes_real(_path(ctx), path_parameters)


@schema.hook
def flatmap_query(ctx: schemathesis.HookContext, query: Any) -> Any:
    return _sometimes_real(_path(ctx), query)


@schema.hook
def flatmap_body(ctx: schemathesis.HookContext, body: Any) -> Any:
    return _sometimes_real(_path(ctx), body)


# What a schema-valid body or query may refer to. A schema cannot say which ids exist or
# which providers a region enables (an unknown one is 400 or 422, as documented); so a
# positive case refers to real rows only, and a 4xx other than 404/409 for it means the
# schema promised something the API refuses. Negative cases and path ids stay made up.
# (A product not in the fresh cart: with the 2 already there, a valid quantity of 999 would
# pass the limit of 1000 per product and cart.)
_REFERENCES = {
    "region_id": (REGION, OTHER_REGION),
    "product_id": (NEW_PRODUCT,),
    "provider_id": (PROVIDER, OTHER_PROVIDER),
}


def _only_real_references(containers: list[dict[str, Any]]) -> None:
    for container in containers:
        for name, real in _REFERENCES.items():
            if name in container and container[name] not in real:
                container[name] = real[0]
        # A session's `data` is the provider's own (documented as such): `test` refuses
        # keys it does not know and `manual` takes none, so a valid request sends `test` none.
        if isinstance(container.get("data"), dict):
            container["data"] = {}
            for other in containers:
                if "provider_id" in other:
                    other["provider_id"] = PROVIDER


class World:
    """The rows behind the placeholders; a fresh cart per request that asks for one."""

    def __init__(
        self, store: Storefront, region: Any, other_region: Any, product: Any, new_product: Any
    ) -> None:
        self.store = store
        self.region = region
        self.product = product
        self.completed_cart = store.cart_ready(region, product)
        response = store.complete(self.completed_cart)
        assert response.status_code == 200, response.content
        self.order = response.json()["data"]["id"]
        self.fixed = {
            COMPLETED_CART: self.completed_cart,
            ORDER: self.order,
            REGION: region.id,
            OTHER_REGION: other_region.id,
            PRODUCT: product.id,
            NEW_PRODUCT: new_product.id,
            PROVIDER: "test",
            OTHER_PROVIDER: "manual",
            DISABLED_PROVIDER: "stripe",
        }

    def _fresh(self) -> dict[str, str]:
        cart_id = self.store.cart_ready(self.region, self.product)
        item_id = self.store.get(f"carts/{cart_id}").json()["items"][0]["id"]
        return {FRESH_CART: cart_id, FRESH_ITEM: item_id}

    def resolve(self, case: schemathesis.Case) -> None:
        """Put real ids in the parts of the request generated as valid. A part generated as
        invalid (negative) is sent as it is: a real id put into it could make it valid, and
        its placeholders are unknown ids, which the API must refuse as well."""
        components = case.meta.components if case.meta is not None else {}
        negative = {location.value for location, c in components.items() if c.mode.is_negative}
        containers = [
            container
            for location, container in (
                ("path", case.path_parameters),
                ("query", case.query),
                ("body", case.body),
            )
            if isinstance(container, dict) and location not in negative
        ]
        if case.meta is not None and case.meta.generation.mode.is_positive:
            _only_real_references(containers)
        placeholders = {v for c in containers for v in c.values() if isinstance(v, str)}
        # Generated keys repeat ("0", "a"), and a key sent again for another cart is 422
        # idempotency_key_mismatch: a schema cannot say a key is single use, so every case
        # is the first request with its key.
        IdempotencyKey.objects.filter(scope="store").delete()
        ids = dict(self.fixed)
        if placeholders & {FRESH_CART, FRESH_ITEM}:
            ids |= self._fresh()
        for container in containers:
            for name, value in container.items():
                if isinstance(value, str) and value in ids:
                    container[name] = ids[value]


class ServerErrors(logging.Handler):
    """Keeps the tracebacks Django logs for 5xx answers, to show them in a failure."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.tracebacks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.tracebacks.append("".join(traceback.format_exception(*record.exc_info)))
        else:
            self.tracebacks.append(record.getMessage())


SERVER_ERRORS = ServerErrors()


def no_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """SPEC section 1: never a 500 for bad input (and no other 5xx on the storefront)."""
    if response.status_code >= 500:
        logged = "\n".join(SERVER_ERRORS.tracebacks) or "(nothing logged)"
        request = response.request
        raise AssertionError(
            f"{request.method} {request.url} answered {response.status_code}\n"
            f"request headers: {dict(request.headers)}\n"
            f"request body: {request.body!r}\n"
            f"response body: {response.text_lossy()[:300]}\n"
            f"server traceback:\n{logged}"
        )


def error_body_follows_contract(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """SPEC section 1: a 4xx is JSON `{"code": str, "message": str[, "fields": {name: [str]}]}`."""
    if not 400 <= response.status_code < 500:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), (
        f"{response.status_code} answered as {content_type!r}: {response.content[:300]!r}"
    )
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(
            f"{response.status_code} body is not JSON: {response.content[:300]!r}"
        ) from exc
    assert isinstance(body, dict), f"{response.status_code} body is not an object: {body!r}"
    assert isinstance(body.get("code"), str), (
        f"{response.status_code} without a string code: {body!r}"
    )
    assert isinstance(body.get("message"), str), (
        f"{response.status_code} without a string message: {body!r}"
    )
    fields = body.get("fields")
    if fields is not None:
        assert isinstance(fields, dict) and all(
            isinstance(name, str)
            and isinstance(messages, list)
            and all(isinstance(m, str) for m in messages)
            for name, messages in fields.items()
        ), f"{response.status_code} with malformed fields: {body!r}"


@pytest.fixture
def world(store, region, eur_region, product) -> Iterator[World]:  # type: ignore[no-untyped-def]
    new_product = factories.ProductFactory(prices={region.currency_code: 700})
    world = World(store, region, eur_region, product, new_product)
    logger = logging.getLogger("django.request")
    logger.addHandler(SERVER_ERRORS)
    try:
        yield world
    finally:
        logger.removeHandler(SERVER_ERRORS)


@settings(
    max_examples=20,  # per operation and generation mode: about 700 cases in all
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@schema.parametrize()
def test_storefront_answers_follow_the_error_contract(
    case: schemathesis.Case, world: World
) -> None:
    world.resolve(case)
    SERVER_ERRORS.tracebacks.clear()
    # No `checks=`: every built-in check runs (the CLI's `--checks all`), ours besides.
    case.call_and_validate(additional_checks=[no_server_error, error_body_follows_contract])
