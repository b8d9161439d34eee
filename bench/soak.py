"""`make soak`: checkout under sustained load and faults must stay exactly-once.

For a bounded time (default 300 s; `SOAK_SECONDS` or `--seconds`), 16 shoppers check out
against gunicorn + PostgreSQL with the production settings while:

- 10% of completes are sent again with the same Idempotency-Key after they succeed (the
  answer must be replayed byte for byte);
- 5% are sent twice at the same moment with the same key;
- 5% use the `test` provider with `fail_after_authorize` (the authorization takes effect
  remotely and its answer is lost: a 503). Half of those shoppers retry with the same key,
  the other half vanish and leave the cart to `complete_stalled_checkouts`;
- one gunicorn worker is killed with SIGKILL every 30 s, so some requests die mid-way;
- an operator captures and refunds orders through the admin API (skipped, with a note,
  while that API does not exist).

Afterwards it runs `complete_stalled_checkouts` and `reconcile_payments` (each skipped with a
note if unknown), then checks the database directly and exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from bench import server
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

DATABASE = "payments_soak"
RESULTS_FILE = server.RESULTS / "soak.json"
ADMIN = "/api/admin"

RETRY_SHARE = 0.10  # completes sent again with the same key after success
DOUBLE_SHARE = 0.05  # completes sent twice concurrently
FAULT_SHARE = 0.05  # checkouts with the test provider and fail_after_authorize
COMES_BACK_SHARE = 0.5  # shoppers who retry after that 503 (the others vanish)
SETTLE_SHARE = 0.25  # orders the operator captures and refunds
REFUND_REPLAY_SHARE = 0.2  # refunds sent again with the same key

# How long a shopper keeps retrying one completion (409 while a killed request's lease
# lives, connection errors while a worker restarts) before giving up and vanishing.
PATIENCE_SECONDS = 15.0


# What happened, counted by every thread ---------------------------------------------------


@dataclass
class Tally:
    """Counters shared by the shopper and operator threads (under one lock)."""

    statuses: Counter[str] = field(default_factory=Counter)
    unexpected_5xx: list[str] = field(default_factory=list)
    unexpected_other: list[str] = field(default_factory=list)
    connection_errors: int = 0
    orders: int = 0
    abandoned: Counter[str] = field(default_factory=Counter)
    fault_503s: Counter[str] = field(default_factory=Counter)
    replays_checked: int = 0
    replay_mismatches: list[str] = field(default_factory=list)
    doubles: Counter[str] = field(default_factory=Counter)
    settled: int = 0
    refund_replays: int = 0
    settle_mismatches: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, reply: Reply, *, allowed_503: bool = False) -> None:
        with self.lock:
            self.statuses[f"{kind} {reply.status}"] += 1
            # The one 5xx a fault calls for: the provider's answer was lost (SPEC 5.3).
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


@dataclass(frozen=True)
class Scenario:
    provider_id: str
    fail_after_authorize: bool
    mode: str  # "once", "retry" (same key again after success) or "double" (concurrent)
    comes_back: bool  # after a 503, does the shopper retry?

    @classmethod
    def draw(cls, rng: random.Random) -> Scenario:
        fault = rng.random() < FAULT_SHARE
        roll = rng.random()
        mode = "once"
        if roll < RETRY_SHARE:
            mode = "retry"
        elif roll < RETRY_SHARE + DOUBLE_SHARE:
            mode = "double"
        return cls(
            provider_id="test" if fault else "manual",
            fail_after_authorize=fault,
            mode=mode,
            comes_back=rng.random() < COMES_BACK_SHARE,
        )


@dataclass
class Soak:
    """What every thread shares: where the server is, the tally, the operator's queue."""

    url: str
    tally: Tally
    rng_seed: int
    settle_queue: queue.Queue[tuple[str, int]] | None


# Shoppers ---------------------------------------------------------------------------------


def step(soak: Soak, kind: str, reply: Reply, *ok: int) -> Any:
    soak.tally.record(kind, reply)
    return expect(reply, kind, *ok)


