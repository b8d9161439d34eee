"""The payment domain's background jobs: thin, idempotent, ids in (SPEC 5.7)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.db import transaction

from payments.idempotency import expire_idempotency_keys
from payments.services.operations import operation_resume as operation_resume_service
from payments.services.recovery import operations_refresh_pending as refresh_pending
from payments.services.recovery import operations_resume_due as resume_due

logger = logging.getLogger(__name__)


def enqueue_on_commit(task: Any, *args: Any) -> None:
    """Queue `task` once the caller's transaction commits, so it never sees uncommitted
    rows. A broker that is away loses only the hint: the periodic sweep does the work."""

    def send() -> None:
        try:
            task.delay(*args)
        except Exception:
            logger.warning("Could not queue %s%r; the sweep will catch up", task.name, args)

    transaction.on_commit(send)


@shared_task
def operation_resume(operation_id: str) -> str:
    return operation_resume_service(operation_id=operation_id).status


@shared_task
def operations_resume_due() -> int:
    return len(resume_due())


@shared_task
def operations_refresh_pending() -> int:
    return len(refresh_pending())


@shared_task
def idempotency_keys_expire() -> int:
    return expire_idempotency_keys()
