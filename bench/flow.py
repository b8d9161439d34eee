"""The storefront checkout flow, driven over HTTP by N concurrent clients.

`run_clients` is what `make bench` measures and what `tests/bench/test_bench_flow.py` runs
against Django's live server, so the benchmark cannot silently rot.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.client import CONNECTION_ERRORS, Client, Reply

STEPS = ("create_cart", "add_item", "sessions", "select", "complete")
STORE = "/api/store"


class FlowError(Exception):
    """A step answered something other than success: the checkout is abandoned."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step


@dataclass(frozen=True)
class Catalog:
    """What a storefront reads once: a region offering the provider, and a product there."""

    region_id: str
    product_id: str


@dataclass(frozen=True)
class StepSample:
    step: str
    seconds: float
    queries: int | None


@dataclass(frozen=True)
class Checkout:
    order_id: str
    payment_id: str
    amount: int
    steps: tuple[StepSample, ...]

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    @property
    def queries(self) -> int | None:
        counts = [s.queries for s in self.steps]
        return None if None in counts else sum(c for c in counts if c is not None)


# The storefront calls ---------------------------------------------------------------------


def expect(reply: Reply, step: str, *statuses: int) -> Any:
    """The JSON of a successful answer; anything else abandons the checkout."""
    if reply.status not in statuses:
        raise FlowError(step, f"HTTP {reply.status} {reply.body[:200]!r}")
    return reply.json()


# The region `make bench` adds beside the demo's, shaped like Medusa's bench seed (one
# country, USD, the `manual` provider alone), so both benches open one session per checkout.
BENCH_REGION = "Bench US (as Medusa's seed)"


def catalog_fetch(client: Client, provider_id: str = "manual") -> Catalog:
    """The bench's own region when the store has it, else any region offering the provider."""
    regions = expect(client.request("GET", f"{STORE}/regions"), "regions", 200)
    offering = [r for r in regions if provider_id in r["payment_providers"]]
    region = next((r for r in offering if r["name"] == BENCH_REGION), None) or next(
        iter(offering), None
    )
    if region is None:
        raise FlowError("regions", f"no region offers the {provider_id!r} provider")
    products = expect(
        client.request("GET", f"{STORE}/products?region_id={region['id']}"), "products", 200
    )
    if not products:
        raise FlowError("products", "the region sells nothing")
    return Catalog(region_id=region["id"], product_id=products[0]["id"])


def cart_create(client: Client, catalog: Catalog) -> Reply:
    return client.request(
        "POST", f"{STORE}/carts", {"region_id": catalog.region_id, "email": "bench@example.com"}
    )


def line_item_add(client: Client, cart_id: str, catalog: Catalog, quantity: int = 1) -> Reply:
    body = {"product_id": catalog.product_id, "quantity": quantity}
    return client.request("POST", f"{STORE}/carts/{cart_id}/line-items", body)


def sessions_create(client: Client, cart_id: str) -> Reply:
    return client.request("POST", f"{STORE}/carts/{cart_id}/payment-sessions")


def session_data_update(client: Client, cart_id: str, provider_id: str, data: dict) -> Reply:
    path = f"{STORE}/carts/{cart_id}/payment-sessions/{provider_id}"
    return client.request("POST", path, {"data": data})


def session_select(client: Client, cart_id: str, provider_id: str) -> Reply:
    path = f"{STORE}/carts/{cart_id}/payment-session"
    return client.request("POST", path, {"provider_id": provider_id})


def cart_complete(client: Client, cart_id: str, key: str) -> Reply:
    return client.request(
        "POST", f"{STORE}/carts/{cart_id}/complete", headers={"Idempotency-Key": key}
    )


