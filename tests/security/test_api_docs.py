"""Finding 9 (low): /api/docs/ loaded swagger-ui-dist@latest from a CDN, unpinned and without
integrity; offline the page was blank. Swagger UI now comes from drf-spectacular-sidecar, as
this server's own static files, which WhiteNoise serves with DEBUG off after collectstatic.
"""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db


def docs_assets(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', page)


def test_the_docs_page_names_no_other_server():
    page = Client().get("/api/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    assert (
        "cdn.jsdelivr.net" not in html
        and "unpkg.com" not in html
        and "//" not in "".join(docs_assets(html))
    )
    assert any("swagger-ui-bundle" in asset for asset in docs_assets(html))


def test_with_debug_off_the_app_serves_the_collected_swagger_ui_itself(settings, tmp_path):
    # As a deployment does it: collectstatic with hashed names, then WhiteNoise serves
    # STATIC_ROOT (and only it: no finders).
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = False
    settings.WHITENOISE_AUTOREFRESH = False
    call_command("collectstatic", "--noinput", stdout=io.StringIO())
    browser = Client()

    html = browser.get("/api/docs/").content.decode()
    bundle = next(asset for asset in docs_assets(html) if "swagger-ui-bundle" in asset)
    served = browser.get(bundle)

    assert re.search(r"swagger-ui-bundle\.[0-9a-f]{12}\.js$", bundle)  # the hashed name
    assert served.status_code == 200
    assert b"SwaggerUIBundle" in b"".join(served.streaming_content)  # type: ignore[attr-defined]
    assert "immutable" in served["Cache-Control"]
