"""A Celery worker with its scheduler (`celery -A config worker --beat`), as a deployment runs
it, for `make soak`: started, SIGKILLed and started again like a supervised process.

Same command line as the worker tests (tests/worker/conftest.py), with the production
settings and the soak's own queue, so it never takes another run's tasks.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from typing import IO

from bench.server import RESULTS, ROOT


class CeleryWorker:
    """One worker process (prefork) plus its embedded beat; its log goes to bench/results/."""

    def __init__(self, env: dict[str, str], name: str, *, concurrency: int = 2) -> None:
        self.env = env
        self.name = name
        self.concurrency = concurrency
        self.log_path = RESULTS / f"soak-{name}.log"
        self.schedule_path = RESULTS / f"soak-{name}.schedule"
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, ready_timeout: float = 60.0) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        # A restarted worker's log and schedule continue its predecessor's (as they would on
        # its machine); a new run starts afresh.
        if not self.starts:
            for stale in RESULTS.glob(f"{self.schedule_path.name}*"):
                stale.unlink()
        self._log = open(self.log_path, "ab" if self.starts else "wb")  # noqa: SIM115
        ready_from = self.log_path.stat().st_size
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--beat"]
        command += ["--schedule", str(self.schedule_path), "--queues", self.env["CELERY_QUEUE"]]
        # Each its own node name: two workers on one host must not share `celery@host`.
        command += ["--hostname", f"{self.name}@%h", "--concurrency", str(self.concurrency)]
        command += ["--loglevel", "INFO"]
        # Its own process group: the prefork children and the embedded beat process die with
        # the worker in crash(), as they would with the machine (or a cgroup kill).
        self._process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1
        self._wait_ready(ready_from, ready_timeout)

    def _wait_ready(self, offset: int, timeout: float) -> None:
        """Until the worker logs `ready.` (it consumes from then on)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"celery worker {self.name} exited; see {self.log_path}")
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                if b" ready." in log.read():
                    return
            time.sleep(0.2)
        raise RuntimeError(f"celery worker {self.name} not ready in {timeout} s; {self.log_path}")

    def _log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def activity(self) -> dict[str, int]:
        """From its log: how often it started, what its scheduler sent, the tasks it ran."""
        text = self._log_text()
        return {
            "starts": self.starts,
            "periodic tasks sent by its beat": text.count("Sending due task"),
            "tasks succeeded": text.count(" succeeded in "),
            "tasks raised": text.count("] raised unexpected"),
        }

    def task_errors(self) -> list[str]:
        """The tasks that raised, one line each, task id left out (Celery's own format:
        `Task <name>[<id>] raised unexpected: <exception>`)."""
        return [
            re.sub(r"\[[0-9a-f-]{36}\]", "", line.split("Task ", 1)[-1])[:300]
            for line in self._log_text().splitlines()
            if "] raised unexpected" in line
        ]

    def crash(self) -> None:
        """SIGKILL the worker, its pool and its scheduler: tasks in flight die mid-way and
        their messages are never acknowledged (the sweeps must find that work again)."""
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """SIGTERM: Celery's warm shutdown (finish the tasks in hand), then a kill."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=30)
        # Whatever is left of the group (a beat process that outlived its parent).
        self.crash()
