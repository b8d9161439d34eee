"""Medusa v1, the peer `make bench-peer` measures against: its scripts as they are.

The peer's files (`../shared/peers/medusa/`, or MEDUSA_PEER_DIR) are copied into a scratch
folder outside the tracked files, `bench/.medusa/`, which is kept between runs so that
`npm ci` runs only when package-lock.json changed. The database is made afresh each run
(migrations and seed take about 6 s): a run starts from the same 100,000,000 units of stock
and no orders, as ours does, and Medusa's own scripts expect it to be called `medusa_peer`.

The server, the load (`bench.py`, with `requests`) and the SQL counts (`sqlcount.sh`) are the
peer's own scripts, run unchanged from the scratch folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import server

SCRATCH = server.ROOT / "bench" / ".medusa"
DATABASE = "medusa_peer"  # fixed by the peer's sqlcount.sh
PORT = 9000  # fixed by the peer's server.js and start-server.sh
INSTALLED_STAMP = SCRATCH / ".package-lock.sha256"
FILES = ("package.json", "package-lock.json", "medusa-config.js", "seed.json", "server.js")


class MedusaError(Exception):
    """A step of standing Medusa up or measuring it failed; the message says which."""


def peer_dir() -> Path:
    """MEDUSA_PEER_DIR, a relative one read from the repository root; by default the
    `shared/peers/medusa` folder beside the repository."""
    configured = os.environ.get("MEDUSA_PEER_DIR")
    if not configured:
        return server.ROOT.parent / "shared" / "peers" / "medusa"
    return (server.ROOT / configured).resolve()


def _run(command: list[str], log: str, timeout: float) -> str:
    """Run a command in the scratch folder, its output kept in `log`; its stdout returned."""
    result = subprocess.run(
        command,
        cwd=SCRATCH,
        env={**os.environ, "MEDUSA_DISABLE_TELEMETRY": "true"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    (SCRATCH / log).write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise MedusaError(f"{' '.join(command)} failed (bench/.medusa/{log}):\n{tail}")
    return result.stdout


def prepare(source: Path) -> None:
    """Copy the peer's files, install its packages if the lock changed, and make a fresh
    `medusa_peer` database with Medusa's migrations and seed (setup.sh, step by step)."""
    if not (source / "package-lock.json").is_file():
        raise MedusaError(f"no Medusa peer at {source} (set MEDUSA_PEER_DIR)")
    SCRATCH.mkdir(parents=True, exist_ok=True)
    server_stop()  # one left by a run that broke would hold the database
    for path in [*(source / name for name in FILES), *source.glob("*.sh"), *source.glob("*.py")]:
        shutil.copy2(path, SCRATCH / path.name)
    (SCRATCH / "results").mkdir(exist_ok=True)  # where sqlcount.sh writes

    lock = hashlib.sha256((source / "package-lock.json").read_bytes()).hexdigest()
    stamp = INSTALLED_STAMP.read_text().strip() if INSTALLED_STAMP.exists() else ""
    if stamp != lock or not (SCRATCH / "node_modules").is_dir():
        print("  npm ci (a minute or two) ...", flush=True)
        INSTALLED_STAMP.unlink(missing_ok=True)
        _run(["npm", "ci", "--no-audit", "--no-fund"], "npm-ci.log", timeout=900)
        INSTALLED_STAMP.write_text(lock + "\n")
    else:
        print("  node_modules matches package-lock.json: no npm ci")

    print(f"  fresh database {DATABASE}, Medusa's migrations and seed ...", flush=True)
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1"]
    _run(
        [*psql, "-c", f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"],
        "dropdb.log",
        timeout=60,
    )
    _run([*psql, "-c", f"CREATE DATABASE {DATABASE}"], "createdb.log", timeout=60)
    _run(["npx", "medusa", "migrations", "run"], "migrate.log", timeout=300)
    _run(["npx", "medusa", "seed", "-f", "./seed.json"], "seed.log", timeout=300)


def port_taken(port: int = PORT) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def server_start() -> int:
    """start-server.sh: Medusa on 127.0.0.1:9000 in the background; returns its PID."""
    server_stop()  # one left by a run that broke: start-server.sh would just reuse it
    if port_taken():
        raise MedusaError(f"something already listens on 127.0.0.1:{PORT}; stop it first")
    _run(["./start-server.sh"], "start-server.out", timeout=120)
    return int((SCRATCH / "server.pid").read_text())


def server_stop() -> None:
    """stop-server.sh: stops only the server start-server.sh started, by its PID file."""
    if (SCRATCH / "server.pid").exists():
        _run(["./stop-server.sh"], "stop-server.out", timeout=60)


def json_documents(text: str) -> list[Any]:
    """bench.py prints one indented document (seq) or one document a line (throughput)."""
    decoder = json.JSONDecoder()
    documents, position = [], 0
    while (position := _skip_space(text, position)) < len(text):
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
    return documents


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def bench_py(*args: str, timeout: float) -> tuple[list[Any], float]:
    """The peer's bench.py, with the interpreter running ours (both use the same Python).
    Returns its JSON documents and the CPU seconds the load generator itself used."""
    before = _children_cpu()
    output = _run([sys.executable, "bench.py", *args], f"bench-{args[0]}.log", timeout=timeout)
    return json_documents(output), _children_cpu() - before


def _children_cpu() -> float:
    """User + system time of the finished child processes we waited for, so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench(*, levels: list[int], seconds: float) -> dict[str, Any]:
    """Medusa's server alone on the machine: `bench.py seq` for `seconds` (as long as our
    one-client level), then `bench.py throughput` at each level; the server stopped after."""
    pid = server_start()
    try:
        print(f"Medusa: server pid {pid}; sequential checkouts for {seconds:g} s ...", flush=True)
        # bench.py stops at --max-seconds, not at --n.
        seq_args = ["--warmup", "10", "--n", "2000", "--max-seconds", str(seconds)]
        (seq,), _ = bench_py("seq", *seq_args, "--pid", str(pid), timeout=seconds + 300)
        # What a call of bench.py costs the load generator besides the load: starting Python,
        # importing requests, its catalogue reads and psql counts. Not counted per checkout.
        _, fixed_cpu = bench_py("throughput", "--clients", "1", "--seconds", "0", timeout=60)
        return {
            "seq": seq,
            "levels": [level_measure(pid, c, seconds, fixed_cpu) for c in levels],
            "load_generator_fixed_cpu_s": round(fixed_cpu, 2),
        }
    finally:
        server_stop()


def level_measure(pid: int, clients: int, seconds: float, fixed_cpu: float) -> dict[str, Any]:
    """One `bench.py throughput` level, one call each, so that it is metered as ours is: the
    CPU of the PostgreSQL backends of its database, of the load generator, and of the rest
    of the machine (other work), beside the Node process's that bench.py reports itself.
    The window is the whole call, the level and about 4 s of bench.py's own pauses."""
    print(f"  {clients} client(s) for {seconds:g} s ...", flush=True)
    node = server.CpuMeter(lambda: [pid])
    postgres = server.CpuMeter(lambda: server.postgres_backend_pids(DATABASE))
    machine = server.MachineCpu()
    for meter in (node, postgres, machine):
        meter.begin()
    started = time.monotonic()
    level_args = ["--clients", str(clients), "--seconds", str(seconds), "--pid", str(pid)]
    (level,), client_cpu = bench_py("throughput", *level_args, timeout=seconds + 150)
    window = time.monotonic() - started
    busy = machine.end() * window
    cpu = {
        "server": node.end(),
        "postgres": postgres.end(),
        "load generator": max(0.0, client_cpu - fixed_cpu),
    }
    level["cpu_seconds"] = {name: round(value, 2) for name, value in cpu.items()}
    level["other_cores"] = round(max(0.0, busy - sum(cpu.values()) - fixed_cpu) / window, 2)
    return level


def sql_counts(runs: int = 3) -> dict[str, Any]:
    """sqlcount.sh: log_statement=all on `medusa_peer` only (reset on exit), the server
    restarted with it, `runs` checkouts counted from the PostgreSQL log, the server stopped.
    About 10 s plus 4 s a run: it waits for Medusa's staged-job poller after every step."""
    output = SCRATCH / "results" / "sqlcount.json"
    output.unlink(missing_ok=True)
    _run(["./sqlcount.sh", str(runs)], "sqlcount.log", timeout=300)
    try:
        counts: dict[str, Any] = json.loads(output.read_text())
    except (OSError, ValueError) as error:
        # sqlcount.sh exits 0 even when sqlcount.py fails (`| tee ... || true`).
        raise MedusaError(f"sqlcount.sh gave no counts ({error}); see bench/.medusa/") from error
    return counts


def stored_sql_counts(source: Path) -> dict[str, Any] | None:
    """The counts the peer's folder holds from its own run, when we do not count again."""
    path = source / "results" / "sqlcount.json"
    return json.loads(path.read_text()) if path.exists() else None
