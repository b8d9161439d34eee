"""Start the project as production would: a fresh PostgreSQL database, migrations, the demo
seed, and gunicorn on 127.0.0.1; plus the /proc readings of its processes' memory.

Shared by `bench/checkout.py` and `bench/soak.py`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import psycopg
import redis
from psycopg import sql

from bench.client import CONNECTION_ERRORS, Client

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_SERVER = "postgres://postgres@127.0.0.1:5432"

# Gunicorn on this 2-core machine, where PostgreSQL and the load generator share the cores:
# - gthread, because clients keep their connections alive (the sync worker closes every
#   connection after one answer) and because a request spends part of its time waiting on
#   PostgreSQL, when another thread of the same worker can run Python.
# - 3 workers: Python runs one thread at a time per process, so processes are what use the
#   cores. The checkout is CPU-bound (at 16 clients: ~1.4 cores in the workers, ~0.45 in
#   PostgreSQL), so 2, 3 or 4 workers x 4 threads all reach the same ~28-30 checkouts/s
#   (measured with --workers/--threads); 3 is one per core plus one to cover a worker
#   blocked on the database, and loses only a third of the capacity when one dies (the
#   soak kills one every 30 s). 4 workers only add ~70 MB; 6 exceed the 400 MB budget.
# - 4 threads each: 12 requests in flight for 16 clients; more threads per worker only
#   queue on the GIL (8 threads measured no faster). It stays under
#   the psycopg pool's max_size (DB_POOL_MAX=8), so no thread waits for a connection.
# - --preload: the application is imported once in the master, so a worker killed by the
#   soak is replaced in milliseconds and shares the imported code copy-on-write. Safe
#   because importing the project opens no database connection (checked: the master holds
#   none); each worker creates its pool on its first request.
WORKERS = 3
THREADS = 4


@dataclass(frozen=True)
class GunicornOptions:
    workers: int = WORKERS
    threads: int = THREADS
    preload: bool = True

    def args(self) -> list[str]:
        args = ["--workers", str(self.workers), "--worker-class", "gthread"]
        args += ["--threads", str(self.threads), "--keep-alive", "10"]
        return [*args, "--preload"] if self.preload else args


# Database and management commands ----------------------------------------------------------


def database_recreate(name: str) -> str:
    """Drop and create `name`; returns its DATABASE_URL. A fresh database every run."""
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{PG_SERVER}/{name}"


def server_env(database_url: str, settings: str) -> dict[str, str]:
    """The environment of a production deployment: DEBUG off, a secret, PostgreSQL.

    Like any deployment that serves plain HTTP on a private network, it turns the HTTPS
    protections off by name. It names the `test` provider (the soak's lost answers need it),
    and turns the per-address storefront throttle off: every bench client is 127.0.0.1.
    """
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "DATABASE_URL": database_url,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "SECURE_HSTS_SECONDS": "0",
        "PAYMENT_PROVIDERS": "manual,test",
        "STORE_API_THROTTLE": "off",
    }


def own_queue(env: dict[str, str], prefix: str) -> dict[str, str]:
    """A Celery queue of this run's own, so the messages its servers send (hints only: the
    worker's sweeps find the same work) never reach another run's or the developer's
    worker, and `queue_forget` can drop them."""
    return {
        **env,
        "CELERY_QUEUE": f"{prefix}-{secrets.token_hex(6)}",
        "REDIS_URL": env.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
    }


def queue_forget(env: dict[str, str]) -> None:
    """Drop the run's queue: what is left in it belongs to nobody now (Redis may be down)."""
    with contextlib.suppress(redis.RedisError):
        redis.Redis.from_url(env["REDIS_URL"]).delete(env["CELERY_QUEUE"])


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run a management command; raises CalledProcessError with its output on failure."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )


# Medusa's bench seed in our terms: one region (USD, country us) offering `manual` alone,
# where every demo product is sold at its USD price.
BENCH_REGION_SEED = """
from checkout.models import ProductPrice, Region
from bench.flow import BENCH_REGION
region, _ = Region.objects.get_or_create(
    name=BENCH_REGION, defaults={"currency_code": "usd", "countries": ["us"]}
)
region.payment_providers.set(["manual"])
assert ProductPrice.objects.filter(currency_code="usd").exists()
"""


def project_prepare(env: dict[str, str]) -> None:
    """What a deploy runs, then the demo store (forced: DEBUG is off, as in production)."""
    for command in (
        ["migrate", "--noinput"],
        ["register_providers"],
        ["collectstatic", "--noinput"],
        ["seed_demo", "--force"],
    ):
        manage(env, *command)


def postgres_version() -> str:
    with psycopg.connect(f"{PG_SERVER}/postgres") as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


# Gunicorn ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Gunicorn:
    """gunicorn serving `config.wsgi` on a free port; its log goes to bench/results/."""

    def __init__(
        self,
        env: dict[str, str],
        options: GunicornOptions,
        log_name: str,
        *,
        name: str = "gunicorn",
    ) -> None:
        self.env = env
        self.options = options
        self.name = name
        # Kept across restarts: a machine that comes back answers at the same address.
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = RESULTS / log_name
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def master_pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, ready_timeout: float = 60.0) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        # A restarted server's log continues its predecessor's; a new run starts afresh.
        mode = "ab" if self._process is not None else "wb"
        self._log = open(self.log_path, mode)  # noqa: SIM115 (closed in stop())
        command = [sys.executable, "-m", "gunicorn", "config.wsgi"]
        command += ["--bind", f"127.0.0.1:{self.port}", *self.options.args()]
        # Its own process group, so crash() can take the master and its workers down at
        # once, as a machine that loses power would.
        self._process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready(ready_timeout)

    def _wait_ready(self, timeout: float) -> None:
        """Until every worker is up and the API answers (a worker imports on its own)."""
        deadline = time.monotonic() + timeout
        client = Client(self.url, timeout=5)
        try:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise RuntimeError(f"gunicorn exited; see {self.log_path}")
                try:
                    up = client.request("GET", "/api/store/regions").status == 200
                except CONNECTION_ERRORS:
                    up = False
                if up and len(self.worker_pids()) >= self.options.workers:
                    return
                time.sleep(0.2)
        finally:
            client.close()
        raise RuntimeError(f"gunicorn did not answer within {timeout} s; see {self.log_path}")

    def worker_pids(self) -> list[int]:
        return child_pids(self.master_pid)

    def pids(self) -> list[int]:
        return [self.master_pid, *self.worker_pids()]

    def crash(self) -> None:
        """SIGKILL the master and every worker at once: requests in flight die mid-way."""
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """SIGTERM: gunicorn's graceful shutdown, then a kill if it hangs."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.crash()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Gunicorn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Process memory from /proc -----------------------------------------------------------------


def child_pids(parent: int) -> list[int]:
    """Direct children of `parent`, read from /proc/<pid>/stat (field 4 is the parent)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # The command name (field 2) may hold spaces and parentheses: split after it.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent:
            children.append(int(entry.name))
    return children