def checkout(client: Client, catalog: Catalog, provider_id: str = "manual") -> Checkout:
    """The five timed steps of one checkout; raises FlowError or a connection error."""
    samples: list[StepSample] = []

    def timed(step: str, reply: Reply, *ok: int) -> Any:
        samples.append(StepSample(step, reply.seconds, reply.query_count))
        return expect(reply, step, *ok)

    cart_id = timed("create_cart", cart_create(client, catalog), 201)["id"]
    timed("add_item", line_item_add(client, cart_id, catalog), 200)
    timed("sessions", sessions_create(client, cart_id), 200)
    timed("select", session_select(client, cart_id, provider_id), 200)
    answer = timed("complete", cart_complete(client, cart_id, uuid.uuid4().hex), 200)
    if answer.get("type") != "order":
        raise FlowError("complete", f"answered a {answer.get('type')!r}, not an order")
    order = answer["data"]
    payment = order["payments"][0]
    return Checkout(order["id"], payment["id"], payment["amount"], tuple(samples))


# Concurrent clients -----------------------------------------------------------------------


@dataclass
class ClientLog:
    """What one client thread saw; merged after the threads join (no shared state)."""

    checkouts: list[Checkout] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _client_loop(base_url: str, catalog: Catalog, deadline: float, log: ClientLog) -> None:
    client = Client(base_url)
    try:
        # A checkout started before the deadline runs to its end: no half-made carts.
        while time.monotonic() < deadline:
            try:
                log.checkouts.append(checkout(client, catalog))
            except FlowError as error:
                log.errors.append(str(error))
            except CONNECTION_ERRORS as error:
                log.errors.append(f"connection: {error!r}")
    finally:
        client.close()


@dataclass
class LevelResult:
    clients: int
    seconds: float
    checkouts: list[Checkout]
    errors: list[str]

    @property
    def checkouts_per_second(self) -> float:
        return len(self.checkouts) / self.seconds if self.seconds else 0.0

    def step_samples(self, step: str) -> list[StepSample]:
        return [s for c in self.checkouts for s in c.steps if s.step == step]

    def summary(self) -> dict[str, Any]:
        steps = {step: sample_summary(self.step_samples(step)) for step in STEPS}
        flow_queries = [c.queries for c in self.checkouts if c.queries is not None]
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 3),
            "checkouts": len(self.checkouts),
            "checkouts_per_second": round(self.checkouts_per_second, 2),
            "errors": len(self.errors),
            "error_samples": self.errors[:5],
            "steps": steps,
            "flow": {
                "median_ms": ms(median([c.seconds for c in self.checkouts])),
                "p95_ms": ms(percentile([c.seconds for c in self.checkouts], 95)),
                "queries": count_summary(flow_queries),
            },
        }


def run_clients(
    base_url: str, *, clients: int, seconds: float, catalog: Catalog | None = None
) -> LevelResult:
    """Run `clients` threads doing checkouts back to back for about `seconds`."""
    if catalog is None:
        catalog_client = Client(base_url)
        try:
            catalog = catalog_fetch(catalog_client)
        finally:
            catalog_client.close()
    logs = [ClientLog() for _ in range(clients)]
    started = time.monotonic()
    deadline = started + seconds
    threads = [
        threading.Thread(target=_client_loop, args=(base_url, catalog, deadline, log), daemon=True)
        for log in logs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return LevelResult(
        clients=clients,
        seconds=elapsed,
        checkouts=[c for log in logs for c in log.checkouts],
        errors=[e for log in logs for e in log.errors],
    )


# Statistics -------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile: an observed value, never an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def count_summary(counts: Sequence[int]) -> dict[str, Any]:
    """Statement counts: the median and the spread (a fixed count has min == max)."""
    if not counts:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(counts), "min": min(counts), "max": max(counts)}


def sample_summary(samples: Sequence[StepSample]) -> dict[str, Any]:
    latencies = [s.seconds for s in samples]
    return {
        "requests": len(samples),
        "median_ms": ms(median(latencies)),
        "p95_ms": ms(percentile(latencies, 95)),
        "queries": count_summary([s.queries for s in samples if s.queries is not None]),
    }
