"""`make bench-peer`: our checkout and Medusa v1's on this machine in one sitting, as ratios.

First Medusa alone (its own scripts, `bench/medusa.py`): a fresh database, its server, its
`bench.py seq` for the per-step medians at one client and `bench.py throughput` at each level,
the server stopped, then `sqlcount.sh` for its SQL statements per step. Then ours alone
(`bench.checkout.measure`, a fresh `payments_bench_peer` database, the same levels and
seconds). Never both servers under load at once. Prints one table against issue 15's targets
and writes bench/results/peer.json.

A benchmark, not a test: it exits 0 whatever the figures, unless the run itself broke.

    python -m bench.peer [--clients 1,4,16] [--seconds 10] [--skip-medusa-setup]
                         [--skip-medusa-sql] [--quiet-wait 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench import checkout, medusa, server

DATABASE = "payments_bench_peer"  # not `make bench`'s, which may run meanwhile
RESULTS_FILE = server.RESULTS / "peer.json"

# The storefront steps of both flows, in Medusa's order: (what, ours, Medusa's). Ours sets
# the email when creating the cart and has no shipping, so it has five steps to Medusa's seven.
STEPS = (
    ("create cart", "create_cart", "create_cart"),
    ("add line item", "add_item", "add_line_item"),
    ("update cart (email, addresses)", None, "update_cart"),
    ("add shipping method", None, "add_shipping_method"),
    ("create payment sessions", "sessions", "create_payment_sessions"),
    ("select payment session", "select", "select_payment_session"),
    ("complete", "complete", "complete"),
)


@dataclass(frozen=True)
class Goal:
    """Issue 15's target for one row: on the ratio ours / Medusa, or on our own figure."""

    limit: float
    text: str
    higher_is_better: bool = False
    on_ratio: bool = True

    def check(self, ours: float | None, ratio: float | None) -> bool | None:
        value = ratio if self.on_ratio else ours
        if value is None:
            return None
        return value >= self.limit if self.higher_is_better else value <= self.limit


GOALS = {
    "complete_latency": Goal(1 / 6, "<= 1/6"),
    "throughput": Goal(10, ">= 10x", higher_is_better=True),
    "cpu": Goal(1 / 8, "<= 1/8"),
    "complete_sql": Goal(20, "ours <= 20", on_ratio=False),
    "flow_sql": Goal(45, "ours <= 45", on_ratio=False),
}


@dataclass(frozen=True)
class Row:
    metric: str
    ours: float | None
    medusa: float | None
    goal: Goal | None = None

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.medusa:
            return None
        return self.ours / self.medusa

    @property
    def passed(self) -> bool | None:
        return self.goal.check(self.ours, self.ratio) if self.goal else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "ours": self.ours,
            "medusa": self.medusa,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": self.goal.text if self.goal else None,
            "pass": self.passed,
        }


# Both sides in one shape -------------------------------------------------------------------
#
# side = {"steps_ms": {step: median at 1 client}, "checkout_ms": ..., "sql": {step: n},
#         "flow_sql": n, "levels": {clients: {...}}, "peak_rss_mib": n}


# CPU per checkout, per level: (name in a side, name in bench.checkout's cpu_cores).
CPU_PARTS = (("server", "server"), ("postgres", "postgres"), ("client", "load generator"))


def ours_side(levels: list[dict[str, Any]]) -> dict[str, Any]:
    """From bench.checkout's level summaries. SQL: the most any request of a step issued."""
    one = next((lv for lv in levels if lv["clients"] == 1), None)

    def most(counts: list[int | None]) -> int | None:
        known = [c for c in counts if c is not None]
        return max(known) if known else None

    return {
        "steps_ms": {
            ours: one["steps"][ours]["median_ms"] if one else None for _, ours, _ in STEPS if ours
        },
        "checkout_ms": one["flow"]["median_ms"] if one else None,
        "sql": {
            ours: most([lv["steps"][ours]["queries"]["max"] for lv in levels])
            for _, ours, _ in STEPS
            if ours
        },
        "flow_sql": most([lv["flow"]["queries"]["max"] for lv in levels]),
        "levels": {
            lv["clients"]: {
                "checkouts_per_s": lv["checkouts_per_second"],
                "checkout_ms": lv["flow"]["median_ms"],
                **{
                    f"{name}_cpu_ms": checkout.per_checkout_ms(
                        lv["cpu_cores"][measured], lv["seconds"], lv["checkouts"]
                    )
                    for name, measured in CPU_PARTS
                },
                "other_cores": lv["cpu_cores"]["other processes"],
                "errors": lv["errors"],
            }
            for lv in levels
        },
        "peak_rss_mib": max((lv["peak_rss_mb"] for lv in levels), default=None),
    }


