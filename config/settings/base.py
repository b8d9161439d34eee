"""Settings read from the environment (django-environ); see README for every variable."""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# A secret has no production default: without DEBUG the process refuses to start.
SECRET_KEY = env.str("SECRET_KEY") if not DEBUG else env.str("SECRET_KEY", default="dev-insecure")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

# HTTPS (SPEC section 10). Outside DEBUG every protection is on unless the environment turns
# it off by name: a plain-HTTP deployment on a private network (and the test suites, the
# bench) must say SECURE_SSL_REDIRECT=false, SESSION_COOKIE_SECURE=false,
# CSRF_COOKIE_SECURE=false, SECURE_HSTS_SECONDS=0. `make run` (DEBUG) serves plain http.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
# No page script reads the CSRF cookie: the admin's forms carry the token themselves.
CSRF_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
# Behind a TLS proxy: the header it sets and the value that means https, e.g.
# "HTTP_X_FORWARDED_PROTO,https". Only set it when the proxy overwrites that header.
SECURE_PROXY_SSL_HEADER = env.tuple("SECURE_PROXY_SSL_HEADER", default=None)
# The admin's login and forms come from these origins ("https://backoffice.example.com").
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# How many reverse proxies append to X-Forwarded-For in front of the app: the client's
# address for login lockouts and API throttles is the one the outermost of them saw.
# 0 (no proxy): REMOTE_ADDR, and a client cannot choose its address by sending the header.
PROXY_COUNT = env.int("PROXY_COUNT", default=0)

INSTALLED_APPS = [
    # The back office's theme (README, "The back office"): before django.contrib.admin, whose
    # templates it overrides and whose default site it replaces.
    "unfold",
    "unfold.contrib.filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "providers",
    "providers.test",
    "payments",
    "checkout",
]

MIDDLEWARE = [
    # Every log line of the request carries its id; the response echoes it (README, "Logs").
    "config.requestid.RequestIdMiddleware",
    # /healthz, /readyz and /metrics, answered before the HTTPS redirect and the host check:
    # a load balancer and Prometheus ask each server by its address over plain HTTP.
    "config.probes.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's, Swagger UI's) served by the app itself, DEBUG or not.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it answers a locked-out login.
    "axes.middleware.AxesMiddleware",
]