def _proc_kib(path: str, label: str) -> int:
    try:
        with open(path) as status:
            for line in status:
                if line.startswith(label):
                    return int(line.split()[1])
    except OSError:
        pass  # the process exited between listing and reading
    return 0


def rss_kib(pid: int) -> int:
    return _proc_kib(f"/proc/{pid}/status", "VmRSS:")


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages divided among the processes sharing them."""
    return _proc_kib(f"/proc/{pid}/smaps_rollup", "Pss:")


class HasPids(Protocol):
    """A Gunicorn, or several servers taken together (`bench.checkout.Deployment`)."""

    def pids(self) -> list[int]: ...


class MemorySampler:
    """Samples the summed RSS (and PSS) of gunicorn's master and workers in a thread.

    RSS counts pages shared by the preloaded workers once per process, so its sum is an
    upper bound of what the server uses; PSS is the fair share and is printed beside it.
    """

    def __init__(self, server: HasPids, interval: float = 0.2) -> None:
        self.server = server
        self.interval = interval
        self.peak_rss = 0
        self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def reset(self) -> tuple[int, int]:
        """Start a new measurement window; returns the peaks (KiB) of the one that ended."""
        peaks = (self.peak_rss, self.peak_pss)
        self.peak_rss = self.peak_pss = 0
        return peaks

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            pids = self.server.pids()
            self.peak_rss = max(self.peak_rss, sum(rss_kib(pid) for pid in pids))
            self.peak_pss = max(self.peak_pss, sum(pss_kib(pid) for pid in pids))

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of stat(5), 11 and 12 after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_backend_pids(database: str) -> list[int]:
    """The PostgreSQL processes serving `database`: where the SQL time is spent."""
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return [int(row[0]) for row in rows]


class CpuMeter:
    """CPU used by a changing set of processes between two readings, in seconds."""

    def __init__(self, list_pids: Callable[[], list[int]]) -> None:
        self.list_pids = list_pids
        self.start: dict[int, float] = {}

    def begin(self) -> None:
        self.start = {pid: cpu_seconds(pid) for pid in self.list_pids()}

    def end(self) -> float:
        now = {pid: cpu_seconds(pid) for pid in self.list_pids()}
        # A process that appeared meanwhile counts from zero; one that vanished is lost.
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in now.items())


class MachineCpu:
    """Cores busy on the whole machine (from /proc/stat) between begin() and end()."""

    def __init__(self) -> None:
        self.start = (0.0, 0.0)

    @staticmethod
    def _read() -> tuple[float, float]:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:]]
        idle = ticks[3] + ticks[4]  # idle + iowait
        return sum(ticks) - idle, time.monotonic()

    def begin(self) -> None:
        self.start = self._read()

    def end(self) -> float:
        busy, now = self._read()
        return (busy - self.start[0]) / os.sysconf("SC_CLK_TCK") / (now - self.start[1])


def machine() -> dict[str, object]:
    """Where the figures came from."""
    model = "?"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_mib": _proc_kib("/proc/meminfo", "MemTotal:") // 1024,
        "postgresql": postgres_version(),
        "python": sys.version.split()[0],
    }