def medusa_side(
    seq: dict[str, Any], throughput: list[dict[str, Any]], sql: dict[str, Any] | None
) -> dict[str, Any]:
    """From Medusa's bench.py (seq, throughput --pid) and sqlcount.py. SQL: the median of the
    checkouts sqlcount counted (it attributes statements by time, so it varies by a few)."""

    def counted(runs: list[int] | None) -> float | None:
        return statistics.median(runs) if runs else None

    sql = sql or {}
    return {
        "steps_ms": {theirs: seq["steps_ms"][theirs]["median"] for _, _, theirs in STEPS},
        "checkout_ms": seq["steps_ms"]["total"]["median"],
        "sql": {
            theirs: counted(sql.get(theirs, {}).get("statements_per_run")) for _, _, theirs in STEPS
        },
        "flow_sql": counted(sql.get("checkout_7_steps_total_per_run")),
        "levels": {
            lv["clients"]: {
                "checkouts_per_s": lv["checkouts_per_s"],
                "checkout_ms": lv["checkout_ms_median"],
                # The server's from bench.py, over the level as ours; the others over the
                # whole call of bench.py (bench.medusa.level_measure).
                "server_cpu_ms": checkout.per_checkout_ms(
                    lv["server_cpu_pct_of_one_core"] / 100, lv["seconds"], lv["checkouts"]
                ),
                "postgres_cpu_ms": checkout.per_checkout_ms(
                    lv["cpu_seconds"]["postgres"], 1.0, lv["checkouts"]
                ),
                "client_cpu_ms": checkout.per_checkout_ms(
                    lv["cpu_seconds"]["load generator"], 1.0, lv["checkouts"]
                ),
                "other_cores": lv["other_cores"],
                "errors": lv["errors"],
            }
            for lv in throughput
        },
        # VmHWM: the Node process's peak since it started, read after each level.
        "peak_rss_mib": max((lv["server_mem_mib"]["VmHWM"] for lv in throughput), default=None),
    }


def clients_text(clients: int | None) -> str:
    return f"{clients} client" if clients == 1 else f"{clients} clients"


def rows(ours: dict[str, Any], theirs: dict[str, Any]) -> list[Row]:
    """The table: each figure of both sides, and issue 15's targets where it sets one. The
    CPU target is read at the highest level, where the server is busiest."""
    levels = sorted(set(ours["levels"]) | set(theirs["levels"]))
    top = max(levels, default=None)

    def level(side: dict[str, Any], clients: int | None, key: str) -> float | None:
        return side["levels"].get(clients, {}).get(key)

    table = [
        Row(
            "complete median, 1 client (ms)",
            ours["steps_ms"]["complete"],
            theirs["steps_ms"]["complete"],
            GOALS["complete_latency"],
        ),
        Row("whole checkout median, 1 client (ms)", ours["checkout_ms"], theirs["checkout_ms"]),
    ]
    for clients in levels:
        table.append(
            Row(
                f"checkouts/s, {clients_text(clients)}",
                level(ours, clients, "checkouts_per_s"),
                level(theirs, clients, "checkouts_per_s"),
                GOALS["throughput"] if clients == 16 else None,
            )
        )
    table += [
        Row(
            f"server CPU per checkout, {clients_text(top)} (ms)",
            level(ours, top, "server_cpu_ms"),
            level(theirs, top, "server_cpu_ms"),
            GOALS["cpu"],
        ),
        Row(
            "SQL statements, complete",
            ours["sql"]["complete"],
            theirs["sql"]["complete"],
            GOALS["complete_sql"],
        ),
        Row("SQL statements, whole flow", ours["flow_sql"], theirs["flow_sql"], GOALS["flow_sql"]),
        Row("server peak RSS (MiB)", ours["peak_rss_mib"], theirs["peak_rss_mib"]),
    ]
    return table


