"""Finding 8 (low), the deployment: production is the default outside DEBUG.

wsgi.py and manage.py defaulted to the base settings; production.py, used only when named,
left cookies without Secure; no HSTS; check --deploy gave W004, W008, W012, W016; with no
SECURE_PROXY_SSL_HEADER or CSRF_TRUSTED_ORIGINS the admin login failed its CSRF origin check
behind a TLS proxy. These run manage.py in a fresh process, with only the environment a
deployment would give it.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.backoffice import staff_user
from tests.security.conftest import PRODUCTION_ENV, run_manage, setting_values

PLAIN_HTTP = {
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false",
    "SECURE_HSTS_SECONDS": "0",
}


def test_check_deploy_is_clean_with_the_documented_production_environment():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_plain_http_deployment_turns_the_protections_off_by_name_and_check_says_so():
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", env={**PRODUCTION_ENV, **PLAIN_HTTP}
    )

    assert result.returncode != 0
    found = set(re.findall(r"security\.(W\d+)", result.stdout + result.stderr))
    assert {"W004", "W008", "W012", "W016"} <= found


def test_manage_py_and_the_wsgi_application_default_to_the_production_settings():
    code = (
        "import config.wsgi; from django.conf import settings; "
        "print(settings.SETTINGS_MODULE, settings.SESSION_COOKIE_SECURE, "
        "settings.CSRF_COOKIE_SECURE, settings.SECURE_HSTS_SECONDS)"
    )
    result = run_manage("shell", "--verbosity", "0", "-c", code, env=PRODUCTION_ENV)

    assert result.stdout.split() == ["config.settings.production", "True", "True", "31536000"]


def test_without_a_secret_key_a_production_process_refuses_to_start():
    env = {name: value for name, value in PRODUCTION_ENV.items() if name != "SECRET_KEY"}

    result = run_manage("check", env=env)

    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_a_tls_proxy_and_its_origin_come_from_the_environment():
    env = {**PRODUCTION_ENV, "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https"}

    values = setting_values("SECURE_PROXY_SSL_HEADER", "CSRF_TRUSTED_ORIGINS", env=env)

    assert values == ["('HTTP_X_FORWARDED_PROTO', 'https')", "['https://backoffice.example.com']"]


def test_make_run_with_debug_serves_plain_http():
    values = setting_values(
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        env={"DEBUG": "true", "DATABASE_URL": PRODUCTION_ENV["DATABASE_URL"]},
    )

    assert values == ["False", "False", "0"]


@pytest.mark.django_db
def test_the_admin_login_works_behind_a_tls_proxy_with_secure_httponly_cookies(settings):
    # What the production environment above sets, applied to this process's settings.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.CSRF_TRUSTED_ORIGINS = ["https://backoffice.example.com"]
    settings.ALLOWED_HOSTS = ["backoffice.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31536000
    staff_user(username="ops")  # password "pw"
    browser = Client(enforce_csrf_checks=True, HTTP_HOST="backoffice.example.com")
    proxied = {"X-Forwarded-Proto": "https", "Origin": "https://backoffice.example.com"}

    form = browser.get("/admin/login/", headers=proxied)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.content.decode())
    assert form.status_code == 200 and token
    logged_in = browser.post(
        "/admin/login/?next=/admin/",
        {"username": "ops", "password": "pw", "csrfmiddlewaretoken": token.group(1)},
        headers=proxied,
    )

    assert logged_in.status_code == 302 and logged_in["Location"] == "/admin/"
    for name in ("csrftoken", "sessionid"):
        cookie = browser.cookies[name]
        assert cookie["secure"] and cookie["httponly"], name
    assert "max-age=31536000" in logged_in.get("Strict-Transport-Security", "")
    # Plain http straight to the app (not through the proxy) is sent to https.
    assert Client().get("/admin/login/", HTTP_HOST="backoffice.example.com").status_code == 301
