"""Idempotency-Key on admin POSTs (SPEC section 6), on the machinery checkout uses.

Keys are scoped per staff user (`admin:<user id>`) and bound to the method, path and body.
The first final answer is stored and replayed; an answer whose outcome is unknown (503)
or that says "try again shortly" (409 in flight) is not final: the key is freed and a
retry runs the operation again. The operation gets a `request_key` derived from the key's
row, so a retry finds what the first attempt reserved (a pending refund, say) and the
provider sees the same idempotency key: the money moves once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.http import HttpResponse
from rest_framework.renderers import JSONRenderer

from payments.api.errors import error_body
from payments.errors import DomainError
from payments.idempotency import (
    IdempotentRequest,
    Replay,
    fingerprint,
    idempotency_key_begin,
    idempotency_key_finish,
    idempotency_key_release,
    new_key,
    parse_key,
)

Work = Callable[[str], tuple[int, Any]]  # request_key -> (status, JSON-able body)


def admin_request(
    *, user_id: int, method: str, path: str, body: bytes, header: str | None
) -> IdempotentRequest:
    """The key of a staff user's request. Raises IdempotencyKeyInvalid (400) for a
    malformed header; without one, the server makes a key (sent back in the answer, so a
    client may still retry with it)."""
    return IdempotentRequest(
        scope=f"admin:{user_id}",
        key=parse_key(header) or new_key(),
        method=method,
        path=path,
        fingerprint=fingerprint(body),
    )


def _json(status: int, body: bytes, *, replayed: bool = False) -> HttpResponse:
    response = HttpResponse(body, status=status, content_type="application/json")
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def idempotent_response(
    request: IdempotentRequest, work: Work, *, resource_id: str = "", atomic: bool = False
) -> HttpResponse:
    """Run `work` once for this key and answer with its stored result.

    With `atomic` (work that only writes rows, no provider call), the work and its stored
    answer commit in one transaction, so a crash between them cannot make a retry run the
    work again. Work that calls a provider cannot hold a transaction open; it is keyed by
    the request key instead, so a retry finds what its first attempt did.

    Raises IdempotencyKeyMismatch (422), IdempotencyKeyInUse (409) and any error that is
    not final (503 ProviderUnavailable, 409 with Retry-After), after freeing the key.
    Other domain errors are final answers: stored and replayed like a success.
    """
    with transaction.atomic():
        taken = idempotency_key_begin(request, resource_id=resource_id)
    if isinstance(taken, Replay):
        return _json(taken.status, taken.body, replayed=True)
    request_key = f"idem_{taken.key_id}"
    try:
        with transaction.atomic() if atomic else contextlib.nullcontext():
            status, data = work(request_key)
            body = JSONRenderer().render(data)
            if atomic:
                idempotency_key_finish(taken, status=status, body=body)
                return _json(status, body)
    except DomainError as error:
        if error.retry_after is not None:
            # Unknown outcome or a busy resource: the retry must run the operation again.
            idempotency_key_release(taken)
            raise
        status = error.status
        body = JSONRenderer().render(error_body(error.code, error.message, error.fields))
    except BaseException:
        idempotency_key_release(taken)
        raise
    with transaction.atomic():
        idempotency_key_finish(taken, status=status, body=body)
    return _json(status, body)
