"""Finding 8 (low), throttles: there was no login throttling and no API throttle.

The back office's login locks an (account, address) pair out after LOGIN_FAILURE_LIMIT
failures for LOGIN_LOCKOUT_MINUTES (django-axes), without locking the account's owner out
elsewhere. The storefront API is throttled per address and the admin API per staff user
(DRF throttles, STORE_API_THROTTLE and ADMIN_API_THROTTLE), answered 429 with Retry-After
and the contract's JSON body. The address is REMOTE_ADDR unless PROXY_COUNT says how many
proxies to trust, so X-Forwarded-For cannot be used to dodge either.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.test import Client

from tests.backoffice import admin_client, staff_user

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


def login(password: str, *, address: str, forwarded_for: str | None = None):  # type: ignore[no-untyped-def]
    extra = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for else {}
    return Client().post(
        LOGIN, {"username": "owner", "password": password}, REMOTE_ADDR=address, **extra
    )


def test_the_lockout_settings_default_to_five_failures_for_fifteen_minutes():
    assert django_settings.AXES_FAILURE_LIMIT == 5
    assert timedelta(minutes=15) == django_settings.AXES_COOLOFF_TIME
    assert django_settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_repeated_failures_lock_out_that_account_from_that_address_only():
    staff_user(username="owner")  # password "pw"

    failures = [login("guess", address="203.0.113.9") for _ in range(5)]
    locked = login("pw", address="203.0.113.9")
    owner_elsewhere = login("pw", address="198.51.100.7")

    assert [f.status_code for f in failures[:4]] == [200] * 4  # the form again, with an error
    assert locked.status_code == 429
    assert "too many login attempts" in locked.content.decode().lower()
    assert owner_elsewhere.status_code == 302 and owner_elsewhere["Location"] == "/admin/"


def test_x_forwarded_for_does_not_change_the_address_without_a_trusted_proxy():
    staff_user(username="owner")
    for attempt in range(5):
        login("guess", address="203.0.113.9", forwarded_for=f"10.0.0.{attempt}")

    assert login("pw", address="203.0.113.9", forwarded_for="10.9.9.9").status_code == 429


def test_behind_one_trusted_proxy_the_address_is_the_one_it_saw(settings):
    settings.PROXY_COUNT = 1
    staff_user(username="owner")
    for _ in range(5):
        login("guess", address="10.0.0.1", forwarded_for="spoofed, 203.0.113.9")

    # Same proxy, another client: not locked out.
    assert login("pw", address="10.0.0.1", forwarded_for="198.51.100.7").status_code == 302
    assert login("pw", address="10.0.0.1", forwarded_for="203.0.113.9").status_code == 429


def test_the_storefront_is_throttled_per_address_with_the_contracts_429(settings, region):
    settings.STORE_API_THROTTLE = "3/minute"

    answers = [Client().get("/api/store/regions", REMOTE_ADDR="203.0.113.9") for _ in range(4)]
    other = Client().get("/api/store/regions", REMOTE_ADDR="198.51.100.7")

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    throttled = answers[-1]
    assert throttled.json()["code"] == "throttled"
    assert set(throttled.json()) == {"code", "message"}
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert other.status_code == 200


def test_the_admin_api_is_throttled_per_staff_user(settings):
    settings.ADMIN_API_THROTTLE = "2/minute"
    first, second = (admin_client(staff_user(username=name)) for name in ("first", "second"))

    answers = [first.get("/api/admin/payment-providers") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[-1].json()["code"] == "throttled" and answers[-1]["Retry-After"]
    assert second.get("/api/admin/payment-providers").status_code == 200


def test_provider_webhooks_are_not_throttled(settings):
    settings.STORE_API_THROTTLE = "1/minute"

    answers = [
        Client().post("/api/hooks/test", b"{}", content_type="application/json") for _ in range(3)
    ]

    assert 429 not in [a.status_code for a in answers]
