import re

import pytest
import yaml  # noqa: F401  (drf-spectacular depends on PyYAML)
from django.core.management import call_command

from payments.api.schema import IDEMPOTENCY_KEY_PATTERN
from payments.errors import IdempotencyKeyInvalid
from payments.idempotency import parse_key

pytestmark = pytest.mark.django_db

STOREFRONT_PATHS = {
    "/api/store/regions": {"get"},
    "/api/store/products": {"get"},
    "/api/store/carts": {"post"},
    "/api/store/carts/{id}": {"get", "post"},
    "/api/store/carts/{id}/line-items": {"post"},
    "/api/store/carts/{id}/line-items/{item_id}": {"post", "delete"},
    "/api/store/carts/{id}/payment-sessions": {"post"},
    "/api/store/carts/{id}/payment-session": {"post"},
    "/api/store/carts/{id}/payment-sessions/{provider_id}": {"post", "delete"},
    "/api/store/carts/{id}/payment-sessions/{provider_id}/refresh": {"post"},
    "/api/store/carts/{id}/complete": {"post"},
    "/api/store/orders/{id}": {"get"},
}


def test_the_schema_documents_every_storefront_endpoint_and_its_errors(client, tmp_path):
    schema = client.get("/api/schema/?format=json").json()

    for path, methods in STOREFRONT_PATHS.items():
        assert set(schema["paths"][path]) >= methods, path
    complete = schema["paths"]["/api/store/carts/{id}/complete"]["post"]
    assert {"200", "400", "402", "404", "409", "422", "503"} <= set(complete["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in complete["parameters"])
    assert client.get("/api/docs/").status_code == 200
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))


def test_every_post_that_takes_an_idempotency_key_documents_its_limits_and_answers(client):
    schema = client.get("/api/schema/?format=json").json()
    posts = {
        path: operations["post"]
        for path, operations in schema["paths"].items()
        if "post" in operations
        and (path.startswith("/api/admin/") or path == "/api/store/carts/{id}/complete")
    }

    assert len(posts) >= 14  # every admin POST (SPEC section 6) and complete (section 5)
    for path, operation in posts.items():
        [header] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
        assert header["in"] == "header" and not header.get("required"), path
        assert (header["schema"]["minLength"], header["schema"]["pattern"]) == (
            1,
            IDEMPOTENCY_KEY_PATTERN,
        ), path
        for status, response in operation["responses"].items():
            headers = response.get("headers", {})
            assert "Idempotency-Key" in headers and "Idempotent-Replayed" in headers, (path, status)
            assert headers["Idempotency-Key"].get("required", False) == status.startswith("2")
            if status in ("409", "503"):
                assert "Retry-After" in headers, (path, status)


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("k", True),
        ("k" * 255, True),
        ("k" * 256, False),
        ("", False),
        ("  padded key\t", True),
        ('"quoted key"', True),
        ('"' + "k" * 255 + '"', True),
        ('"' + "k" * 256 + '"', False),
        ('"\\"escaped\\\\"', True),
        ('"\\n"', False),
        ('"unterminated', False),
        ('"a"b', False),
        ("caf\u00e9", False),
        ("tab\tinside", False),
    ],
)
def test_the_documented_key_pattern_accepts_what_the_server_accepts(header, accepted):
    try:
        parse_key(header)
        parsed = True
    except IdempotencyKeyInvalid:
        parsed = False

    assert parsed is accepted
    assert bool(re.fullmatch(IDEMPOTENCY_KEY_PATTERN, header)) is accepted
    assert (len(header) <= 2 * 255 + 2) or not accepted