# Report ------------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    """Whole numbers as such; else three significant figures below 10, one decimal below
    1,000."""
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) < 1000:
        return str(int(value))
    if abs(value) < 10:
        return f"{value:.3g}"
    return f"{value:.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def verdict(passed: bool | None) -> str:
    return "" if passed is None else "PASS" if passed else "FAIL"


# Cores of other work on the machine above which a side's figures are flagged.
QUIET_CORES = 0.25


def print_table(table: list[Row]) -> None:
    header = f"{'metric':<42} {'ours':>8} {'Medusa':>8} {'ratio':>7}  {'target':<11} pass"
    print(header)
    print("-" * len(header))
    for row in table:
        target = row.goal.text if row.goal else ""
        print(
            f"{row.metric:<42} {fmt(row.ours):>8} {fmt(row.medusa):>8} {fmt(row.ratio):>7}"
            f"  {target:<11} {verdict(row.passed)}"
        )
    print("ratio = ours / Medusa; SQL targets are on our own figure (Medusa's for context).")


def print_steps(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    header = f"{'step, 1 client':<32} {'ours ms':>8} {'Medusa ms':>10} {'ours SQL':>9}"
    header += f" {'Medusa SQL':>11}"
    print(header)
    print("-" * len(header))
    for label, our_step, their_step in STEPS:
        print(
            f"{label:<32}"
            f" {fmt(ours['steps_ms'][our_step]) if our_step else '(none)':>8}"
            f" {fmt(theirs['steps_ms'][their_step]):>10}"
            f" {fmt(ours['sql'][our_step]) if our_step else '(none)':>9}"
            f" {fmt(theirs['sql'][their_step]):>11}"
        )
    print(
        f"{'whole checkout':<32} {fmt(ours['checkout_ms']):>8} {fmt(theirs['checkout_ms']):>10}"
        f" {fmt(ours['flow_sql']):>9} {fmt(theirs['flow_sql']):>11}"
    )


def print_levels(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    print(f"{'':>7} {'':<7} {'':>11} {'':>10}  {'CPU ms per checkout':^26}  {'other work':>10}")
    header = (
        f"{'clients':>7} {'side':<7} {'checkouts/s':>11} {'median ms':>10}"
        f"  {'server':>8} {'postgres':>8} {'client':>8}  {'cores':>10} {'errors':>6}"
    )
    print(header)
    print("-" * len(header))
    for clients in sorted(set(ours["levels"]) | set(theirs["levels"])):
        for name, side in (("ours", ours), ("Medusa", theirs)):
            lv = side["levels"].get(clients)
            if lv is None:
                continue
            print(
                f"{clients:>7} {name:<7} {fmt(lv['checkouts_per_s']):>11}"
                f" {fmt(lv['checkout_ms']):>10}  {fmt(lv['server_cpu_ms']):>8}"
                f" {fmt(lv['postgres_cpu_ms']):>8} {fmt(lv['client_cpu_ms']):>8}"
                f"  {fmt(lv['other_cores']):>10} {lv['errors']:>6}"
            )


def disturbed(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Levels during which other work on the machine took more than QUIET_CORES: the two
    sides did not have the same machine, and a ratio of their figures is not a fair one."""
    return [
        f"{name} at {clients_text(clients)}: {lv['other_cores']:g} cores"
        for name, side in (("ours", ours), ("Medusa", theirs))
        for clients, lv in sorted(side["levels"].items())
        if (lv["other_cores"] or 0) > QUIET_CORES
    ]


# The run -----------------------------------------------------------------------------------


def other_work(side: str, wait: float, sample: float = 2.0) -> float:
    """Cores busy on the machine while neither server runs: other work that will compete with
    this side's run (`side` is "Medusa's" or "our"). Waits up to `wait` seconds for it to
    end. The sides run minutes apart, so a difference here makes their ratio unfair: it is
    printed and kept in peer.json."""
    machine = server.MachineCpu()
    deadline = time.monotonic() + wait
    waited = False
    while True:
        machine.begin()
        time.sleep(sample)
        cores = round(machine.end(), 2)
        if cores <= QUIET_CORES or time.monotonic() >= deadline:
            break
        if not waited:
            print(f"  {cores:g} cores busy with other work: waiting up to {wait:g} s", flush=True)
            waited = True
    print(f"  machine busy before {side} run: {cores:g} cores")
    if cores > QUIET_CORES:
        print(f"  WARNING: other work is running; {side} figures will be low", file=sys.stderr)
    return cores


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,4,16", help="comma-separated levels")
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("BENCH_SECONDS", 10)),
        help="duration of each level, and of Medusa's sequential run (env BENCH_SECONDS)",
    )
    parser.add_argument(
        "--skip-medusa-setup",
        action="store_true",
        help="use bench/.medusa and its database as they are (no copy, npm ci or re-seed)",
    )
    parser.add_argument(
        "--skip-medusa-sql",
        action="store_true",
        help="do not count Medusa's statements (sqlcount.sh, ~30 s): show the peer's stored ones",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="seconds to wait, before each side, for other work on the machine to end",
    )
    return parser.parse_args(argv)


