"""A real Celery worker process with its scheduler, on a real Redis, for the tests where
the worker is the point (SPEC 5.7). It reads the test database the test committed to
(these tests are `transaction=True`), and its own queue, so suites running side by side
never take each other's tasks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
# Fast enough for a test, slow enough to show that the worker, not the test, did it.
WORKER_SETTINGS = {
    "RECOVERY_INTERVAL_SECONDS": "1",
    "CHECKOUT_STALLED_AFTER_SECONDS": "2",
    "WEBHOOK_RETRY_BASE_SECONDS": "1",
    "IDEMPOTENCY_LOCK_LEASE_SECONDS": "3",
}


class Worker:
    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.process: subprocess.Popen[bytes] | None = None
        self.log = ROOT / "test-artifacts" / f"worker-{queue}.log"

    def env(self) -> dict[str, str]:
        database = connection.settings_dict
        return {
            **os.environ,
            **WORKER_SETTINGS,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:"
            f"{database['PORT']}/{database['NAME']}",
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "CELERY_QUEUE": self.queue,
            "REDIS_URL": settings.REDIS_URL,
            "PAYMENT_PROVIDERS": ",".join(settings.PAYMENT_PROVIDERS),
        }

    def start(self) -> None:
        self.log.parent.mkdir(exist_ok=True)
        schedule = self.log.with_suffix(".schedule")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--beat",
                "--schedule",
                str(schedule),
                "--pool",
                "solo",
                "--loglevel",
                "INFO",
                "--queues",
                self.queue,
            ],
            cwd=ROOT,
            env=self.env(),
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def worker(transactional_db, settings) -> Iterator[Worker]:  # type: ignore[no-untyped-def]
    """A worker and its scheduler; what the test enqueues goes to this worker's queue."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    eager, default_queue = celery_app.conf.task_always_eager, celery_app.conf.task_default_queue
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = queue
    settings.CELERY_TASK_ALWAYS_EAGER = False
    running = Worker(queue)
    running.start()
    try:
        yield running
    finally:
        running.stop()
        celery_app.conf.task_always_eager = eager
        celery_app.conf.task_default_queue = default_queue


def eventually(check: Callable[[], bool], *, within: float = 30.0, what: str = "") -> None:
    """Wait for the worker to have done something (it acts on its own clock)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"the worker did not {what or 'act'} within {within} s")
