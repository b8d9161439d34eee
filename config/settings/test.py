"""The test suite runs on PostgreSQL, never on the SQLite default."""

import os

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-only-secret")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/payments")
# Tasks run in the test's own process unless a test starts a real worker (tests/worker).
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")

from .base import *  # noqa: F403
from .base import DATABASES, STORAGES, env

DATABASES["default"]["CONN_MAX_AGE"] = 0
# Two suites on one machine (two checkouts, say) each need their own test database.
DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="test_payments")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["*"]

# The test client and the live server speak plain HTTP: the HTTPS protections that are on
# outside DEBUG are turned off here by name, as a plain-HTTP deployment must do.
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0

# The sandbox provider is named, as everywhere it exists.
PAYMENT_PROVIDERS = ["manual", "test"]

# No collectstatic before the suite: templates get plain static URLs, and WhiteNoise serves
# the files from the apps themselves (tests/security collects them where it tests that).
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# The fuzz and race tests send thousands of requests from one address; tests/security
# turns the throttles on where it tests them.
STORE_API_THROTTLE = None
ADMIN_API_THROTTLE = None
