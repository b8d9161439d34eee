"""`make bench`: the storefront checkout under 1, 4 and 16 concurrent clients.

Starts the project as production would (gunicorn, PostgreSQL, production settings plus a
query-counting middleware), seeds the demo store, drives the five-step checkout over
keep-alive HTTP for a bounded time per concurrency level, prints a table and compares it
with the targets of issue 7. Results go to bench/results/checkout.json.

A benchmark, not a test: it exits 0 whatever the figures, unless the run itself broke.

    python -m bench.checkout [--clients 1,4,16] [--seconds 10] [--workers 3] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench import server
from bench.flow import STEPS, LevelResult, run_clients

DATABASE = "payments_bench"
RESULTS_FILE = server.RESULTS / "checkout.json"
# Cores used by processes other than the server, PostgreSQL and the load generator above
# which a level's figures are flagged as disturbed.
OTHER_CPU_WARNING = 0.25


@dataclass(frozen=True)
class Target:
    name: str
    limit: float
    unit: str
    higher_is_better: bool = False

    def check(self, value: float | None) -> dict[str, Any]:
        if value is None:
            passed = False
        elif self.higher_is_better:
            passed = value >= self.limit
        else:
            passed = value <= self.limit
        return {"target": self.name, "value": value, "limit": self.limit, "pass": passed}


# Issue 7's targets (Medusa v1.20.10 on the same kind of machine: 129 / 350 statements,
# 5.4 checkouts/s at 16 clients, complete 95 ms median with one client).
TARGETS = {
    "complete_queries": Target("complete: SQL statements (max)", 30, ""),
    "flow_queries": Target("whole flow: SQL statements (max)", 80, ""),
    "throughput": Target("checkouts/s with 16 clients", 27, "/s", higher_is_better=True),
    "complete_latency": Target("complete median with 1 client", 30, "ms"),
    "memory": Target("server peak RSS, master + workers", 400, "MB"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,4,16", help="comma-separated levels")
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("BENCH_SECONDS", 10)),
        help="duration of each level (env BENCH_SECONDS; default 10)",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--workers", type=int, default=server.WORKERS)
    parser.add_argument("--threads", type=int, default=server.THREADS)
    parser.add_argument("--no-preload", action="store_true", help="gunicorn without --preload")
    parser.add_argument(
        "--sql-log", action="store_true", help="log every statement to bench/results/sql.jsonl"
    )
    return parser.parse_args(argv)


class LevelMeters:
    """Memory and CPU around one level. Where the CPU goes tells what to tune: Python in
    the workers, SQL in PostgreSQL, or the load generator (it shares the same cores)."""

    def __init__(
        self, gunicorn: server.Gunicorn, sampler: server.MemorySampler, database: str
    ) -> None:
        self.sampler = sampler
        self.cpu = {
            "server": server.CpuMeter(gunicorn.pids),
            "postgres": server.CpuMeter(lambda: server.postgres_backend_pids(database)),
        }
        self.machine = server.MachineCpu()
        self.client_cpu = 0.0

    def begin(self) -> None:
        self.sampler.reset()
        for meter in self.cpu.values():
            meter.begin()
        self.machine.begin()
        self.client_cpu = time.process_time()

    def end(self, seconds: float) -> dict[str, Any]:
        cores = {name: meter.end() / seconds for name, meter in self.cpu.items()}
        cores["load generator"] = (time.process_time() - self.client_cpu) / seconds
        # On a shared machine, CPU taken by other processes lowers every figure: say so.
        cores["other processes"] = max(0.0, self.machine.end() - sum(cores.values()))
        rss, pss = self.sampler.reset()
        return {
            "peak_rss_mb": round(rss / 1024, 1),
            "peak_pss_mb": round(pss / 1024, 1),
            "cpu_cores": {name: round(value, 2) for name, value in cores.items()},
        }


def run_levels(
    gunicorn: server.Gunicorn,
    sampler: server.MemorySampler,
    levels: list[int],
    seconds: float,
    database: str = DATABASE,
) -> list[dict[str, Any]]:
    meters = LevelMeters(gunicorn, sampler, database)
    summaries = []
    for clients in levels:
        print(f"  {clients} client(s) for {seconds:g} s ...", flush=True)
        meters.begin()
        result: LevelResult = run_clients(gunicorn.url, clients=clients, seconds=seconds)
        summaries.append({**result.summary(), **meters.end(result.seconds)})
    return summaries


# Report ------------------------------------------------------------------------------------


def fmt(value: Any, width: int) -> str:
    text = "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
    return text.rjust(width)


def queries_text(queries: dict[str, Any]) -> str:
    """`12` for a fixed count, `12 (11-14)` when it varied between requests."""
    if queries["median"] is None:
        return "-"
    if queries["min"] == queries["max"]:
        return str(queries["min"])
    return f"{queries['median']:g} ({queries['min']}-{queries['max']})"


def print_table(levels: list[dict[str, Any]]) -> None:
    header = (
        f"{'clients':>7} {'step':<12} {'requests':>8} {'median ms':>10} {'p95 ms':>8}  SQL/request"
    )
    print(header)
    print("-" * len(header))
    for level in levels:
        for step in STEPS:
            row = level["steps"][step]
            print(
                f"{level['clients']:>7} {step:<12} {row['requests']:>8}"
                f" {fmt(row['median_ms'], 10)} {fmt(row['p95_ms'], 8)}"
                f"  {queries_text(row['queries'])}"
            )
        flow = level["flow"]
        print(
            f"{level['clients']:>7} {'whole flow':<12} {level['checkouts']:>8}"
            f" {fmt(flow['median_ms'], 10)} {fmt(flow['p95_ms'], 8)}"
            f"  {queries_text(flow['queries'])}"
        )
        print(
            f"{'':>7} => {level['checkouts_per_second']:g} checkouts/s, {level['errors']} errors,"
            f" peak RSS {level['peak_rss_mb']:g} MB (PSS {level['peak_pss_mb']:g} MB)"
        )
        cpu = ", ".join(f"{name} {cores:g}" for name, cores in level["cpu_cores"].items())
        print(f"{'':>7}    CPU cores used: {cpu}")
        if level["cpu_cores"]["other processes"] > OTHER_CPU_WARNING:
            print(f"{'':>7}    WARNING: other processes competed for the CPU; figures are low")
        for error in level["error_samples"]:
            print(f"{'':>10} error: {error}")
        print()


def evaluate(levels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target against the level it is about; a level not run is a FAIL (no figure)."""
    by_clients = {level["clients"]: level for level in levels}
    complete_max = [lv["steps"]["complete"]["queries"]["max"] for lv in levels]
    flow_max = [lv["flow"]["queries"]["max"] for lv in levels]
    known = [v for v in complete_max if v is not None]
    known_flow = [v for v in flow_max if v is not None]
    return [
        TARGETS["complete_queries"].check(max(known) if known else None),
        TARGETS["flow_queries"].check(max(known_flow) if known_flow else None),
        TARGETS["throughput"].check(by_clients.get(16, {}).get("checkouts_per_second")),
        TARGETS["complete_latency"].check(
            by_clients.get(1, {}).get("steps", {}).get("complete", {}).get("median_ms")
        ),
        TARGETS["memory"].check(max((lv["peak_rss_mb"] for lv in levels), default=None)),
    ]


