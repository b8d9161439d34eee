"""Prometheus metrics of the payment domain (README, "Metrics"), served at /metrics.

Counters and histograms live in the process that moves them; with PROMETHEUS_MULTIPROC_DIR
set, prometheus-client writes them to files there, and /metrics adds up every process on
the machine. The open operations are read from the database when /metrics is scraped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TypeVar

from django.db import DatabaseError
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from payments.models import PaymentOperation
from providers.base import ProviderError

T = TypeVar("T")
logger = logging.getLogger(__name__)

provider_call_seconds = Histogram(
    "payments_provider_call_seconds",
    "Provider calls by provider, operation and outcome ('ok', or the provider error's kind).",
    ["provider", "operation", "outcome"],
    # From a local sandbox to a provider near its 10 s timeout.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

webhook_lag_seconds = Histogram(
    "payments_webhook_lag_seconds",
    "From a webhook's arrival to the end of its successful processing.",
    ["provider"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600),
)


def provider_call_observe(
    provider_id: str, operation: str, call: Callable[[], T]
) -> T | ProviderError:
    """Run the call and record how long it took and how it ended; a ProviderError is
    returned, anything else raised again (counted as 'exception')."""
    started = time.perf_counter()
    try:
        result: T | ProviderError = call()
    except ProviderError as error:
        result = error
    except BaseException:
        elapsed = time.perf_counter() - started
        provider_call_seconds.labels(provider_id, operation, "exception").observe(elapsed)
        raise
    elapsed = time.perf_counter() - started
    outcome = result.kind.value if isinstance(result, ProviderError) else "ok"
    provider_call_seconds.labels(provider_id, operation, outcome).observe(elapsed)
    return result


def webhook_processed(provider_id: str, received_at: datetime) -> None:
    lag = (timezone.now() - received_at).total_seconds()
    webhook_lag_seconds.labels(provider_id).observe(max(lag, 0.0))


class OpenOperationsCollector(Collector):
    """Operations waiting on a provider, per status, and how long the oldest has waited:
    one query on the partial index of open operations, at scrape time."""

    def collect(self) -> Iterator[Metric]:
        waiting = GaugeMetricFamily(
            "payments_operations_open",
            "Operations not settled yet: requested, unknown (asked again by the worker) and "
            "pending (settled later by the provider).",
            labels=["status"],
        )
        oldest = GaugeMetricFamily(
            "payments_operations_open_oldest_seconds",
            "Age of the oldest operation in each open status (0 when there is none).",
            labels=["status"],
        )
        try:
            rows = {
                row["status"]: row
                for row in PaymentOperation.objects.filter(status__in=PaymentOperation.OPEN)
                .values("status")
                .annotate(count=Count("id"), oldest=Min("created_at"))
                .order_by()
            }
        except DatabaseError as error:
            # A database that is away must not hide the rest of /metrics, which is when it
            # is needed most; /readyz says what is wrong.
            logger.warning("Open operations not read for /metrics: %s", type(error).__name__)
            return
        now = timezone.now()
        for status in PaymentOperation.OPEN:
            row = rows.get(status)
            waiting.add_metric([status], row["count"] if row else 0)
            age = (now - row["oldest"]).total_seconds() if row else 0.0
            oldest.add_metric([status], max(age, 0.0))
        yield waiting
        yield oldest
