"""What the worker sweeps for, bounded and on indexed columns: operations whose outcome
nobody knows, and operations the provider settles later. Each sweep is safe to run twice,
on two workers at once, or never (the next one finds what this one missed)."""

from __future__ import annotations

from payments.models import MONEY_MOVEMENTS, OperationType, PaymentOperation
from payments.services.actors import SYSTEM, Actor
from payments.services.operations import lease_free, operation_refresh, operation_resume
from payments.services.sessions import session_operation_resume

Status = PaymentOperation.Status


# Authorizations resume through the stalled-checkout sweep, which knows the cart.
SESSION_CALLS = (OperationType.INITIATE, OperationType.UPDATE)


def operations_resume_due(*, limit: int = 100, actor: Actor = SYSTEM) -> list[PaymentOperation]:
    """Ask again, under their own keys, for operations that are `unknown`, or `requested`
    by an attempt whose lease lapsed (its process died): money movements, releases, and
    the session calls that may have made a remote object (an orphaned intent otherwise)."""
    due = (
        PaymentOperation.objects.filter(
            status__in=PaymentOperation.UNRESOLVED,
            type__in=[*MONEY_MOVEMENTS, OperationType.RELEASE, *SESSION_CALLS],
        )
        .filter(lease_free())
        .order_by("created_at")
        .values_list("id", "type")[:limit]
    )
    return [
        session_operation_resume(operation_id=op_id, actor=actor)
        if type in SESSION_CALLS
        else operation_resume(operation_id=op_id, actor=actor)
        for op_id, type in list(due)
    ]


def operations_refresh_pending(
    *, limit: int = 100, actor: Actor = SYSTEM
) -> list[PaymentOperation]:
    """Re-read operations the provider took and settles later."""
    pending = (
        PaymentOperation.objects.filter(status=Status.PENDING, payment__isnull=False)
        .order_by("created_at")
        .values_list("id", flat=True)[:limit]
    )
    return [operation_refresh(operation_id=op_id, actor=actor) for op_id in list(pending)]
