"""Admin API for regions, their payment providers, and products (SPEC section 6)."""

from __future__ import annotations

import pytest
import yaml  # noqa: F401  (drf-spectacular depends on PyYAML)
from django.core.management import call_command

from checkout.models import Product, Region
from payments.models import PaymentProvider
from tests import factories
from tests.backoffice import admin_client, admin_post, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def boss(db):  # type: ignore[no-untyped-def]
    PaymentProvider.objects.get_or_create(id="manual")
    PaymentProvider.objects.get_or_create(id="test")
    PaymentProvider.objects.update_or_create(id="retired", defaults={"is_installed": False})
    return admin_client(staff_user(username="boss", superuser=True))


def test_a_region_is_created_with_installed_providers_only(boss):
    created = admin_post(
        boss,
        "regions",
        {"name": "Japan", "currency_code": "jpy", "payment_providers": ["test", "manual"]},
    )
    refused = admin_post(
        boss,
        "regions",
        {"name": "Old", "currency_code": "usd", "payment_providers": ["retired"]},
    )
    unknown = admin_post(
        boss, "regions", {"name": "X", "currency_code": "usd", "payment_providers": ["paypal"]}
    )

    assert created.status_code == 201
    assert {k: created.json()[k] for k in ("name", "currency_code", "payment_providers")} == {
        "name": "Japan",
        "currency_code": "jpy",
        "payment_providers": ["manual", "test"],
    }
    assert refused.status_code == unknown.status_code == 422
    assert refused.json()["code"] == "provider_not_available"
    assert Region.objects.count() == 1


def test_providers_are_enabled_and_disabled_per_region(boss):
    region = factories.RegionFactory(providers=["manual"])

    added = admin_post(boss, f"regions/{region.id}/payment-providers", {"provider_id": "test"})
    refused = admin_post(boss, f"regions/{region.id}/payment-providers", {"provider_id": "retired"})
    removed = boss.delete(f"/api/admin/regions/{region.id}/payment-providers/manual")

    assert added.json()["payment_providers"] == ["manual", "test"]
    assert refused.status_code == 422
    assert removed.json()["payment_providers"] == ["test"]
    listed = {p["id"]: p for p in boss.get("/api/admin/payment-providers").json()}
    assert listed["test"]["regions"] == [region.id]
    assert (listed["retired"]["is_installed"], listed["manual"]["regions"]) == (False, [])


def test_a_region_is_renamed_but_keeps_its_currency_once_carts_use_it(boss):
    region = factories.RegionFactory(providers=["manual"])
    empty = factories.RegionFactory()
    factories.CartFactory(region=region)

    renamed = admin_post(boss, f"regions/{region.id}", {"name": "Renamed"})
    recurrencied = admin_post(boss, f"regions/{region.id}", {"currency_code": "eur"})
    fresh = admin_post(boss, f"regions/{empty.id}", {"currency_code": "eur"})

    assert renamed.json()["name"] == "Renamed"
    assert recurrencied.status_code == 409
    assert fresh.json()["currency_code"] == "eur"
    assert boss.get(f"/api/admin/regions/{region.id}").json()["currency_code"] == "usd"


def test_a_product_is_created_with_a_price_per_currency(boss):
    body = {
        "title": "Scarf",
        "sku": "SCARF-1",
        "prices": [
            {"currency_code": "usd", "amount": 2500},
            {"currency_code": "jpy", "amount": 3800},
        ],
    }

    created = admin_post(boss, "products", body, key="scarf")
    replayed = admin_post(boss, "products", body, key="scarf")
    duplicate = admin_post(boss, "products", body)
    twice = admin_post(
        boss,
        "products",
        {**body, "sku": "SCARF-2", "prices": [{"currency_code": "usd", "amount": 1}] * 2},
    )
    bad_amount = admin_post(
        boss, "products", {**body, "sku": "S3", "prices": [{"currency_code": "usd", "amount": 1.5}]}
    )

    assert created.status_code == replayed.status_code == 201
    assert replayed.content == created.content
    assert sorted((p["currency_code"], p["amount"]) for p in created.json()["prices"]) == [
        ("jpy", 3800),
        ("usd", 2500),
    ]
    assert [r.status_code for r in (duplicate, twice, bad_amount)] == [400, 400, 400]
    assert set(duplicate.json()["fields"]) == {"sku"}
    assert Product.objects.count() == 1
    assert [p["sku"] for p in boss.get("/api/admin/products").json()] == ["SCARF-1"]


def test_catalogue_writes_need_their_model_permissions(db):
    reader = admin_client(staff_user(username="reader"))

    assert reader.get("/api/admin/regions").status_code == 200
    response = admin_post(reader, "regions", {"name": "No", "currency_code": "usd"})
    assert response.status_code == 403
    assert not Region.objects.exists()


ADMIN_PATHS = {
    "/api/admin/payment-providers": {"get"},
    "/api/admin/regions": {"get", "post"},
    "/api/admin/regions/{id}": {"get", "post"},
    "/api/admin/regions/{id}/payment-providers": {"post"},
    "/api/admin/regions/{id}/payment-providers/{provider_id}": {"delete"},
    "/api/admin/products": {"get", "post"},
    "/api/admin/orders": {"get"},
    "/api/admin/orders/{id}": {"get"},
    "/api/admin/orders/{id}/capture": {"post"},
    "/api/admin/orders/{id}/refund": {"post"},
    "/api/admin/orders/{id}/cancel": {"post"},
    "/api/admin/orders/{id}/swaps": {"post"},
    "/api/admin/payments/{id}": {"get"},
    "/api/admin/payments/{id}/capture": {"post"},
    "/api/admin/payments/{id}/refund": {"post"},
    "/api/admin/payments/{id}/cancel": {"post"},
    "/api/admin/swaps/{id}/process-payment": {"post"},
    "/api/admin/swaps/{id}/cancel": {"post"},
    "/api/admin/providers/test/ledger": {"get"},
}


def test_the_schema_documents_the_admin_api_its_authentication_and_errors(client, tmp_path):
    schema = client.get("/api/schema/?format=json").json()

    for path, methods in ADMIN_PATHS.items():
        assert set(schema["paths"][path]) >= methods, path
    refund = schema["paths"]["/api/admin/payments/{id}/refund"]["post"]
    assert {"200", "400", "401", "403", "404", "409", "422", "502", "503"} <= set(
        refund["responses"]
    )
    assert any(p["name"] == "Idempotency-Key" for p in refund["parameters"])
    assert refund["security"] == [{"tokenAuth": []}, {"cookieAuth": []}]
    assert schema["paths"]["/api/store/carts"]["post"]["security"] == [{}]  # no credentials
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))


def test_an_answer_lost_before_it_was_stored_leaves_no_region_to_make_twice(boss, monkeypatch):
    import payments.api.idempotent

    def process_dies(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("the process died before the answer was stored")

    body = {"name": "Nordics", "currency_code": "sek"}
    monkeypatch.setattr(payments.api.idempotent, "idempotency_key_finish", process_dies)
    boss.raise_request_exception = False
    died = admin_post(boss, "regions", body, key="nordics")
    monkeypatch.undo()
    boss.raise_request_exception = True

    retried = admin_post(boss, "regions", body, key="nordics")

    # The region and its stored answer commit together: the crash took both back.
    assert died.status_code == 500
    assert retried.status_code == 201
    assert Region.objects.filter(name="Nordics").count() == 1
