"""What tests/security shares: an order to act on, staff logins, a production-like process.

Each module here is one area of issue #11 (what a curious member of staff, a hostile client
and a production deploy must not get); read the module docstrings as the list of what was
tried.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client

from checkout.models import Order
from tests.backoffice import place_order, staff_user

ROOT = Path(__file__).resolve().parents[2]

# A production environment as SECURITY.md documents it (check --deploy's W009 wants a
# secret of 50+ characters with 5+ distinct ones).
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "prod-secret-" + "k3y5-4r3-l0ng-4nd-r4nd0m-" * 3,
    "ALLOWED_HOSTS": "backoffice.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://backoffice.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/payments",
}

# What this suite's own process sets, which a deployment would not: left out of the
# subprocesses, so they see only what each test gives them.
_SUITE_ONLY = {
    "DJANGO_SETTINGS_MODULE",
    "DEBUG",
    "SECRET_KEY",
    "DATABASE_URL",
    "PAYMENT_PROVIDERS",
    "STRIPE_API_KEY",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`manage.py <args>` in a fresh process with only `env` on top of a clean environment,
    and no DJANGO_SETTINGS_MODULE: the settings manage.py picks by itself."""
    base = {name: value for name, value in os.environ.items() if name not in _SUITE_ONLY}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def shell(code: str, *, env: dict[str, str]) -> str:
    """What `manage.py shell -c <code>` prints, with manage.py's default settings."""
    result = run_manage("shell", "--verbosity", "0", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def setting_values(*names: str, env: dict[str, str]) -> list[str]:
    """The repr of each named setting, as manage.py's default settings read them from `env`."""
    code = "from django.conf import settings; " + "; ".join(
        f"print(repr(settings.{name}))" for name in names
    )
    return shell(code, env=env).splitlines()


@pytest.fixture(autouse=True)
def fresh_throttles() -> Iterator[None]:
    """Throttle counters live in the cache: each test starts from none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def order(region, product) -> Order:  # type: ignore[no-untyped-def]
    """An order of 2 x 15.00 usd authorized by the test provider, nothing captured."""
    return Order.objects.get(pk=place_order(region=region, items=[(product, 2)])["id"])


def site_client(*permissions: str, username: str = "clerk", superuser: bool = False) -> Client:
    """A Django admin session for a staff user with exactly these permissions."""
    client = Client()
    client.force_login(staff_user(*permissions, username=username, superuser=superuser))
    return client
