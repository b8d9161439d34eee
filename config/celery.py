"""The Celery app: `celery -A config worker --beat` (SPEC 5.7).

Tasks are thin (ids in, one service call) and idempotent; the database is the truth and a
message only a hint, so the periodic sweeps below find whatever a lost message missed, and
two schedulers running at once only do the same harmless work twice.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import before_task_publish, task_postrun, task_prerun

from config import requestid

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["payments", "checkout"])

# The request id travels with each task a request queues (config/requestid.py).
before_task_publish.connect(requestid.task_publishing, weak=False)
task_prerun.connect(requestid.task_starting, weak=False)
task_postrun.connect(requestid.task_finished, weak=False)
