"""What an on-call engineer watches (README, "Health checks, metrics and logs"): each signal
moves when its event happens. The counters are per process, so each test reads them before
and after."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings
from django.test import Client
from prometheus_client import REGISTRY
from pythonjsonlogger.json import JsonFormatter

from config.requestid import RequestIdFilter
from payments.models import PaymentOperation, WebhookEvent
from tests.checkout.test_stripe_checkout import deliver, intent_of, stripe_cart

pytestmark = pytest.mark.django_db


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def provider_calls(operation: str, outcome: str) -> float:
    return sample(
        "payments_provider_call_seconds_count",
        provider="test",
        operation=operation,
        outcome=outcome,
    )


def failed(reason: str) -> float:
    return sample("checkout_failed_total", reason=reason)


def test_a_provider_call_is_timed_under_its_provider_operation_and_outcome(store, region, product):
    initiated = provider_calls("initiate", "ok")
    cart_id = store.cart_ready(region, product)
    assert provider_calls("initiate", "ok") == initiated + 1

    authorized = provider_calls("authorize", "ok")
    assert store.complete(cart_id).status_code == 200
    assert provider_calls("authorize", "ok") == authorized + 1
    assert (
        sample(
            "payments_provider_call_seconds_sum",
            provider="test",
            operation="authorize",
            outcome="ok",
        )
        > 0
    )


def test_a_completion_is_counted_once_and_its_replay_is_not(store, cart_id):
    completed = sample("checkout_completed_total")

    assert store.complete(cart_id, key="once").status_code == 200
    assert store.complete(cart_id, key="once")["Idempotent-Replayed"] == "true"

    assert sample("checkout_completed_total") == completed + 1


def test_a_declined_checkout_counts_a_declined_call_and_a_failed_checkout(store, region, product):
    cart_id = store.cart_ready(region, product, data={"outcome": "decline"})
    declined = provider_calls("authorize", "declined")
    failures = failed("payment_authorization_failed")
    completed = sample("checkout_completed_total")

    assert store.complete(cart_id).status_code == 402

    assert provider_calls("authorize", "declined") == declined + 1
    assert failed("payment_authorization_failed") == failures + 1
    assert sample("checkout_completed_total") == completed


def test_a_lost_authorization_answer_counts_as_unavailable_and_shows_as_an_open_operation(
    store, region, product, settings
):
    settings.METRICS_TOKEN = "scrape-secret"
    cart_id = store.cart_ready(region, product, data={"fail_after_authorize": True})
    unavailable = failed("provider_unavailable")

    assert store.complete(cart_id).status_code == 503

    assert failed("provider_unavailable") == unavailable + 1
    scraped = Client().get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert scraped.status_code == 200
    text = scraped.content.decode()
    for status in PaymentOperation.OPEN:
        shown = re.search(rf'^payments_operations_open\{{status="{status}"\}} (\S+)$', text, re.M)
        assert shown is not None, status
        assert float(shown.group(1)) == PaymentOperation.objects.filter(status=status).count()
    assert PaymentOperation.objects.filter(status__in=PaymentOperation.UNRESOLVED).exists()


@pytest.mark.django_db(transaction=True)
def test_a_processed_webhook_records_its_lag_once(store, stripe_server, stripe_region, product):
    cart_id = stripe_cart(store, stripe_region, product)
    intent_id = intent_of(cart_id)
    stripe_server.customer_confirms(intent_id)
    lags = sample("payments_webhook_lag_seconds_count", provider="stripe")

    deliver("payment_intent.amount_capturable_updated", {"id": intent_id}, event_id="evt_lag")
    deliver("payment_intent.amount_capturable_updated", {"id": intent_id}, event_id="evt_lag")

    assert WebhookEvent.objects.get().status == "processed"
    # Processed once, so measured once: the duplicate delivery is not processed again.
    assert sample("payments_webhook_lag_seconds_count", provider="stripe") == lags + 1


def test_metrics_need_the_bearer_token_outside_debug(settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert Client().get("/metrics").status_code == 403
    wrong = Client().get("/metrics", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 403

    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 403  # no token: open under DEBUG only
    settings.DEBUG = True
    assert Client().get("/metrics").status_code == 200


def test_healthz_answers_without_the_database(django_assert_num_queries):
    with django_assert_num_queries(0):
        response = Client().get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_ready_when_the_database_and_redis_answer():
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_readyz_is_503_and_names_redis_when_redis_is_unreachable(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    response = Client().get("/readyz")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["redis"].startswith("unreachable")


def test_probes_answer_over_plain_http_on_any_host_where_the_site_redirects(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["shop.example.com"]
    client = Client(HTTP_HOST="10.0.0.7:8001")  # a load balancer asks by address

    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert Client(HTTP_HOST="shop.example.com").get("/api/store/regions").status_code == 301


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Root's records through the JSON formatter the settings configure for LOG_FORMAT=json."""
    options = dict(django_settings.LOGGING["formatters"]["json"])
    assert options.pop("()") == "pythonjsonlogger.json.JsonFormatter"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter(**options))
    root = logging.getLogger()
    # INFO whatever LOG_LEVEL the environment running the suite sets.
    level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def records(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# Committed for real, so the task is queued (and run, eagerly) inside the request, as the
# web server does it; the test's own wrapping transaction would run it after the request.
@pytest.mark.django_db(transaction=True)
def test_the_request_id_is_echoed_and_follows_the_checkout_into_its_task(store, cart_id, json_log):
    request_id = "checkout-0123456789abcdef"

    response = store.post(f"carts/{cart_id}/complete", None, **{"X-Request-Id": request_id})

    assert response.status_code == 200
    assert response["X-Request-Id"] == request_id
    lines = records(json_log)
    completed = [r for r in lines if r["message"].startswith(f"Cart {cart_id} completed")]
    released = [r for r in lines if r["message"].startswith("Released")]
    assert [r["request_id"] for r in completed] == [request_id]
    # The release task ran (eagerly) after the commit: still the checkout's id.
    assert [r["request_id"] for r in released] == [request_id]
    assert {"timestamp", "levelname", "name"} <= set(completed[0])


@pytest.mark.parametrize("sent", ["short", "has space in it", "x" * 200, "new\nline-injected"])
def test_a_malformed_request_id_is_replaced_by_a_new_one(sent):
    response = Client().get("/healthz", headers={"X-Request-Id": sent})
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-Id"])


def test_the_request_id_travels_in_a_task_message_header():
    from celery import current_app

    from checkout.tasks import cart_sessions_release
    from config import requestid

    headers: dict[str, str] = {}
    token = requestid.current.set("web-request-42")
    try:
        requestid.task_publishing(headers=headers)
    finally:
        requestid.current.reset(token)
    assert headers == {"request_id": "web-request-42"}

    # The worker's side: a task started with that header logs under it, and the id is gone
    # once the task ends.
    seen: list[str] = []
    task = current_app.tasks[cart_sessions_release.name]
    task.push_request(request_id="web-request-42", id="t1")
    try:
        requestid.task_starting(task_id="t1", task=task)
        seen.append(requestid.current.get())
        requestid.task_finished(task_id="t1")
    finally:
        task.pop_request()
    assert seen == ["web-request-42"]
    assert requestid.current.get() == ""
