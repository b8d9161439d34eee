"""The test suite runs on PostgreSQL, never on the SQLite default."""

import os

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-only-secret")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/payments")

from .base import *  # noqa: F403
from .base import DATABASES, env

DATABASES["default"]["CONN_MAX_AGE"] = 0
# Two suites on one machine (two checkouts, say) each need their own test database.
DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="test_payments")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["*"]