def send_twice(main: Client, spare: Client, cart_id: str, key: str) -> list[Reply | None]:
    """The same completion on two connections at once (a double click)."""
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


def complete_once(main: Client, cart_id: str, key: str) -> list[Reply | None]:
    try:
        return [cart_complete(main, cart_id, key)]
    except CONNECTION_ERRORS:
        return [None]


def complete_until_final(
    soak: Soak, main: Client, spare: Client, cart_id: str, scenario: Scenario
) -> Reply | None:
    """Complete like a careful storefront: same key on every retry. None if it gave up."""
    key = uuid.uuid4().hex
    tally = soak.tally
    give_up_at = time.monotonic() + PATIENCE_SECONDS
    first = True
    while True:
        if first and scenario.mode == "double":
            replies = send_twice(main, spare, cart_id, key)
            tally.note("doubles", "/".join(str(r.status if r else "conn") for r in replies))
        else:
            replies = complete_once(main, cart_id, key)
        first = False
        answered = [r for r in replies if r is not None]
        tally.note("connection_errors", len(replies) - len(answered))
        for reply in answered:
            tally.record("complete", reply, allowed_503=scenario.fail_after_authorize)
            if reply.status == 503:
                tally.note("fault_503s", cart_id)
        success = next((r for r in answered if r.status == 200), None)
        if success is not None:
            return _check_order(soak, main, cart_id, key, success, scenario)
        statuses = {r.status for r in answered}
        if statuses - {409, 503}:
            reply = next(r for r in answered if r.status not in (409, 503))
            tally.note("unexpected_other", f"complete: {reply.status} {reply.body[:200]!r}")
            tally.note("abandoned", f"unexpected {reply.status}")
            return None
        if 503 in statuses and not scenario.comes_back:
            tally.note("abandoned", "vanished after 503 (left to complete_stalled_checkouts)")
            return None
        if time.monotonic() > give_up_at:
            tally.note("abandoned", f"gave up after {PATIENCE_SECONDS:g} s of 409/dropped")
            return None
        time.sleep(0.5 if 409 in statuses else 0.2)


def _check_order(
    soak: Soak, main: Client, cart_id: str, key: str, success: Reply, scenario: Scenario
) -> Reply | None:
    data = success.json()
    if data.get("type") != "order":
        soak.tally.note("unexpected_other", f"complete: 200 with a {data.get('type')!r}")
        return None
    soak.tally.note("orders", 1)
    if scenario.mode == "retry":
        _check_replay(soak, main, cart_id, key, success)
    return success


def _check_replay(soak: Soak, main: Client, cart_id: str, key: str, first: Reply) -> None:
    """A finished key answers again byte for byte, marked as replayed (SPEC 5.3)."""
    for _ in range(5):
        try:
            again = cart_complete(main, cart_id, key)
        except CONNECTION_ERRORS:
            soak.tally.note("connection_errors", 1)
            continue
        soak.tally.record("complete (replay)", again)
        soak.tally.note("replays_checked", 1)
        replayed = again.headers.get("idempotent-replayed") == "true"
        if again.status != 200 or again.body != first.body or not replayed:
            soak.tally.note("replay_mismatches", f"{cart_id}: {again.status} replayed={replayed}")
        return


def shop_once(
    soak: Soak, main: Client, spare: Client, catalog: Catalog, rng: random.Random
) -> None:
    scenario = Scenario.draw(rng)
    cart_id = step(soak, "create_cart", cart_create(main, catalog), 201)["id"]
    step(soak, "add_item", line_item_add(main, cart_id, catalog), 200)
    step(soak, "sessions", sessions_create(main, cart_id), 200)
    if scenario.fail_after_authorize:
        data = {"fail_after_authorize": True}
        step(soak, "session_data", session_data_update(main, cart_id, "test", data), 200)
    step(soak, "select", session_select(main, cart_id, scenario.provider_id), 200)
    success = complete_until_final(soak, main, spare, cart_id, scenario)
    if success is not None and soak.settle_queue is not None and rng.random() < SETTLE_SHARE:
        payment = success.json()["data"]["payments"][0]
        soak.settle_queue.put((payment["id"], payment["amount"]))