def print_targets(results: list[dict[str, Any]]) -> None:
    for result in results:
        verdict = "PASS" if result["pass"] else "FAIL"
        value = fmt(result["value"], 1).strip()
        print(f"  {verdict}  {result['target']}: {value} (target {result['limit']:g})")


def versions() -> dict[str, str]:
    import django
    import gunicorn

    return {"django": django.__version__, "gunicorn": gunicorn.__version__}


# Main --------------------------------------------------------------------------------------


def measure(
    *,
    database: str,
    levels: list[int],
    seconds: float,
    warmup: float,
    options: server.GunicornOptions,
    env_extra: dict[str, str] | None = None,
    log_name: str = "bench-gunicorn.log",
) -> list[dict[str, Any]]:
    """A fresh `database`, the project under gunicorn, a warm-up, then each level's summary.
    Raises CalledProcessError when the project cannot be prepared."""
    print(
        f"Preparing a fresh database {database} (migrate, register_providers, seed_demo, "
        "the bench's region)"
    )
    env = server.server_env(server.database_recreate(database), settings="bench.settings")
    env.update(env_extra or {})
    server.project_prepare(env)
    server.manage(env, "shell", "--command", server.BENCH_REGION_SEED)
    with server.Gunicorn(env, options, log_name) as gunicorn:
        print(f"gunicorn {options.args()} on {gunicorn.url}")
        with server.MemorySampler(gunicorn) as sampler:
            if warmup:
                # Every worker opens its pool and warms its caches before we measure.
                run_clients(gunicorn.url, clients=max(levels), seconds=warmup)
                time.sleep(0.5)
            return run_levels(gunicorn, sampler, levels, seconds, database)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    levels = [int(n) for n in args.clients.split(",") if n.strip()]
    options = server.GunicornOptions(args.workers, args.threads, preload=not args.no_preload)

    env_extra = {}
    if args.sql_log:
        server.RESULTS.mkdir(parents=True, exist_ok=True)
        sql_log = server.RESULTS / "sql.jsonl"
        sql_log.unlink(missing_ok=True)
        env_extra["BENCH_SQL_LOG"] = str(sql_log)
    started = datetime.now(UTC)
    try:
        summaries = measure(
            database=DATABASE,
            levels=levels,
            seconds=args.seconds,
            warmup=args.warmup,
            options=options,
            env_extra=env_extra,
        )
    except subprocess.CalledProcessError as error:
        print(f"Could not prepare the project:\n{error.stdout}\n{error.stderr}", file=sys.stderr)
        return 1

    print()
    print_table(summaries)
    targets = evaluate(summaries)
    print("Targets (issue 7):")
    print_targets(targets)

    report = {
        "started_at": started.isoformat(),
        "machine": {**server.machine(), **versions()},
        "gunicorn": options.args(),
        "settings": "bench.settings (config.settings.production + QueryCountMiddleware)",
        "seconds_per_level": args.seconds,
        "levels": summaries,
        "targets": targets,
    }
    RESULTS_FILE.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nResults written to {RESULTS_FILE}")
    if args.sql_log:
        print(f"Statements per request logged to {env_extra['BENCH_SQL_LOG']}")
    # The run broke only if nothing could be measured at all.
    return 0 if any(level["checkouts"] for level in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