def run_medusa(args: argparse.Namespace, levels: list[int]) -> dict[str, Any]:
    source = medusa.peer_dir()
    timings: dict[str, float] = {}
    started = time.monotonic()
    if not args.skip_medusa_setup:
        print(f"Medusa: preparing {medusa.SCRATCH} from {source}")
        medusa.prepare(source)
    timings["setup_s"] = round(time.monotonic() - started, 1)

    started = time.monotonic()
    busy_before = other_work("Medusa's", args.quiet_wait)
    measured = medusa.bench(levels=levels, seconds=args.seconds)
    timings["bench_s"] = round(time.monotonic() - started, 1)

    started = time.monotonic()
    sql, sql_source = None, "not counted"
    if not args.skip_medusa_sql:
        print("Medusa: SQL statements per step (sqlcount.sh, log_statement=all) ...")
        try:
            sql, sql_source = medusa.sql_counts(), "sqlcount.sh, this run"
        except medusa.MedusaError as error:
            print(f"  WARNING: {error}", file=sys.stderr)
    if sql is None:
        sql = medusa.stored_sql_counts(source)
        sql_source = f"stored in {source / 'results'}" if sql else sql_source
    timings["sql_s"] = round(time.monotonic() - started, 1)
    return {
        **measured,
        "sql": sql,
        "sql_source": sql_source,
        "durations": timings,
        "machine_busy_before_cores": busy_before,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    levels = [int(n) for n in args.clients.split(",") if n.strip()]
    started_at = datetime.now(UTC)
    try:
        theirs_raw = run_medusa(args, levels)
    except (medusa.MedusaError, subprocess.SubprocessError, OSError, ValueError) as error:
        print(f"Could not measure Medusa: {error}", file=sys.stderr)
        return 1

    started = time.monotonic()
    print(f"Ours: {', '.join(map(str, levels))} clients for {args.seconds:g} s each")
    options = server.GunicornOptions()
    busy_before = other_work("our", args.quiet_wait)
    try:
        ours_raw = checkout.measure(
            database=DATABASE,
            levels=levels,
            seconds=args.seconds,
            warmup=2.0,
            options=options,
            log_name="peer-gunicorn.log",
        )
    except subprocess.CalledProcessError as error:
        print(f"Could not prepare the project:\n{error.stdout}\n{error.stderr}", file=sys.stderr)
        return 1
    ours_seconds = round(time.monotonic() - started, 1)

    ours = ours_side(ours_raw)
    theirs = medusa_side(theirs_raw["seq"], theirs_raw["levels"], theirs_raw["sql"])
    table = rows(ours, theirs)
    print()
    print_table(table)
    print()
    print_steps(ours, theirs)
    print(f"Medusa's SQL: {theirs_raw['sql_source']}. Ours: X-Query-Count, the most seen.")
    print()
    print_levels(ours, theirs)
    print(
        f"Machine busy before each side's run (other work): ours {busy_before:g} cores,"
        f" Medusa {theirs_raw['machine_busy_before_cores']:g} cores."
    )
    noisy = disturbed(ours, theirs)
    if noisy:
        print("WARNING: other work competed for the CPU, so the ratios are not fair ones:")
        print("  " + "; ".join(noisy) + ". Run again on a quiet machine.")

    report = {
        "started_at": started_at.isoformat(),
        "machine": {**server.machine(), **checkout.versions()},
        "seconds_per_level": args.seconds,
        "clients": levels,
        "table": [row.as_dict() for row in table],
        "disturbed_by_other_work": noisy,
        "ours": {
            **ours,
            "gunicorn": options.args(),
            "raw": ours_raw,
            "machine_busy_before_cores": busy_before,
        },
        # The side's figures as compared, then what its bench printed (`raw`).
        "medusa": {**theirs, "raw": theirs_raw},
        "durations_s": {"medusa": theirs_raw["durations"], "ours": ours_seconds},
    }
    RESULTS_FILE.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nResults written to {RESULTS_FILE}")
    measured = any(lv["checkouts"] for lv in ours_raw) and any(
        lv["checkouts"] for lv in theirs_raw["levels"]
    )
    return 0 if measured else 1


if __name__ == "__main__":
    sys.exit(main())