def shopper(soak: Soak, index: int, deadline: float) -> None:
    rng = random.Random(soak.rng_seed + index)
    main, spare = Client(soak.url), Client(soak.url)
    catalog: Catalog | None = None
    try:
        while time.monotonic() < deadline:
            try:
                catalog = catalog or catalog_fetch(main)
                shop_once(soak, main, spare, catalog, rng)
            except CONNECTION_ERRORS:
                # A step before `complete` died with its worker: the cart holds no
                # authorization, so the shopper simply starts a new one.
                soak.tally.note("connection_errors", 1)
                soak.tally.note("abandoned", "connection dropped before complete")
            except FlowError as error:
                soak.tally.note("unexpected_other", str(error))
    finally:
        main.close()
        spare.close()


# The operator: captures and refunds through the admin API ----------------------------------


def admin_post(soak: Soak, client: Client, kind: str, path: str, body: dict) -> Reply | None:
    """POST with one Idempotency-Key for every retry, like a careful script."""
    key = uuid.uuid4().hex
    give_up_at = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < give_up_at:
        try:
            reply = client.request("POST", path, body, headers={"Idempotency-Key": key})
        except CONNECTION_ERRORS:
            soak.tally.note("connection_errors", 1)
            time.sleep(0.2)
            continue
        soak.tally.record(kind, reply)
        if reply.status != 409:
            return reply
        time.sleep(0.5)
    return None


