"""The Celery app: `celery -A config worker --beat` (SPEC 5.7).

Tasks are thin (ids in, one service call) and idempotent; the database is the truth and a
message only a hint, so the periodic sweeps below find whatever a lost message missed, and
two schedulers running at once only do the same harmless work twice.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["payments", "checkout"])
