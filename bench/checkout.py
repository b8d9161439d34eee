"""`make bench`: the storefront checkout under 1, 4 and 16 concurrent clients.

Starts the project as production would (gunicorn, PostgreSQL, production settings plus a
query-counting middleware), seeds the demo store, drives the five-step checkout over
keep-alive HTTP for a bounded time per concurrency level, prints a table and compares it
with the targets of issue 7. Results go to bench/results/checkout.json.

With --cluster it drives the soak's small cluster instead: Debian's nginx with deploy's
proxy settings (`bench/nginx.py`) in front of two gunicorn servers on two ports; the server
figures are summed over both, nginx's CPU is reported on its own.

A benchmark, not a test: it exits 0 whatever the figures, unless the run itself broke.

    python -m bench.checkout [--clients 1,4,16] [--seconds 10] [--workers 3] [--threads 4]
                             [--cluster]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench import server
from bench.flow import STEPS, LevelResult, run_clients
from bench.nginx import Nginx

DATABASE = "payments_bench"
RESULTS_FILE = server.RESULTS / "checkout.json"
# Cores used by processes other than the servers, nginx, PostgreSQL and the load generator above
# which a level's figures are flagged as disturbed.
OTHER_CPU_WARNING = 0.25
# Workers per server with --cluster: 2 servers x 2 workers x 4 threads is 4 Python worker
# processes on 2 cores, two per core so one runs while the other waits on PostgreSQL (single
# mode's 3 plus one), and 16 threads for 16 clients. The second server costs a second master
# and a second copy of the preloaded code: ~525 MB summed RSS (300-380 MB PSS) against single
# mode's ~350 MB, so issue 7's 400 MB is a single server's budget. 2 x 3 workers would put 6
# processes in the queue for 2 cores and take more memory still.
CLUSTER_WORKERS = 2
MODES = {False: "single server", True: "cluster: nginx in front of 2 gunicorn servers"}


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
    parser.add_argument(
        "--workers",
        type=int,
        help=f"gunicorn workers per server (default {server.WORKERS}; with --cluster"
        f" {CLUSTER_WORKERS} per server: 4 worker processes on 2 cores, two per core so one"
        " runs while the other waits on PostgreSQL, and with 4 threads 16 for 16 clients)",
    )
    parser.add_argument("--threads", type=int, default=server.THREADS, help="per worker")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="nginx (deploy's proxy settings) in front of two gunicorn servers, each with"
        " --workers and --threads; the clients drive nginx",
    )
    parser.add_argument("--no-preload", action="store_true", help="gunicorn without --preload")
    parser.add_argument(
        "--sql-log", action="store_true", help="log every statement to bench/results/sql.jsonl"
    )
    args = parser.parse_args(argv)
    if args.workers is None:
        args.workers = CLUSTER_WORKERS if args.cluster else server.WORKERS
    return args


def per_checkout_ms(cores: float | None, seconds: float, checkouts: int) -> float | None:
    """CPU per checkout in ms: `cores` busy for `seconds` (or CPU seconds and 1.0). For the
    servers, the utime + stime of their processes (Node; gunicorn's masters and workers)."""
    if cores is None or not checkouts:
        return None
    return round(cores * seconds / checkouts * 1000, 1)


@dataclass(frozen=True)
class Deployment:
    """What the clients drive (`url`) and whose processes are metered: one gunicorn, or
    two behind nginx."""

    mode: str
    url: str
    servers: list[server.Gunicorn]
    balancer: Nginx | None = None

    def pids(self) -> list[int]:
        """Every server's master and workers: their CPU and RSS are summed."""
        return [pid for gunicorn in self.servers for pid in gunicorn.pids()]


@contextmanager
def deployment(
    env: dict[str, str], options: server.GunicornOptions, log_name: str, *, cluster: bool
) -> Iterator[Deployment]:
    """One gunicorn, or with `cluster` two (logs `<log_name>1.log`, `2.log`) behind nginx, as
    the soak runs them; all stopped on the way out."""
    with ExitStack() as stack:
        count = 2 if cluster else 1
        servers = []
        for i in range(1, count + 1):
            name = log_name if count == 1 else log_name.replace(".log", f"{i}.log")
            gunicorn = server.Gunicorn(env, options, name, name=f"server {i}")
            # Stopped even when it never came up: its master may still be running.
            stack.callback(gunicorn.stop)
            gunicorn.start()
            servers.append(gunicorn)
        if not cluster:
            print(f"Single server: gunicorn {' '.join(options.args())} on {servers[0].url}")
            yield Deployment(MODES[False], servers[0].url, servers)
            return
        balancer = Nginx([f"127.0.0.1:{s.port}" for s in servers], log_name="bench-nginx")
        stack.callback(balancer.stop)
        balancer.start()
        urls = " and ".join(s.url for s in servers)
        print(f"Cluster: 2 servers, gunicorn {' '.join(options.args())} on {urls}")
        print(f"         nginx ({' '.join(balancer.command())}) on {balancer.url} in front")
        yield Deployment(MODES[True], balancer.url, servers, balancer)


class LevelMeters:
    """Memory and CPU around one level. Where the CPU goes tells what to tune: Python in
    the workers, SQL in PostgreSQL, or the load generator (it shares the same cores)."""

    def __init__(self, deployed: Deployment, sampler: server.MemorySampler, database: str) -> None:
        self.sampler = sampler
        self.cpu = {"server": server.CpuMeter(deployed.pids)}
        if deployed.balancer is not None:
            self.cpu["nginx"] = server.CpuMeter(deployed.balancer.pids)
        self.cpu["postgres"] = server.CpuMeter(lambda: server.postgres_backend_pids(database))
        self.machine = server.MachineCpu()
        self.client_cpu = 0.0

    def begin(self) -> None:
        self.sampler.reset()
        for meter in self.cpu.values():
            meter.begin()
        self.machine.begin()
        self.client_cpu = time.process_time()

    def end(self, seconds: float, checkouts: int) -> dict[str, Any]:
        cores = {name: meter.end() / seconds for name, meter in self.cpu.items()}
        cores["load generator"] = (time.process_time() - self.client_cpu) / seconds
        # On a shared machine, CPU taken by other processes lowers every figure: say so.
        cores["other processes"] = max(0.0, self.machine.end() - sum(cores.values()))
        rss, pss = self.sampler.reset()
        measured = [name for name in cores if name != "other processes"]
        return {
            "peak_rss_mb": round(rss / 1024, 1),
            "peak_pss_mb": round(pss / 1024, 1),
            "cpu_cores": {name: round(value, 2) for name, value in cores.items()},
            "cpu_ms_per_checkout": {
                name: per_checkout_ms(cores[name], seconds, checkouts) for name in measured
            },
        }


def run_levels(
    deployed: Deployment,
    sampler: server.MemorySampler,
    levels: list[int],
    seconds: float,
    database: str = DATABASE,
) -> list[dict[str, Any]]:
    meters = LevelMeters(deployed, sampler, database)
    summaries = []
    for clients in levels:
        print(f"  {clients} client(s) for {seconds:g} s ...", flush=True)
        meters.begin()
        result: LevelResult = run_clients(deployed.url, clients=clients, seconds=seconds)
        summaries.append({**result.summary(), **meters.end(result.seconds, len(result.checkouts))})
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
        per = ", ".join(
            f"{name} {fmt(ms, 1).strip()}" for name, ms in level["cpu_ms_per_checkout"].items()
        )
        print(f"{'':>7}    CPU ms per checkout: {per}")
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
    cluster: bool = False,
) -> list[dict[str, Any]]:
    """A fresh `database`, the project under gunicorn (with `cluster`, two behind nginx), a
    warm-up, then each level's summary. Raises CalledProcessError when the project cannot be
    prepared."""
    print(
        f"Preparing a fresh database {database} (migrate, register_providers, seed_demo, "
        "the bench's region)"
    )
    env = server.server_env(server.database_recreate(database), settings="bench.settings")
    # No worker runs: the release messages the completions send go to a queue of the run's
    # own, dropped at the end, not to the one `make run`'s worker reads.
    env = server.own_queue({**env, **(env_extra or {})}, "bench")
    server.project_prepare(env)
    server.manage(env, "shell", "--command", server.BENCH_REGION_SEED)
    try:
        with (
            deployment(env, options, log_name, cluster=cluster) as deployed,
            server.MemorySampler(deployed) as sampler,
        ):
            if warmup:
                # Every worker opens its pool and warms its caches before we measure.
                run_clients(deployed.url, clients=max(levels), seconds=warmup)
                time.sleep(0.5)
            return run_levels(deployed, sampler, levels, seconds, database)
    finally:
        server.queue_forget(env)


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
            cluster=args.cluster,
        )
    except subprocess.CalledProcessError as error:
        print(f"Could not prepare the project:\n{error.stdout}\n{error.stderr}", file=sys.stderr)
        return 1

    mode = MODES[args.cluster]
    print(f"\nMode: {mode}, gunicorn {' '.join(options.args())} per server")
    print_table(summaries)
    targets = evaluate(summaries)
    print("Targets (issue 7):")
    print_targets(targets)

    report = {
        "started_at": started.isoformat(),
        "machine": {**server.machine(), **versions()},
        "mode": mode,
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
