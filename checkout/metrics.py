"""Prometheus counters of checkout (README, "Metrics"), served at /metrics."""

from __future__ import annotations

from prometheus_client import Counter

checkouts_completed = Counter(
    "checkout_completed_total",
    "Carts turned into an order (or a swap's payment), once per cart, whoever completed it.",
)

checkouts_failed = Counter(
    "checkout_failed_total",
    "Completion attempts that ended in an error, by its code: payment_authorization_failed "
    "(declined), provider_unavailable (retried later), invalid_data, invalid_state.",
    ["reason"],
)