def settle(soak: Soak, client: Client, payment_id: str, amount: int, rng: random.Random) -> None:
    """Capture in full, refund half (sometimes twice with one key): money moves once."""
    base = f"{ADMIN}/payments/{payment_id}"
    captured = admin_post(soak, client, "admin capture", f"{base}/capture", {})
    if captured is None or captured.status != 200:
        status = captured.status if captured else "no answer"
        soak.tally.note("settle_mismatches", f"{payment_id}: capture {status}")
        return
    refund_body = {"amount": amount // 2, "reason": "other"}
    key = uuid.uuid4().hex
    sends = 2 if rng.random() < REFUND_REPLAY_SHARE else 1
    for _ in range(sends):
        try:
            reply = client.request("POST", f"{base}/refund", refund_body, {"Idempotency-Key": key})
        except CONNECTION_ERRORS:
            soak.tally.note("connection_errors", 1)
            continue
        soak.tally.record("admin refund", reply)
        if reply.status != 200:
            soak.tally.note("settle_mismatches", f"{payment_id}: refund {reply.status}")
    soak.tally.note("refund_replays", sends - 1)
    try:
        payment = client.request("GET", base).json()
    except CONNECTION_ERRORS:
        return
    if payment.get("amount_captured") != amount or payment.get("amount_refunded") not in (
        0,  # the refund's answers were all lost to killed workers: nothing moved
        amount // 2,
    ):
        soak.tally.note("settle_mismatches", f"{payment_id}: {payment}")
    soak.tally.note("settled", 1)


def operator(soak: Soak, token: str, stop: threading.Event) -> None:
    assert soak.settle_queue is not None
    rng = random.Random(soak.rng_seed - 1)
    client = Client(soak.url, headers={"Authorization": f"Token {token}"})
    try:
        while not (stop.is_set() and soak.settle_queue.empty()):
            try:
                payment_id, amount = soak.settle_queue.get(timeout=0.5)
            except queue.Empty:
                continue
            settle(soak, client, payment_id, amount, rng)
    finally:
        client.close()


def admin_token(env: dict[str, str]) -> str:
    output = server.manage(env, "drf_create_token", "operator").stdout
    match = re.search(r"token (\w+)", output)
    if match is None:
        raise RuntimeError(f"drf_create_token printed no token: {output!r}")
    return match.group(1)


def admin_available(url: str, token: str) -> tuple[bool, str]:
    """Whether the admin API is there yet (it is being built alongside)."""
    client = Client(url, headers={"Authorization": f"Token {token}"})
    try:
        root = client.request("GET", f"{ADMIN}/").status
        providers = client.request("GET", f"{ADMIN}/payment-providers").status
    finally:
        client.close()
    if root == 404 and providers == 404:
        return False, "/api/admin/ answers 404: captures and refunds skipped"
    if providers in (401, 403):
        return False, f"the admin API refused the operator's token ({providers}): skipped"
    return True, "captures and refunds run alongside"


# Faults: one worker killed every so often --------------------------------------------------


class WorkerKiller(threading.Thread):
    """SIGKILLs one gunicorn worker (a child of our master) every `every` seconds."""

    def __init__(self, gunicorn: server.Gunicorn, every: float, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.gunicorn = gunicorn
        self.every = every
        self.rng = rng
        self.kills: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            workers = self.gunicorn.worker_pids()
            if workers:
                victim = self.rng.choice(workers)
                try:
                    os.kill(victim, signal.SIGKILL)
                    self.kills.append(victim)
                except ProcessLookupError:
                    pass  # it exited on its own meanwhile


# After the run: commands and database checks ------------------------------------------------


def wait_for_leases(dsn: str, lease_seconds: int) -> int:
    """Wait until no Idempotency-Key is still leased by a request that was killed."""
    deadline = time.monotonic() + lease_seconds + 5
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM payments_idempotencykey"
                " WHERE locked_at > now() - make_interval(secs => %s)",
                (lease_seconds,),
            ).fetchone()
            live = int(row[0]) if row else 0
            if live == 0 or time.monotonic() > deadline:
                return live
            time.sleep(1)


# The server is stopped and no lease is live when these run, so no checkout is in flight:
# every unfinished one is stalled, however recent (the command's default `--older-than 60`
# would leave the last minute's vanished shoppers to its next run).
AFTER_RUN_COMMANDS = (
    ("complete_stalled_checkouts", "--older-than", "0"),
    ("reconcile_payments",),
)


def run_command(env: dict[str, str], name: str, *args: str) -> dict[str, Any]:
    process = subprocess.run(
        [sys.executable, "manage.py", name, *args],
        cwd=server.ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    output = (process.stdout + process.stderr).strip()
    if process.returncode != 0 and f"Unknown command: '{name}'" in output:
        return {"command": name, "status": "skip", "output": "unknown command (not built yet)"}
    status = "pass" if process.returncode == 0 else "fail"
    return {
        "command": name,
        "status": status,
        "exit": process.returncode,
        "output": output[-20000:],
    }


CHECK_QUERIES = {
    "zero carts with more than one order": (
        "SELECT cart_id, count(*) FROM checkout_order GROUP BY cart_id HAVING count(*) > 1"
    ),
    "zero carts with more than one live payment": (
        "SELECT cart_id, count(*) FROM payments_payment WHERE canceled_at IS NULL"
        " GROUP BY cart_id HAVING count(*) > 1"
    ),
    "zero sessions with more than one remote authorization": (
        "SELECT session_id, count(*) FROM test_provider_ledgerentry"
        " WHERE operation = 'authorize' GROUP BY session_id HAVING count(*) > 1"
    ),
    # An authorization is accounted for when its Payment has an order or was canceled, or
    # when it was voided at the provider (a released session) before any Payment existed.
    "every remote authorization has an order or a cancel": (
        "SELECT a.reference, a.session_id FROM test_provider_ledgerentry a"
        " WHERE a.operation = 'authorize'"
        " AND NOT EXISTS (SELECT 1 FROM payments_payment p"
        "   WHERE p.data->>'authorization' = a.reference"
        "   AND (p.order_id IS NOT NULL OR p.canceled_at IS NOT NULL))"
        " AND NOT EXISTS (SELECT 1 FROM test_provider_ledgerentry c"
        "   WHERE c.operation = 'cancel' AND c.authorization = a.reference)"
    ),
    "every payment (any provider) has an order or is canceled": (
        "SELECT id, cart_id FROM payments_payment WHERE order_id IS NULL AND canceled_at IS NULL"
    ),
}


def database_checks(dsn: str) -> list[dict[str, Any]]:
    checks = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, query in CHECK_QUERIES.items():
            rows = conn.execute(query).fetchall()  # type: ignore[arg-type]
            checks.append(check(name, not rows, f"{len(rows)} offending: {rows[:5]}"))
    return checks


def database_totals(dsn: str) -> dict[str, int]:
    queries = {
        "carts": "SELECT count(*) FROM checkout_cart",
        "orders": "SELECT count(*) FROM checkout_order",
        "payments": "SELECT count(*) FROM payments_payment",
        "payments canceled": "SELECT count(*) FROM payments_payment WHERE canceled_at IS NOT NULL",
        "remote authorizations (test)": (
            "SELECT count(*) FROM test_provider_ledgerentry WHERE operation = 'authorize'"
        ),
        "carts authorized, no order": (
            "SELECT count(*) FROM checkout_cart"
            " WHERE payment_authorized_at IS NOT NULL AND completed_at IS NULL"
        ),
    }
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {
            name: int(conn.execute(q).fetchone()[0])  # type: ignore[arg-type,index]
            for name, q in queries.items()
        }


def check(name: str, passed: bool | None, detail: str = "", skipped: str = "") -> dict[str, Any]:
    """`passed` None means the check could not run; `skipped` says why."""
    if passed is None:
        return {"check": name, "status": "skip", "detail": skipped}
    status = "pass" if passed else "fail"
    return {"check": name, "status": status, "detail": "" if passed else detail}


def command_check(result: dict[str, Any]) -> dict[str, Any]:
    name = f"{result['command']} clean"
    if result["status"] == "skip":
        return check(name, None, skipped=result["output"])
    return check(name, result["status"] == "pass", result["output"][-300:])


def traffic_checks(tally: Tally, admin_on: bool) -> list[dict[str, Any]]:
    repeated_503 = [cart for cart, n in tally.fault_503s.items() if n > 1]
    return [
        check("checkouts happened", tally.orders > 0, "no order at all"),
        check(
            "zero 5xx other than the faults' 503s",
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
            "captures and refunds move money once",
            (not tally.settle_mismatches) if admin_on else None,
            f"{tally.settle_mismatches[:5]}",
            skipped="no admin API yet",
        ),
    ]


# Report ------------------------------------------------------------------------------------


def print_report(report: dict[str, Any]) -> None:
    print("\nTraffic")
    for name, value in report["traffic"].items():
        print(f"  {name}: {value}")
    print("\nDatabase")
    for name, value in report["database"].items():
        print(f"  {name}: {value}")
    print("\nCommands")
    for result in report["commands"]:
        lines = result["output"].splitlines() or [""]
        more = f" (+{len(lines) - 1} lines, see the JSON)" if len(lines) > 1 else ""
        print(f"  {result['status'].upper():<4}  {result['command']}: {lines[0][:200]}{more}")
    print("\nChecks")
    for result in report["checks"]:
        detail = f"  ({result['detail']})" if result["detail"] else ""
        print(f"  {result['status'].upper():<4}  {result['check']}{detail}")


def traffic_summary(tally: Tally, run: Run, admin_note: str) -> dict[str, Any]:
    seconds = run.shopping_seconds
    return {
        # Checkouts in flight at the deadline run to their end (at most PATIENCE_SECONDS).
        "shopping seconds": round(seconds, 1),
        "operator drain seconds": round(run.drain_seconds, 1),
        "orders": tally.orders,
        "orders per second": round(tally.orders / seconds, 2) if seconds else 0,
        "workers killed": run.kills,
        "connection errors (killed workers)": tally.connection_errors,
        "statuses": dict(sorted(tally.statuses.items())),
        "abandoned carts": dict(tally.abandoned),
        "fault 503s": sum(tally.fault_503s.values()),
        "double sends (statuses)": dict(tally.doubles),
        "replays checked": tally.replays_checked,
        "admin": admin_note,
        "payments captured and refunded": tally.settled,
        "refunds sent twice with one key": tally.refund_replays,
        "unexpected answers (not 5xx)": tally.unexpected_other[:10],
    }


# Main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 300)))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--kill-every", type=float, default=30.0, help="seconds between kills")
    parser.add_argument("--workers", type=int, default=server.WORKERS)
    parser.add_argument("--threads", type=int, default=server.THREADS)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Run:
    shopping_seconds: float  # until the last shopper finished its last checkout
    drain_seconds: float  # then, until the operator settled what was still queued
    kills: int


def drive(soak: Soak, gunicorn: server.Gunicorn, args: argparse.Namespace, token: str) -> Run:
    """The loaded phase: shoppers, the operator and the worker killer."""
    killer = WorkerKiller(gunicorn, args.kill_every, random.Random(args.seed))
    operator_stop = threading.Event()
    helpers: list[threading.Thread] = [killer]
    if soak.settle_queue is not None:
        helpers.append(threading.Thread(target=operator, args=(soak, token, operator_stop)))
    for helper in helpers:
        helper.start()
    began = time.monotonic()
    deadline = began + args.seconds
    shoppers = [
        threading.Thread(target=shopper, args=(soak, i, deadline)) for i in range(args.clients)
    ]
    for thread in shoppers:
        thread.start()
    for thread in shoppers:
        thread.join()
    shopped = time.monotonic()
    killer.stop.set()
    operator_stop.set()
    for helper in helpers:
        helper.join()
    return Run(shopped - began, time.monotonic() - shopped, len(killer.kills))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"Preparing a fresh database {DATABASE} (migrate, register_providers, seed_demo)")
    dsn = server.database_recreate(DATABASE)
    env = server.server_env(dsn, settings="config.settings.production")
    server.project_prepare(env)
    token = admin_token(env)
    options = server.GunicornOptions(args.workers, args.threads)
    started = datetime.now(UTC)
    with server.Gunicorn(env, options, "soak-gunicorn.log") as gunicorn:
        admin_on, admin_note = admin_available(gunicorn.url, token)
        print(f"gunicorn {options.args()} on {gunicorn.url}")
        print(f"Admin API: {admin_note}")
        print(
            f"{args.clients} shoppers for {args.seconds:g} s, a worker SIGKILLed every"
            f" {args.kill_every:g} s (seed {args.seed})",
            flush=True,
        )
        soak = Soak(gunicorn.url, Tally(), args.seed, queue.Queue() if admin_on else None)
        run = drive(soak, gunicorn, args, token)

    lease = int(env.get("IDEMPOTENCY_LOCK_LEASE_SECONDS", 60))
    print(f"Waiting (at most {lease + 5} s) for leases held by killed requests to expire")
    still_leased = wait_for_leases(dsn, lease)
    commands = [run_command(env, *command) for command in AFTER_RUN_COMMANDS]
    checks = traffic_checks(soak.tally, admin_on)
    checks.append(check("no Idempotency-Key still leased", still_leased == 0, f"{still_leased}"))
    checks += [command_check(c) for c in commands]
    checks += database_checks(dsn)
    report = {
        "started_at": started.isoformat(),
        "machine": server.machine(),
        "gunicorn": options.args(),
        "traffic": traffic_summary(soak.tally, run, admin_note),
        "database": database_totals(dsn),
        "commands": commands,
        "checks": checks,
        "unexpected_5xx": soak.tally.unexpected_5xx[:50],
    }
    print_report(report)
    RESULTS_FILE.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nResults written to {RESULTS_FILE}; server log {gunicorn.log_path}")
    failed = [c["check"] for c in checks if c["status"] == "fail"]
    print(f"\nSOAK {'FAILED: ' + '; '.join(failed) if failed else 'CLEAN'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
