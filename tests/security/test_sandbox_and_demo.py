"""Finding 3 (medium): the sandbox provider and the demo data exist only where named.

The `test` provider was installed in every deployment (anyone could get a free "authorized"
order, and {"delay_ms": 5000} tied up workers), and `seed_demo` ran with DEBUG off and made
a superuser with a fixed, published password. Now PAYMENT_PROVIDERS names providers by id
or dotted path and defaults to `manual` plus each real provider whose credentials are set;
seed_demo refuses without DEBUG unless forced and prints a new password.
"""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from providers.manual import ManualProvider
from providers.registry import configured_providers
from tests.security.conftest import PRODUCTION_ENV, shell

INSTALLED = (
    "from providers.registry import configured_providers; print(sorted(configured_providers()))"
)


def installed_in_production(**env: str) -> str:
    return shell(INSTALLED, env={**PRODUCTION_ENV, **env})


def test_a_deployment_that_names_no_providers_gets_manual_only():
    assert installed_in_production() == "['manual']"


def test_a_real_provider_joins_when_its_credentials_are_set_and_test_only_when_named():
    assert installed_in_production(STRIPE_API_KEY="sk_test_x") == "['manual', 'stripe']"
    assert installed_in_production(PAYMENT_PROVIDERS="manual,test") == "['manual', 'test']"


def test_providers_are_named_by_id_or_by_dotted_path(settings):
    settings.PAYMENT_PROVIDERS = ["providers.manual.ManualProvider", "test"]

    providers = configured_providers()

    assert sorted(providers) == ["manual", "test"]
    assert isinstance(providers["manual"], ManualProvider)


@pytest.mark.parametrize("entry", ["paypal-ish", "providers.nowhere.Provider"])
def test_an_unknown_provider_is_a_configuration_error(settings, entry):
    settings.PAYMENT_PROVIDERS = ["manual", entry]

    with pytest.raises(ImproperlyConfigured):
        configured_providers()


@pytest.mark.django_db
def test_seed_demo_refuses_to_run_with_debug_off(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="--force"):
        call_command("seed_demo", stdout=io.StringIO())

    assert not User.objects.filter(username="operator").exists()


def seed(**options: object) -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out, **options)
    match = re.search(r"operator login: operator / (\S+)", out.getvalue())
    assert match, out.getvalue()
    return match.group(1)


def logs_in(password: str) -> bool:
    request = RequestFactory().post("/admin/login/")  # django-axes needs the request
    return authenticate(request, username="operator", password=password) is not None


@pytest.mark.django_db
def test_seed_demo_prints_a_new_operator_password_each_run():
    first = seed(force=True)
    second = seed(force=True)

    assert first != second and len(second) >= 16
    assert "operator-demo-password" not in (first, second)
    assert logs_in(second) and not logs_in(first)


@pytest.mark.django_db
def test_seed_demo_takes_the_password_its_caller_chooses():
    assert seed(force=True, password="chosen-by-the-browser-test") == "chosen-by-the-browser-test"
    assert logs_in("chosen-by-the-browser-test")
