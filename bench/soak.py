"""`make soak`: payments under sustained load and faults, on a small cluster, must stay
exactly-once.

The deployment of README "Running in production" and deploy/, on one host: nginx with
deploy's proxy settings (`bench/nginx.py`) in front of two gunicorn servers on two ports
(each its own master and workers), two Celery workers with their schedulers (`worker
--beat`: two schedulers must be harmless), one PostgreSQL database and one Redis, with the
production settings and short recovery intervals. For a bounded time (default 300 s;
`SOAK_SECONDS` or `--seconds`), 16 shoppers check out through nginx (a retry after a dropped
connection or nginx's 502 goes through nginx again; with `--no-nginx` each checkout goes to
a server the shopper picks and a retry to the other), while:

- 10% of completes are sent again with the same Idempotency-Key after they succeed (the
  answer must be replayed byte for byte), 5% twice at the same moment;
- 5% use the `test` provider with `fail_after_authorize` (the authorization takes effect
  remotely and its answer is lost: a 503). Half of those shoppers retry with the same key;
  the others vanish, and the workers must finish their checkouts on their own;
- an operator captures and refunds orders through the admin API; 12% of the carts pay with
  the `test` provider set to lose the capture's or the refund's answer, or to settle both
  asynchronously, so the workers resume and settle them (`bench/soak_operator.py`);
- processes die on a schedule (`bench/soak_faults.py`): a gunicorn worker SIGKILLed every
  `--kill-every` seconds, a Celery worker SIGKILLed (and restarted) half-way between, and
  once the whole second server, master and workers, restarted on its port.

Then nginx and the servers stop, the soak waits (bounded) for the workers to drain what is left
(`bench/soak_checks.py`: no operation `requested`/`unknown` or long `pending`, no stalled
checkout), runs `reconcile_payments`, checks the database against the provider's ledger and
nginx's access log against the faults, and exits 1 if any check fails. It never runs the
worker's jobs itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench import nginx, server, soak_checks
from bench.celery_worker import CeleryWorker
from bench.client import CONNECTION_ERRORS, Client, Reply
from bench.flow import (
    Catalog,
    FlowError,
    cart_complete,
    cart_create,
    catalog_fetch,
    expect,
    line_item_add,
    session_data_update,
    session_select,
    sessions_create,
)
from bench.nginx import UPSTREAM_HEADER, Nginx
from bench.soak_checks import check
from bench.soak_faults import FaultSchedule
from bench.soak_operator import MoneyJob, Operator
from bench.soak_tally import Soak, Tally

DATABASE = "payments_soak"
RESULTS_FILE = server.RESULTS / "soak.json"

RETRY_SHARE = 0.10  # completes sent again with the same key after success
DOUBLE_SHARE = 0.05  # completes sent twice concurrently
COMES_BACK_SHARE = 0.5  # shoppers who retry after a lost authorization answer
CHANGES_CART_SHARE = 0.5  # of the others, those who change the cart before they vanish
SETTLE_SHARE = 0.15  # `manual` orders the operator captures and refunds
# Carts that pay with the `test` provider, by what its session data makes it do. Every
# order of the money faults goes to the operator.
FAULTS: dict[str, tuple[float, dict[str, Any]]] = {
    "lost_authorization": (0.05, {"fail_after_authorize": True}),
    "lost_capture": (0.04, {"fail_after_capture": True}),
    "lost_refund": (0.04, {"fail_after_refund": True}),
    "async": (0.04, {"async_operations": True, "settle_after_ms": 1000}),
}

# How long a shopper keeps retrying one completion (409 while a killed request's lease
# lives, connection errors while a server restarts) before giving up and vanishing.
PATIENCE_SECONDS = 15.0

# The recovery settings of every process: short, so that a few minutes' soak sees the
# workers resume, settle and finish many times over (production: 60 s, 600 s, 60 s).
RECOVERY_ENV = {
    "RECOVERY_INTERVAL_SECONDS": "2",
    "CHECKOUT_STALLED_AFTER_SECONDS": "5",
    "IDEMPOTENCY_LOCK_LEASE_SECONDS": "10",
    "WEBHOOK_RETRY_BASE_SECONDS": "1",
}
# After the load: how long the workers get to finish what the faults left behind.
DRAIN_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Scenario:
    fault: str  # "none" (manual) or a key of FAULTS
    mode: str  # "once", "retry" (same key again after success) or "double" (concurrent)
    comes_back: bool  # after a lost authorization answer, does the shopper retry?
    changes_cart: bool  # if not, does it add an item to the cart before it vanishes?

    @classmethod
    def draw(cls, rng: random.Random) -> Scenario:
        roll, fault = rng.random(), "none"
        for name, (share, _) in FAULTS.items():
            if roll < share:
                fault = name
                break
            roll -= share
        roll = rng.random()
        mode = "once"
        if roll < RETRY_SHARE:
            mode = "retry"
        elif roll < RETRY_SHARE + DOUBLE_SHARE:
            mode = "double"
        return cls(
            fault=fault,
            mode=mode,
            comes_back=rng.random() < COMES_BACK_SHARE,
            changes_cart=rng.random() < CHANGES_CART_SHARE,
        )

    @property
    def provider_id(self) -> str:
        return "manual" if self.fault == "none" else "test"


# Shoppers ---------------------------------------------------------------------------------


class Shopper:
    """One storefront customer after another, on a connection pair to each server."""

    def __init__(self, soak: Soak, index: int) -> None:
        self.soak = soak
        self.tally = soak.tally
        self.rng = random.Random(soak.rng_seed + index)
        # A main connection and a spare (for double clicks) to each server, or to nginx.
        self.clients = [(soak.client(url), soak.client(url)) for url in soak.urls]
        self.server = index % len(soak.urls)
        self.catalog: Catalog | None = None

    @property
    def main(self) -> Client:
        return self.clients[self.server][0]

    def failover(self) -> None:
        """The next request goes to the other server, as a load balancer would send it
        (behind nginx, simply to nginx again)."""
        if len(self.clients) > 1:
            self.server = (self.server + 1) % len(self.clients)
            self.tally.note("failovers", 1)

    def run(self, deadline: float) -> None:
        try:
            while time.monotonic() < deadline:
                # Each checkout lands on either machine.
                self.server = self.rng.randrange(len(self.clients))
                try:
                    self.catalog = self.catalog or catalog_fetch(self.main)
                    self.shop_once(self.catalog)
                except CONNECTION_ERRORS:
                    # A step before `complete` died with its server process: the cart holds
                    # no authorization, so the shopper simply starts a new one (and does not
                    # spin while a server restarts).
                    self.tally.note("connection_errors", 1)
                    self.tally.note("abandoned", "connection dropped before complete")
                    time.sleep(0.2)
                except FlowError as error:
                    self.tally.note("unexpected_other", str(error))
        finally:
            for pair in self.clients:
                for client in pair:
                    client.close()

    def step(self, kind: str, reply: Reply, *ok: int) -> Any:
        self.tally.record(kind, reply)
        return expect(reply, kind, *ok)

    def shop_once(self, catalog: Catalog) -> None:
        scenario = Scenario.draw(self.rng)
        main = self.main
        cart_id = self.step("create_cart", cart_create(main, catalog), 201)["id"]
        self.step("add_item", line_item_add(main, cart_id, catalog), 200)
        self.step("sessions", sessions_create(main, cart_id), 200)
        if scenario.fault != "none":
            data = FAULTS[scenario.fault][1]
            reply = session_data_update(main, cart_id, "test", data)
            self.step("session_data", reply, 200)
        self.step("select", session_select(main, cart_id, scenario.provider_id), 200)
        success = self.complete_until_final(cart_id, scenario)
        if success is None:
            return
        settle = scenario.fault not in ("none", "lost_authorization")
        if settle or self.rng.random() < SETTLE_SHARE:
            payment = success.json()["data"]["payments"][0]
            fault = scenario.fault if settle else "none"
            job = MoneyJob(payment["id"], payment["amount"], fault, self.server)
            self.soak.schedule(time.monotonic(), job)

    # Completion ---------------------------------------------------------------------------

    def complete_until_final(self, cart_id: str, scenario: Scenario) -> Reply | None:
        """Complete like a careful storefront: same key on every retry. None if it gave up."""
        key = uuid.uuid4().hex
        give_up_at = time.monotonic() + PATIENCE_SECONDS
        first = True
        lost_authorization = scenario.fault == "lost_authorization"
        while True:
            if first and scenario.mode == "double":
                replies = self.send_twice(cart_id, key)
                self.tally.note(
                    "doubles", "/".join(str(r.status if r else "conn") for r in replies)
                )
            else:
                replies = [self.complete_once(cart_id, key)]
            first = False
            answered = [r for r in replies if r is not None]
            if len(answered) < len(replies):
                self.tally.note("connection_errors", len(replies) - len(answered))
                self.failover()
            for reply in answered:
                self.tally.record("complete", reply, allowed_503=lost_authorization)
                if reply.status == 503:
                    self.tally.note("fault_503s", cart_id)
            success = next((r for r in answered if r.status == 200), None)
            if success is not None:
                return self.check_order(cart_id, key, success, scenario)
            statuses = {r.status for r in answered}
            if statuses - {409, 503}:
                reply = next(r for r in answered if r.status not in (409, 503))
                self.tally.note(
                    "unexpected_other", f"complete: {reply.status} {reply.body[:200]!r}"
                )
                self.tally.note("abandoned", f"unexpected {reply.status}")
                return None
            if 503 in statuses and not scenario.comes_back:
                self.vanish(cart_id, scenario)
                return None
            if time.monotonic() > give_up_at:
                self.tally.note("abandoned", f"gave up after {PATIENCE_SECONDS:g} s of 409/dropped")
                self.tally.note("vanished_carts", cart_id)
                return None
            time.sleep(0.5 if 409 in statuses else 0.2)

    def vanish(self, cart_id: str, scenario: Scenario) -> None:
        """Leave after a lost authorization answer, sometimes changing the cart first: the
        worker must complete the cart as it was authorized, or, once it changed, leave it
        uncompleted with the authorization released (never authorized without an order)."""
        if scenario.changes_cart and self.catalog is not None:
            try:
                reply = line_item_add(self.main, cart_id, self.catalog)
            except CONNECTION_ERRORS:
                self.tally.note("connection_errors", 1)
            else:
                # 409: a completion still holds the cart (a killed request's lease).
                self.tally.record("add_item after a lost authorization", reply)
                if reply.status == 200:
                    self.tally.note("changed_carts", cart_id)
                    self.tally.note("abandoned", "vanished after a lost authorization and a change")
                    return
                if reply.status != 409:
                    self.tally.note(
                        "unexpected_other", f"change: {reply.status} {reply.body[:200]!r}"
                    )
        self.tally.note("abandoned", "vanished after a lost authorization (left to the worker)")
        self.tally.note("vanished_carts", cart_id)

    def complete_once(self, cart_id: str, key: str) -> Reply | None:
        try:
            return cart_complete(self.main, cart_id, key)
        except CONNECTION_ERRORS:
            return None

    def send_twice(self, cart_id: str, key: str) -> list[Reply | None]:
        """The same completion on two connections at once (a double click)."""
        main, spare = self.clients[self.server]
        barrier = threading.Barrier(2)
        replies: list[Reply | None] = [None, None]

        def fire(index: int, client: Client) -> None:
            barrier.wait()
            try:
                replies[index] = cart_complete(client, cart_id, key)
            except CONNECTION_ERRORS:
                replies[index] = None

        # The spare connection sits idle between double clicks, longer than the server keeps
        # an idle connection alive: open it fresh each time so a stale socket is not counted
        # as a fault.
        spare.close()
        helper = threading.Thread(target=fire, args=(1, spare))
        helper.start()
        fire(0, main)
        helper.join()
        return replies

    def check_order(
        self, cart_id: str, key: str, success: Reply, scenario: Scenario
    ) -> Reply | None:
        data = success.json()
        if data.get("type") != "order":
            self.tally.note("unexpected_other", f"complete: 200 with a {data.get('type')!r}")
            return None
        self.tally.note("orders", 1)
        if self.soak.balanced:
            # The server that answered last (nginx lists every one it tried).
            upstream = success.headers.get(UPSTREAM_HEADER, "?").split(", ")[-1]
            self.tally.note("orders_by_server", self.soak.upstream_names.get(upstream, upstream))
        else:
            self.tally.note("orders_by_server", f"server {self.server + 1}")
        if scenario.mode == "retry":
            self.check_replay(cart_id, key, success)
        return success

    def check_replay(self, cart_id: str, key: str, first: Reply) -> None:
        """A finished key answers again byte for byte, marked as replayed (SPEC 5.3), on
        either server."""
        for _ in range(5):
            again = self.complete_once(cart_id, key)
            if again is None:
                self.tally.note("connection_errors", 1)
                self.failover()
                continue
            self.tally.record("complete (replay)", again)
            self.tally.note("replays_checked", 1)
            replayed = again.headers.get("idempotent-replayed") == "true"
            if again.status != 200 or again.body != first.body or not replayed:
                self.tally.note(
                    "replay_mismatches", f"{cart_id}: {again.status} replayed={replayed}"
                )
            return


# Set-up -----------------------------------------------------------------------------------


def admin_token(env: dict[str, str]) -> str:
    output = server.manage(env, "drf_create_token", "operator").stdout
    match = re.search(r"token (\w+)", output)
    if match is None:
        raise RuntimeError(f"drf_create_token printed no token: {output!r}")
    return match.group(1)


def soak_env(dsn: str, queue_name: str, *, behind_nginx: bool) -> dict[str, str]:
    """What every server and worker process gets: production settings over plain HTTP, the
    soak's own queue (never another run's or the developer's), short recovery settings;
    behind nginx, the proxy settings of deploy/payments.env.example."""
    proxy = {"SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https", "PROXY_COUNT": "1"}
    return {
        **server.server_env(dsn, settings="config.settings.production"),
        **RECOVERY_ENV,
        **(proxy if behind_nginx else {}),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CELERY_QUEUE": queue_name,
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    }


# The run ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 300)))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--kill-every", type=float, default=20.0, help="seconds between gunicorn worker kills"
    )
    parser.add_argument("--workers", type=int, default=server.WORKERS, help="gunicorn, per server")
    parser.add_argument("--threads", type=int, default=server.THREADS)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument(
        "--database",
        default=os.environ.get("SOAK_DATABASE", DATABASE),
        help=f"the soak's database, dropped and created afresh (default {DATABASE})",
    )
    parser.add_argument(
        "--no-nginx",
        dest="nginx",
        action="store_false",
        help="shoppers and operator pick a server themselves, with no nginx in front",
    )
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Run:
    shopping_seconds: float  # until the last shopper finished its last checkout
    operator_seconds: float  # then, until the operator settled what was still queued
    faults: FaultSchedule
    workers: list[CeleryWorker]


def drive(
    soak: Soak,
    servers: list[server.Gunicorn],
    workers: list[CeleryWorker],
    args: argparse.Namespace,
    token: str,
) -> Run:
    """The loaded phase: shoppers, two operators and the fault schedule."""
    faults = FaultSchedule(
        servers, workers, seconds=args.seconds, every=args.kill_every, rng=random.Random(args.seed)
    )
    operator_stop = threading.Event()
    operators = [
        threading.Thread(target=Operator(soak, token, i).run, args=(operator_stop,))
        for i in range(2)
    ]
    faults.start()
    for thread in operators:
        thread.start()
    began = time.monotonic()
    deadline = began + args.seconds
    shoppers = [
        threading.Thread(target=Shopper(soak, i).run, args=(deadline,)) for i in range(args.clients)
    ]
    for thread in shoppers:
        thread.start()
    for thread in shoppers:
        thread.join()
    shopped = time.monotonic()
    # No more faults while the operator finishes: a process killed now would only lengthen
    # the drain, and what was killed last is running again.
    faults.finish()
    operator_stop.set()
    for thread in operators:
        thread.join()
    return Run(shopped - began, time.monotonic() - shopped, faults, workers)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"Preparing a fresh database {args.database} (migrate, register_providers, seed_demo)")
    dsn = server.database_recreate(args.database)
    env = soak_env(dsn, f"soak-{uuid.uuid4().hex[:12]}", behind_nginx=args.nginx)
    server.project_prepare(env)
    token = admin_token(env)
    options = server.GunicornOptions(args.workers, args.threads)
    started = datetime.now(UTC)
    balancer: Nginx | None = None
    with ExitStack() as stack:
        stack.callback(server.queue_forget, env)
        workers = [CeleryWorker(env, f"celery{i}") for i in (1, 2)]
        for worker in workers:
            stack.callback(worker.stop)
            worker.start()
        servers = [
            server.Gunicorn(env, options, f"soak-gunicorn{i}.log", name=f"server {i}")
            for i in (1, 2)
        ]
        for gunicorn in servers:
            stack.callback(gunicorn.stop)
            gunicorn.start()
        urls = " and ".join(s.url for s in servers)
        print(f"2 servers: gunicorn {' '.join(options.args())} on {urls}")
        names = {f"127.0.0.1:{s.port}": s.name for s in servers}
        if args.nginx:
            balancer = Nginx(list(names))
            stack.callback(balancer.stop)
            balancer.start()
            print(f"nginx ({' '.join(balancer.command())}) on {balancer.url} in front of both")
            soak = Soak([balancer.url], Tally(), args.seed, upstream_names=names)
        else:
            nginx.logs_clear()
            soak = Soak([s.url for s in servers], Tally(), args.seed)
        print(f"2 Celery workers (worker --beat) on queue {env['CELERY_QUEUE']}")
        print(
            f"{args.clients} shoppers for {args.seconds:g} s; a gunicorn worker SIGKILLed every"
            f" {args.kill_every:g} s, a Celery worker between, server 2 once (seed {args.seed})",
            flush=True,
        )
        run = drive(soak, servers, workers, args, token)
        # The load has stopped: nginx and the servers go, the workers finish what is left.
        if balancer is not None:
            balancer.stop()
        for gunicorn in servers:
            gunicorn.stop()
        lease = int(RECOVERY_ENV["IDEMPOTENCY_LOCK_LEASE_SECONDS"])
        print(
            f"Load stopped; waiting (at most {DRAIN_TIMEOUT_SECONDS:g} s) for the workers to drain",
            flush=True,
        )
        drained_in, left = soak_checks.drain(
            dsn, lease_seconds=lease, timeout=DRAIN_TIMEOUT_SECONDS
        )

    report = report_build(soak, run, env, dsn, options, started, drained_in, left)
    print_report(report)
    RESULTS_FILE.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nResults written to {RESULTS_FILE}; logs beside it")
    failed = [c["check"] for c in report["checks"] if c["status"] == "fail"]
    print(f"\nSOAK {'FAILED: ' + '; '.join(failed) if failed else 'CLEAN'}")
    return 1 if failed else 0


# Report -----------------------------------------------------------------------------------


def report_build(
    soak: Soak,
    run: Run,
    env: dict[str, str],
    dsn: str,
    options: server.GunicornOptions,
    started: datetime,
    drained_in: float,
    left: dict[str, int],
) -> dict[str, Any]:
    tally = soak.tally
    reconcile = soak_checks.run_command(env, "reconcile_payments")
    checks = traffic_checks(tally)
    balancer: dict[str, object] = {"none": "--no-nginx: each client picked a server"}
    if soak.balanced:
        balancer, nginx_checks = nginx.traffic_report(soak.upstream_names, run.faults.events)
        checks += nginx_checks
    checks.append(
        check(
            f"the workers drained within {DRAIN_TIMEOUT_SECONDS:g} s",
            not any(left.values()),
            f"left: {left}",
        )
    )
    checks.append(soak_checks.command_check(reconcile))
    # Every task is idempotent and two schedulers only sweep twice (SPEC 5.7): a task that
    # raises, when two workers do the same job at once, is a job that is not.
    task_errors = [error for worker in run.workers for error in worker.task_errors()]
    checks.append(
        check(
            "no Celery task raised (two workers, two schedulers: harmless)",
            not task_errors,
            f"{len(task_errors)}: {sorted(set(task_errors))[:3]}",
        )
    )
    # What the customer authorized was the cart before the change: the worker must never
    # complete the changed cart on its own (SPEC 5.6: superseded, never asked anew).
    changed = soak_checks.vanished_outcomes(dsn, tally.changed_carts)
    checks.append(
        check(
            "no cart changed after a lost authorization was completed by the worker",
            changed["completed by the worker"] == 0,
            f"{changed}",
        )
    )
    checks += soak_checks.money_checks(dsn)
    checks += soak_checks.expectation_checks(dsn, tally.expected)
    checks += soak_checks.database_checks(dsn)
    return {
        "started_at": started.isoformat(),
        "machine": server.machine(),
        "gunicorn": options.args(),
        "recovery settings": RECOVERY_ENV,
        "traffic": traffic_summary(tally, run),
        "nginx": balancer,
        "faults": run.faults.log,
        "fault errors": run.faults.errors,
        "drain": {"seconds": round(drained_in, 1), "left": left},
        "celery workers": {w.name: w.activity() for w in run.workers},
        "vanished shoppers' carts": soak_checks.vanished_outcomes(dsn, tally.vanished_carts),
        "vanished shoppers' carts changed after the lost answer": changed,
        "database": soak_checks.database_totals(dsn),
        "commands": [reconcile],
        "checks": checks,
        "unexpected_5xx": tally.unexpected_5xx[:50],
    }


def traffic_checks(tally: Tally) -> list[dict[str, Any]]:
    repeated_503 = [cart for cart, n in tally.fault_503s.items() if n > 1]
    return [
        check("checkouts happened", tally.orders > 0, "no order at all"),
        check(
            "zero 5xx other than the lost answers' 503s",
            not tally.unexpected_5xx,
            f"{len(tally.unexpected_5xx)}: {tally.unexpected_5xx[:5]}",
        ),
        check(
            "a lost authorization answers 503 once per cart",
            not repeated_503,
            f"{len(repeated_503)} carts: {repeated_503[:5]}",
        ),
        check(
            "a retried key replays byte for byte",
            not tally.replay_mismatches,
            f"{tally.replay_mismatches[:5]}",
        ),
        check(
            # SPEC 6: a retry after a lost answer asks the provider again under the same
            # provider key and gets the real outcome. A 503 here means the retry did not ask
            # (payment_settle_unresolved found the operation leased by another attempt, the
            # worker's, and answered 503 where its docstring promises 409 "in progress").
            "a lost money answer retried with its key gets the real outcome, not another 503",
            not tally.retry_503s,
            f"{len(tally.retry_503s)}: {tally.retry_503s[:3]}",
        ),
        check(
            "every admin capture and refund answered as expected",
            not tally.settle_mismatches,
            f"{len(tally.settle_mismatches)}: {tally.settle_mismatches[:5]}",
        ),
    ]


def traffic_summary(tally: Tally, run: Run) -> dict[str, Any]:
    seconds = run.shopping_seconds
    return {
        # Checkouts in flight at the deadline run to their end (at most PATIENCE_SECONDS).
        "shopping seconds": round(seconds, 1),
        "operator drain seconds": round(run.operator_seconds, 1),
        "orders": tally.orders,
        "orders per second": round(tally.orders / seconds, 2) if seconds else 0,
        "orders by server": dict(sorted(tally.orders_by_server.items())),
        "processes killed": dict(run.faults.kills),
        # Behind nginx, these include its 502s for requests that died with their server.
        "connection errors (killed server processes)": tally.connection_errors,
        "failovers to the other server (no nginx)": tally.failovers,
        "statuses": dict(sorted(tally.statuses.items())),
        "abandoned carts": dict(tally.abandoned),
        "lost authorization 503s": sum(tally.fault_503s.values()),
        "double sends (statuses)": dict(tally.doubles),
        "replays checked": tally.replays_checked,
        "payments settled by the operator, by fault": dict(tally.settled),
        "lost money answers": dict(tally.lost_answers),
        "refunds sent twice with one key": tally.refund_replays,
        "unexpected answers (not 5xx)": tally.unexpected_other[:10],
    }


def print_report(report: dict[str, Any]) -> None:
    titles = ["traffic", "nginx", "drain", "celery workers", "vanished shoppers' carts"]
    titles += ["vanished shoppers' carts changed after the lost answer", "database"]
    for title in titles:
        print(f"\n{title.capitalize()}")
        for name, value in report[title].items():
            print(f"  {name}: {value}")
    print("\nFaults")
    for line in [*report["faults"], *report["fault errors"]]:
        print(f"  {line}")
    print("\nCommands")
    for result in report["commands"]:
        lines = result["output"].splitlines() or [""]
        more = f" (+{len(lines) - 1} lines, see the JSON)" if len(lines) > 1 else ""
        print(f"  {result['status'].upper():<4}  {result['command']}: {lines[0][:200]}{more}")
    print("\nChecks")
    for result in report["checks"]:
        detail = f"  ({result['detail']})" if result["detail"] else ""
        print(f"  {result['status'].upper():<4}  {result['check']}{detail}")


if __name__ == "__main__":
    sys.exit(main())
