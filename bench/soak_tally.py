"""What the soak's threads share: where the servers are and what happened, counted."""

from __future__ import annotations

import itertools
import queue
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.client import Client, Reply


@dataclass
class Tally:
    """Counters shared by the shopper and operator threads (under one lock)."""

    statuses: Counter[str] = field(default_factory=Counter)
    unexpected_5xx: list[str] = field(default_factory=list)
    unexpected_other: list[str] = field(default_factory=list)
    connection_errors: int = 0
    failovers: int = 0
    orders: int = 0
    orders_by_server: Counter[str] = field(default_factory=Counter)
    abandoned: Counter[str] = field(default_factory=Counter)
    vanished_carts: list[str] = field(default_factory=list)
    changed_carts: list[str] = field(default_factory=list)
    fault_503s: Counter[str] = field(default_factory=Counter)
    replays_checked: int = 0
    replay_mismatches: list[str] = field(default_factory=list)
    doubles: Counter[str] = field(default_factory=Counter)
    settled: Counter[str] = field(default_factory=Counter)
    lost_answers: Counter[str] = field(default_factory=Counter)
    refund_replays: int = 0
    settle_mismatches: list[str] = field(default_factory=list)
    # 503s answered to a retry, with its key, of a lost money answer (see until_answered).
    retry_503s: list[str] = field(default_factory=list)
    # payment id -> (amount_captured, amount_refunded) the operator's actions must leave.
    expected: dict[str, tuple[int, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, reply: Reply, *, allowed_503: bool = False) -> None:
        with self.lock:
            self.statuses[f"{kind} {reply.status}"] += 1
            # The one 5xx a fault calls for: the provider's answer was lost (SPEC 5.3, 6).
            fault = allowed_503 and reply.status == 503 and reply.code == "provider_unavailable"
            if reply.status >= 500 and not fault:
                self.unexpected_5xx.append(f"{kind}: {reply.status} {reply.body[:200]!r}")

    def note(self, attribute: str, value: Any) -> None:
        with self.lock:
            target = getattr(self, attribute)
            if isinstance(target, list):
                target.append(value)
            elif isinstance(target, Counter):
                target[value] += 1
            else:
                setattr(self, attribute, target + value)


@dataclass
class Soak:
    """What every thread shares: the servers ("machines"), the tally, the operator's jobs."""

    urls: list[str]  # the servers' own, or the one of the load balancer in front of them
    tally: Tally
    rng_seed: int
    # Behind nginx: its address -> the server's name, to say which one answered (X-Upstream).
    upstream_names: dict[str, str] = field(default_factory=dict)
    # (when it is due, a tie-breaker, the job): the operator's work, some of it for later.
    jobs: queue.PriorityQueue[tuple[float, int, Any]] = field(default_factory=queue.PriorityQueue)
    _sequence: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def balanced(self) -> bool:
        return bool(self.upstream_names)

    def client(self, url: str, **options: Any) -> Client:
        """A client of `url`; behind nginx, its own 502/504 answers raise GatewayError."""
        return Client(url, balanced=self.balanced, **options)

    def schedule(self, due: float, job: Any) -> None:
        self.jobs.put((due, next(self._sequence), job))
