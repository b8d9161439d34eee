"""Production, the default settings of manage.py and the WSGI application: base.py (whose
HTTPS protections are on outside DEBUG) plus a pooled PostgreSQL connection per worker."""

from .base import *  # noqa: F403
from .base import DATABASES, env

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg's pool keeps connections warm between requests without the per-request
    # connect cost; CONN_MAX_AGE must be 0 when the pool is on.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN", default=2),
        "max_size": env.int("DB_POOL_MAX", default=8),
    }
