"""The Idempotency-Key machinery shared by checkout completion and every admin POST.

A key is bound to one request (scope, method, path, body fingerprint). A request *leases*
the key: `locked_at` says since when, `lock_token` is a fencing token. Every later write
of the request goes through an UPDATE ... WHERE lock_token = <its token>; a request whose
lease expired and was taken over finds its token gone and cannot write any more.
The final answer is stored in the same transaction as the work it reports.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, QuerySet
from django.utils import timezone

from payments import errors
from payments.bounded_json import JSONRefused, loads
from payments.models import IdempotencyKey

MAX_KEY_LENGTH = 255
_BARE_KEY = re.compile(r"[\x20-\x7e]{1,255}")
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')

RecoveryPoint = IdempotencyKey.RecoveryPoint


@dataclass(frozen=True)
class IdempotentRequest:
    scope: str
    key: str
    method: str
    path: str
    fingerprint: str


@dataclass(frozen=True)
class Replay:
    """A final answer stored for this key, to be sent again byte for byte."""

    status: int
    body: bytes


@dataclass(frozen=True)
class Lease:
    """This request holds the key until it finishes, releases it or the lease expires."""

    key_id: int
    token: uuid.UUID
    recovery_point: str


def parse_key(header: str | None) -> str | None:
    """The key of an `Idempotency-Key` header: 1..255 printable ASCII, bare or an sf-string.

    Returns None when no header was sent; raises IdempotencyKeyInvalid for anything else.
    """
    if header is None:
        return None
    value = header.strip(" \t")
    if value.startswith('"'):
        match = _SF_STRING.fullmatch(value)
        if match is None:
            raise errors.IdempotencyKeyInvalid("Idempotency-Key is not a valid quoted string.")
        value = re.sub(r"\\(.)", r"\1", match.group(1))
    if not _BARE_KEY.fullmatch(value):
        raise errors.IdempotencyKeyInvalid(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters."
        )
    return value


def new_key() -> str:
    return secrets.token_urlsafe(24)


def fingerprint(body: bytes) -> str:
    """A digest of the body; JSON is canonicalized (key order, spacing, an empty body is {}).

    Never raises: a body that is not JSON, or JSON beyond bounded_json's bounds (nested
    100,000 deep, say), is digested as the bytes it is.
    """
    try:
        canonical = json.dumps(loads(body or b"{}"), sort_keys=True, separators=(",", ":"))
        material = canonical.encode()
    except JSONRefused:
        material = body
    return hashlib.sha256(material).hexdigest()


def _lease_cutoff():  # type: ignore[no-untyped-def]
    return timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_LOCK_LEASE_SECONDS)


def idempotency_key_begin(request: IdempotentRequest, *, resource_id: str = "") -> Replay | Lease:
    """Take the key for this request, or say why not.

    Returns the stored answer when the key finished; raises IdempotencyKeyMismatch when it
    belongs to another request and IdempotencyKeyInUse while another live request holds it.
    A lease older than IDEMPOTENCY_LOCK_LEASE_SECONDS belonged to a request that died: it
    is taken over with a new fencing token.
    """
    with transaction.atomic(savepoint=False):
        fresh = _insert_leased(request, resource_id)
        if fresh is not None:
            return fresh
        # Row lock: two requests with one key decide one after the other who holds it.
        row = IdempotencyKey.objects.select_for_update().get(scope=request.scope, key=request.key)
        if (row.request_method, row.request_path, row.request_fingerprint) != (
            request.method,
            request.path,
            request.fingerprint,
        ):
            raise errors.IdempotencyKeyMismatch(
                "This Idempotency-Key was used for a different request."
            )
        stored = row.stored_response()
        if stored is not None:
            return Replay(status=stored[0], body=stored[1])
        if row.locked_at is not None and row.locked_at > _lease_cutoff():
            raise errors.IdempotencyKeyInUse("A request with this Idempotency-Key is in progress.")
        token = IdempotencyKey.new_lock_token()
        IdempotencyKey.objects.filter(pk=row.pk).update(locked_at=timezone.now(), lock_token=token)
        return Lease(key_id=row.pk, token=token, recovery_point=row.recovery_point)


def _insert_leased(request: IdempotentRequest, resource_id: str) -> Lease | None:
    """A key seen for the first time is inserted already leased to us, in one statement;
    None when it exists (the unique (scope, key) index decides between racing requests)."""
    token = IdempotencyKey.new_lock_token()
    now = timezone.now()
    values = {
        "scope": request.scope,
        "key": request.key,
        "request_method": request.method,
        "request_path": request.path,
        "request_fingerprint": request.fingerprint,
        "resource_id": resource_id,
        "locked_at": now,
        "lock_token": token,
        "recovery_point": RecoveryPoint.STARTED.value,
        "created_at": now,
    }
    meta = IdempotencyKey._meta
    fields = {field.name: field for field in meta.concrete_fields}
    connection = transaction.get_connection()
    columns = ", ".join(connection.ops.quote_name(fields[name].column) for name in values)
    params = [
        fields[name].get_db_prep_value(value, connection, prepared=False)
        for name, value in values.items()
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) "
            f"VALUES ({', '.join(['%s'] * len(params))}) "
            "ON CONFLICT (scope, key) DO NOTHING RETURNING id",
            params,
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return Lease(key_id=row[0], token=token, recovery_point=RecoveryPoint.STARTED)


def live_keys_of(resource_id: str | OuterRef) -> QuerySet[IdempotencyKey]:
    """The keys a live request holds while it works on this resource (a cart). With an
    OuterRef, it is an `Exists` check of a query on the resource's own table."""
    return IdempotencyKey.objects.filter(resource_id=resource_id, locked_at__gt=_lease_cutoff())


def idempotency_resource_busy(resource_id: str, *, exclude_key_id: int | None = None) -> bool:
    """Whether another live request holds a key working on this resource (a cart)."""
    live = live_keys_of(resource_id)
    if exclude_key_id is not None:
        live = live.exclude(pk=exclude_key_id)
    return live.exists()


def idempotency_key_advance(lease: Lease, recovery_point: str) -> None:
    """Commit a recovery point with the caller's transaction; refused if the lease was lost."""
    _fenced_update(lease, recovery_point=recovery_point)


def idempotency_key_finish(lease: Lease, *, status: int, body: bytes) -> None:
    """Store the final answer with the caller's transaction and free the key."""
    now = timezone.now()
    _fenced_update(
        lease,
        recovery_point=RecoveryPoint.FINISHED,
        response_code=status,
        response_body=body,
        finished_at=now,
        locked_at=None,
        lock_token=None,
    )


def idempotency_key_release(lease: Lease) -> None:
    """Free the key without a final answer: a retry continues from the stored recovery point."""
    IdempotencyKey.objects.filter(pk=lease.key_id, lock_token=lease.token).update(
        locked_at=None, lock_token=None
    )


def _fenced_update(lease: Lease, **fields: object) -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("A recovery point is committed together with its work.")
    updated = IdempotencyKey.objects.filter(pk=lease.key_id, lock_token=lease.token).update(
        **fields
    )
    if updated != 1:
        # Our lease expired and another request took the key over: write nothing more.
        raise errors.IdempotencyKeyInUse(
            "This request's hold on its Idempotency-Key was taken over."
        )


def expire_idempotency_keys(*, older_than: timedelta | None = None) -> int:
    """Delete keys that finished more than the TTL ago; returns how many."""
    ttl = older_than or timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _ = IdempotencyKey.objects.filter(finished_at__lt=timezone.now() - ttl).delete()
    return deleted
