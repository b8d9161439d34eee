from io import StringIO

import pytest
from django.core.management import call_command

from payments.models import PaymentProvider

pytestmark = pytest.mark.django_db

MANUAL = "providers.manual.ManualProvider"
TEST = "providers.test.provider.TestProvider"


def register() -> str:
    out = StringIO()
    call_command("register_providers", stdout=out)
    return out.getvalue()


def installed() -> dict[str, bool]:
    return dict(PaymentProvider.objects.values_list("id", "is_installed"))


def test_migrate_registered_the_configured_providers():
    assert installed() == {"manual": True, "test": True}
    assert register().strip() == "no changes (manual, test)"


def test_a_provider_removed_from_settings_stays_but_is_not_installed(settings):
    settings.PAYMENT_PROVIDERS = [MANUAL]

    assert register().strip() == "uninstalled: test"
    assert installed() == {"manual": True, "test": False}


def test_a_provider_added_back_is_installed_again(settings):
    settings.PAYMENT_PROVIDERS = [MANUAL]
    register()
    settings.PAYMENT_PROVIDERS = [MANUAL, TEST]

    assert register().strip() == "reinstalled: test"
    assert installed() == {"manual": True, "test": True}


def test_a_new_provider_is_added(settings):
    PaymentProvider.objects.filter(pk="test").delete()

    assert register().strip() == "added: test"
    assert installed()["test"] is True


def test_an_uninstalled_provider_is_not_offered_to_carts(settings, region):
    settings.PAYMENT_PROVIDERS = [MANUAL]
    register()

    from rest_framework.test import APIClient

    regions = APIClient().get("/api/store/regions").json()
    assert [r["payment_providers"] for r in regions if r["id"] == region.id] == [["manual"]]