# Login throttling (django-axes): failures are counted per (username, address) pair, so a
# stranger guessing one account locks out only themselves, never its owner elsewhere.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.client_ip.client_ip"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The back office's navigation follows an operator's day; what is internal to the machinery
# (keys, sessions, the sandbox's ledger, tokens) sits under Developer, for superusers only.
UNFOLD = {
    "SITE_TITLE": "Back office",
    "SITE_HEADER": "Payments back office",
    "SITE_SYMBOL": "payments",
    "SHOW_VIEW_ON_SITE": False,
    "DASHBOARD_CALLBACK": "checkout.admin.dashboard.dashboard_callback",
    "STYLES": ["checkout.admin.navigation.stylesheet"],
    "SIDEBAR": {
        "show_search": False,
        "show_all_applications": False,
        "navigation": "checkout.admin.navigation.sidebar",
    },
}

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite takes its write lock at BEGIN, so two requests never both read-then-write
    # the same rows: the embedded default keeps the guarantees select_for_update gives
    # on PostgreSQL.
    DATABASES["default"].setdefault("OPTIONS", {})["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A database that is away fails a request (and /readyz) in seconds, not at TCP's pace.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5)
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# `collectstatic` (part of every deploy) gives each file a hashed name WhiteNoise can cache
# forever; DEBUG (`make run`) serves them from the apps without it.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Per-process by default; CACHE_URL (e.g. a Redis) shares the API throttles' counters
# between workers and machines.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}


def _throttle_rate(name: str, default: str) -> str | None:
    """A DRF rate string ("1200/minute"); "off" turns the throttle off."""
    rate = env.str(name, default=default).strip()
    return None if rate.lower() in ("", "off", "none") else rate


# Per-client request throttles (SPEC section 10): the storefront's per address, the admin
# API's per staff user. Read by payments.api.throttling on every request.
STORE_API_THROTTLE = _throttle_rate("STORE_API_THROTTLE", "1200/minute")
ADMIN_API_THROTTLE = _throttle_rate("ADMIN_API_THROTTLE", "1200/minute")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Bounded: no deep nesting, no huge integers, no body over DATA_UPLOAD_MAX_MEMORY_SIZE.
    "DEFAULT_PARSER_CLASSES": ["payments.api.parsers.BoundedJSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["payments.api.throttling.StoreThrottle"],
    "NUM_PROXIES": PROXY_COUNT,
    "EXCEPTION_HANDLER": "payments.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "payments.api.schema.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Payments back office API",
    "DESCRIPTION": "Storefront and admin API: carts, payment sessions, exactly-once checkout.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from this server's static files (drf-spectacular-sidecar): no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # OpenAPI 3.0.3, not 3.1, on purpose: in 3.1's JSON Schema 12.0 is an integer, and the
    # API refuses it where it wants an integer (SPEC section 1).
    # Several resources have a `status` or `payment_status`: one enum name per choice set.
    "ENUM_NAME_OVERRIDES": {
        "SessionStatusEnum": "payments.models.PaymentSession.Status",
        "RefundStatusEnum": "payments.models.Refund.Status",
        "OrderStatusEnum": "checkout.models.Order.Status",
        "OrderPaymentStatusEnum": "checkout.models.Order.PaymentStatus",
        "SwapStatusEnum": "checkout.models.Swap.Status",
        "SwapPaymentStatusEnum": "checkout.models.Swap.PaymentStatus",
    },
}

STRIPE_API_KEY = env.str("STRIPE_API_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
# One attempt, no SDK retries: a request ends well within the web server's worker timeout.
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=10)

PAYPAL_CLIENT_ID = env.str("PAYPAL_CLIENT_ID", default="")
PAYPAL_CLIENT_SECRET = env.str("PAYPAL_CLIENT_SECRET", default="")
PAYPAL_WEBHOOK_ID = env.str("PAYPAL_WEBHOOK_ID", default="")
# PayPal's live API; https://api-m.sandbox.paypal.com for the sandbox.
PAYPAL_API_BASE = env.str("PAYPAL_API_BASE", default="https://api-m.paypal.com")
# One attempt per call, no retries inside the client (see providers/paypal/client.py).
PAYPAL_TIMEOUT_SECONDS = env.float("PAYPAL_TIMEOUT_SECONDS", default=10)
# Klarna Payments + Order Management, with HTTP Basic (the API credentials of the Merchant
# Portal). The playground is https://api.playground.klarna.com.
KLARNA_USERNAME = env.str("KLARNA_USERNAME", default="")
KLARNA_PASSWORD = env.str("KLARNA_PASSWORD", default="")
KLARNA_API_BASE = env.str("KLARNA_API_BASE", default="https://api.klarna.com")
# One attempt per call, no retries inside the client: as for Stripe.
KLARNA_TIMEOUT_SECONDS = env.float("KLARNA_TIMEOUT_SECONDS", default=10)
# Where Klarna posts its notifications (fraud decisions): https://<host>/api/hooks/klarna.
# Empty: no notifications; a pending fraud review is then seen when a capture re-reads it.
KLARNA_NOTIFICATION_URL = env.str("KLARNA_NOTIFICATION_URL", default="")

# The providers this deployment offers (SPEC section 3), by id or by dotted path of a
# provider class (providers.registry resolves them). By default `manual` and each real
# provider whose credentials are set; `test` only ever when named.
# One line per real provider: its id and whether its credentials are set.
_credentials_set = {
    "stripe": bool(STRIPE_API_KEY),
    "paypal": bool(PAYPAL_CLIENT_ID),
    "klarna": bool(KLARNA_USERNAME),
}
PAYMENT_PROVIDERS = env.list(
    "PAYMENT_PROVIDERS",
    default=["manual", *(name for name, is_set in _credentials_set.items() if is_set)],
)

# Origins a session's return_url / cancel_url may lead to (SPEC 4): no open redirects.
STOREFRONT_ORIGINS = [
    origin.lower().rstrip("/")
    for origin in env.list(
        "STOREFRONT_ORIGINS", default=["http://127.0.0.1:8000", "http://localhost:8000"]
    )
]

# The worker (SPEC 5.7): Celery with Redis as the broker. Tasks are acknowledged after
# they ran, so a worker killed mid-task leaves its message to another; every task is
# idempotent, and the periodic sweeps find what a lost message missed.
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="payments")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A request that enqueues never waits long on a broker that is away: the sweep catches up.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 5}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

CHECKOUT_STALLED_AFTER_SECONDS = env.int("CHECKOUT_STALLED_AFTER_SECONDS", default=600)
RECOVERY_INTERVAL_SECONDS = env.float("RECOVERY_INTERVAL_SECONDS", default=60)
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=30)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=12)
CELERY_BEAT_SCHEDULE = {
    name: {"task": task, "schedule": every}
    for name, task, every in [
        ("resume-operations", "payments.tasks.operations_resume_due", RECOVERY_INTERVAL_SECONDS),
        ("settle-pending", "payments.tasks.operations_refresh_pending", RECOVERY_INTERVAL_SECONDS),
        ("webhooks-due", "checkout.tasks.webhooks_process_due", RECOVERY_INTERVAL_SECONDS),
        ("stalled-checkouts", "checkout.tasks.checkouts_finish_stalled", RECOVERY_INTERVAL_SECONDS),
        ("release-sessions", "checkout.tasks.sessions_release_due", RECOVERY_INTERVAL_SECONDS),
        ("expire-keys", "payments.tasks.idempotency_keys_expire", 3600.0),
    ]
}

# How long a request may hold an Idempotency-Key before another may take it over.
IDEMPOTENCY_LOCK_LEASE_SECONDS = env.int("IDEMPOTENCY_LOCK_LEASE_SECONDS", default=60)
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24)

# /metrics (config/probes.py): with a token, only `Authorization: Bearer <token>`; without
# one, open under DEBUG only.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# Plain lines for `make run`; LOG_FORMAT=json for a log collector: one JSON object a line.
# Both carry the request id (config/requestid.py), in the web process and in its tasks.
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise ValueError(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.requestid.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(request_id)s %(message)s",
            "timestamp": True,
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # The SDK logs every request at INFO; our PaymentEvents already record each call.
    "loggers": {
        "stripe": {"level": "WARNING"},
        # httpx (the Klarna client) logs every request at INFO too.
        "httpx": {"level": "WARNING"},
        # django-axes announces itself at INFO in every process; its lockouts are WARNING.
        "axes": {"level": "WARNING"},
    },
}
