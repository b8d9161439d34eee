"""The soak's process faults, on a schedule: what production loses without warning.

- a gunicorn worker process SIGKILLed (its master forks a new one at once), alternately on
  each server, every `every` seconds;
- a Celery worker SIGKILLed with its pool and scheduler, restarted a few seconds later as a
  supervisor would (half-way between the gunicorn kills);
- once, at mid-run, the whole second server (master and workers) SIGKILLed, as a machine
  that loses power, and started again on the same port.

Every request or task in flight in a killed process dies mid-way: that is the point.
"""

from __future__ import annotations

import heapq
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial

from bench.celery_worker import CeleryWorker
from bench.server import Gunicorn

# How long a supervisor (systemd, Kubernetes) takes to notice and start a worker again.
RESTART_DELAY_SECONDS = 3.0


class FaultSchedule(threading.Thread):
    def __init__(
        self,
        servers: list[Gunicorn],
        workers: list[CeleryWorker],
        *,
        seconds: float,
        every: float,
        rng: random.Random,
    ) -> None:
        super().__init__(daemon=True)
        self.servers = servers
        self.workers = workers
        self.rng = rng
        self.kills: Counter[str] = Counter()
        self.log: list[str] = []
        # (epoch seconds, what, whose name): to place nginx's access log against the faults.
        self.events: list[tuple[float, str, str]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self._restarts: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._began = time.monotonic()
        # (seconds after the start, sequence, action): the whole run's plan, made up front.
        self._plan: list[tuple[float, int, Callable[[], None]]] = []
        at, turn = every, 0
        while at < seconds:
            server = servers[turn % len(servers)]
            self._add(at, partial(self._kill_gunicorn_worker, server))
            if at + every / 2 < seconds:
                worker = workers[turn % len(workers)]
                self._add(at + every / 2, partial(self._kill_celery_worker, worker))
            at, turn = at + every, turn + 1
        if len(servers) > 1:
            self._add(seconds / 2 + every / 4, partial(self._crash_server, servers[-1]))

    def _add(self, at: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._plan, (at, len(self._plan), action))

    def _note(self, kind: str, what: str) -> None:
        with self._lock:
            self.kills[kind] += 1
            self.log.append(f"{time.monotonic() - self._began:6.1f} s  {what}")

    def run(self) -> None:
        while self._plan:
            at, _, action = heapq.heappop(self._plan)
            if self.stop.wait(max(0.0, self._began + at - time.monotonic())):
                return
            try:
                action()
            except Exception as error:  # a fault that could not be made is reported, not fatal
                self.errors.append(f"{action}: {error!r}")

    # The faults ---------------------------------------------------------------------------

    def _kill_gunicorn_worker(self, server: Gunicorn) -> None:
        workers = server.worker_pids()
        if not workers:
            return  # that server is down or restarting right now
        victim = self.rng.choice(workers)
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            return  # it exited on its own meanwhile
        self._note("gunicorn worker", f"SIGKILL gunicorn worker {victim} of {server.name}")
        self.events.append((time.time(), "gunicorn worker killed", server.name))

    def _kill_celery_worker(self, worker: CeleryWorker) -> None:
        if not worker.running():
            return  # still coming back from the last kill
        pid = worker.pid
        worker.crash()
        self._note("celery worker", f"SIGKILL celery {worker.name} (pid {pid}) and its group")
        # The other worker carries on alone meanwhile.
        self._restart_later(worker, worker.name)

    def _crash_server(self, server: Gunicorn) -> None:
        if not server.running():
            return
        pids = server.pids()
        server.crash()
        self.events.append((time.time(), "server killed", server.name))
        self._note("server", f"SIGKILL {server.name}: master and workers {pids}")
        # Back on the same port; shoppers meanwhile fail over to the other server.
        self._restart_later(server, server.name)

    def _restart_later(self, process: CeleryWorker | Gunicorn, name: str) -> None:
        """As a supervisor would, in the background: the schedule keeps its time while the
        process imports the project and gets ready (seconds on a loaded machine)."""

        def restart() -> None:
            if self.stop.wait(RESTART_DELAY_SECONDS):
                return  # finish() starts it
            began = time.monotonic()
            try:
                process.start()
            except Exception as error:
                self.errors.append(f"restarting {name}: {error!r}")
                return
            ready = time.monotonic() - began
            self.events.append((time.time(), "back", name))
            with self._lock:
                self.log.append(
                    f"{time.monotonic() - self._began:6.1f} s  restarted {name}"
                    f" (ready in {ready:.1f} s)"
                )

        thread = threading.Thread(target=restart, daemon=True)
        self._restarts.append(thread)
        thread.start()

    def finish(self) -> None:
        """Stop making faults; whatever was killed last is running again afterwards."""
        self.stop.set()
        self.join()
        for thread in self._restarts:
            thread.join()
        processes: list[CeleryWorker | Gunicorn] = [*self.workers, *self.servers]
        for process in processes:
            if not process.running():
                process.start()
