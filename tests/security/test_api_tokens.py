"""Finding 1 (high): API tokens in the back office.

A staff user with only view permissions opened /admin/authtoken/tokenproxy/, read every DRF
token (the superuser's included) and used it on /api/admin/ to cancel and refund. Tokens are
now shown and managed in the back office by superusers only.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token

from tests.backoffice import staff_user
from tests.security.conftest import site_client

pytestmark = pytest.mark.django_db

TOKENS_URL = "/admin/authtoken/tokenproxy/"


def every_view_permission() -> list[str]:
    return [
        f"{p.content_type.app_label}.{p.codename}"
        for p in Permission.objects.filter(codename__startswith="view_").select_related(
            "content_type"
        )
    ]


def test_a_view_only_staff_user_cannot_list_or_open_tokens():
    boss = staff_user(username="boss", superuser=True)
    token = Token.objects.create(user=boss)
    clerk = site_client(*every_view_permission(), username="clerk")

    listing = clerk.get(TOKENS_URL)
    one = clerk.get(f"{TOKENS_URL}{boss.pk}/change/")
    index = clerk.get("/admin/")

    assert listing.status_code == 403
    assert one.status_code in (302, 403, 404)
    assert token.key not in listing.content.decode() + one.content.decode()
    assert index.status_code == 200
    assert TOKENS_URL not in index.content.decode()


def test_a_superuser_still_manages_tokens():
    boss = staff_user(username="boss", superuser=True)
    token = Token.objects.create(user=boss)
    superuser = site_client(username="root", superuser=True)

    listing = superuser.get(TOKENS_URL)

    assert listing.status_code == 200
    assert token.key in listing.content.decode()
