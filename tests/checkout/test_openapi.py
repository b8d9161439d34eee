import pytest
import yaml  # noqa: F401  (drf-spectacular depends on PyYAML)
from django.core.management import call_command

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
