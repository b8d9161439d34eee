"""/healthz, /readyz and /metrics: what a load balancer and Prometheus ask (README,
"Health checks and metrics").

They are answered by a middleware near the top of the chain, before the HTTPS redirect and
the ALLOWED_HOSTS check: a load balancer probes each server over plain HTTP by its address,
and these answers hold nothing that depends on the host. Not throttled, no session, not
part of the API (nor of its OpenAPI schema).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from payments.metrics import OpenOperationsCollector

# Read from the database at scrape time, in every mode: kept apart from the per-process
# registry, which in multiprocess mode is read from files only.
SCRAPE_TIME = CollectorRegistry()
SCRAPE_TIME.register(OpenOperationsCollector())


def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up and answers; nothing else is asked."""
    return JsonResponse({"status": "ok"})


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:
        return f"unreachable ({type(error).__name__})"
    return "ok"


def _redis() -> str:
    # Its own short-lived client with short timeouts: a probe must answer before the load
    # balancer gives up on it, whatever the broker does.
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except Exception as error:
        return f"unreachable ({type(error).__name__})"
    finally:
        client.close()
    return "ok"


def readyz(request: HttpRequest) -> HttpResponse:
    """Ready for traffic: the database and Redis (the broker) both answer. 503 says which
    one does not."""
    checks = {"database": _database(), "redis": _redis()}
    ready = all(result == "ok" for result in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


def _metrics_allowed(request: HttpRequest) -> bool:
    """With METRICS_TOKEN set, only `Authorization: Bearer <token>`; without it, open
    under DEBUG only."""
    token = settings.METRICS_TOKEN
    if not token:
        return settings.DEBUG
    sent = request.headers.get("Authorization", "")
    return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())


def metrics(request: HttpRequest) -> HttpResponse:
    if not _metrics_allowed(request):
        return JsonResponse(
            {"code": "permission_denied", "message": "Metrics need the bearer token."},
            status=403,
        )
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every gunicorn worker and Celery process of this machine writes its counters
        # to that directory; this adds them up.
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        own = generate_latest(registry)
    else:
        own = generate_latest(REGISTRY)
    return HttpResponse(own + generate_latest(SCRAPE_TIME), content_type=CONTENT_TYPE_LATEST)


PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": healthz,
    "/readyz": readyz,
    "/metrics": metrics,
}


class ProbeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is None or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        return probe(request)
