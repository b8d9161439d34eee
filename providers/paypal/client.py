"""A small PayPal REST client on httpx: OAuth2 client credentials, PayPal-Request-Id, errors.

Why not PayPal's SDK (`paypal-server-sdk`): it reaches only PayPal's live or sandbox hosts
(a fixed table in its Configuration), so PAYPAL_API_BASE could not point it at a local
PayPal-compatible server without subclassing its generated internals; it has no
Notifications API, so webhook verification would need this client anyway; and it brings a
code generator's runtime (apimatic-core and its adapters) for five calls. This client makes
one attempt per call, bounded by PAYPAL_TIMEOUT_SECONDS, and never retries on its own: a
lost answer is UNAVAILABLE, and the caller's retry reaches PayPal with the same
PayPal-Request-Id, which PayPal answers with what the first request did.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from providers.base import ProviderError, ProviderErrorKind

DEFAULT_API_BASE = "https://api-m.paypal.com"
DEFAULT_TIMEOUT_SECONDS = 10.0
# A token is used until shortly before PayPal says it expires (about 9 hours), so a call
# never starts with a token that lapses in flight.
TOKEN_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class Answer:
    """One PayPal answer: its status, its JSON body, and PayPal-Debug-Id for the ledger."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    debug_id: str = ""


def issue_of(error: ProviderError) -> str:
    """The first `details[].issue` of a PayPal error (ORDER_NOT_APPROVED, ...), or ""."""
    return str(error.data.get("issue", ""))


class PayPalClient:
    """Thread-safe: one provider instance serves every request thread of a process."""

    def __init__(
        self, *, base_url: str, client_id: str, client_secret: str, timeout: float
    ) -> None:
        self._credentials = (client_id, client_secret)
        # retries=0: httpx retries nothing by default; said here so nobody turns it on.
        self._http = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            transport=httpx.HTTPTransport(retries=0),
            headers={"Accept": "application/json"},
        )
        self._token = ""
        self._token_good_until = 0.0
        self._token_lock = threading.Lock()

    # Calls -------------------------------------------------------------------------------

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post(self, path: str, body: Mapping[str, Any] | None, *, request_id: str) -> Answer:
        """A POST with PayPal-Request-Id, so PayPal takes it once however often it is sent;
        `return=representation` so the answer carries the whole object (amounts, status)."""
        return self.request(
            "POST",
            path,
            content=json.dumps(body or {}).encode(),
            headers={"PayPal-Request-Id": request_id, "Prefer": "return=representation"},
        )

    def post_raw(self, path: str, content: bytes) -> Answer:
        """A POST of bytes we composed ourselves and that moves nothing (webhook checks)."""
        return self.request("POST", path, content=content)

    def patch(self, path: str, operations: list[dict[str, Any]]) -> Answer:
        return self.request("PATCH", path, content=json.dumps(operations).encode())

    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send once; once more only after a 401, with a new token. PayPal refuses a request
        with a revoked or lapsed token before doing anything, so that second send cannot
        repeat an effect."""
        for fresh_token in (False, True):
            token = self._access_token(fresh=fresh_token)
            all_headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                **(headers or {}),
            }
            response = self._send(method, path, content=content, headers=all_headers)
            if response.status_code == 401 and not fresh_token:
                continue
            return answer_of(response)
        raise AssertionError("unreachable")  # pragma: no cover

    # OAuth2 ------------------------------------------------------------------------------

    def _access_token(self, *, fresh: bool) -> str:
        with self._token_lock:
            if not fresh and self._token and time.monotonic() < self._token_good_until:
                return self._token
            asked_at = time.monotonic()
            response = self._send(
                "POST",
                "/v1/oauth2/token",
                content=b"grant_type=client_credentials",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                auth=self._credentials,
            )
            if response.status_code in (400, 401, 403):
                raise ProviderError(
                    ProviderErrorKind.OTHER,
                    "PayPal refused our client credentials (PAYPAL_CLIENT_ID/SECRET).",
                    request_id=response.headers.get("PayPal-Debug-Id", ""),
                )
            body = answer_of(response).body
            token, lifetime = body.get("access_token"), body.get("expires_in")
            if not isinstance(token, str) or not isinstance(lifetime, int | float):
                raise ProviderError(ProviderErrorKind.UNAVAILABLE, "PayPal sent no usable token.")
            margin = min(TOKEN_MARGIN_SECONDS, lifetime / 10)
            self._token, self._token_good_until = token, asked_at + lifetime - margin
            return token

    def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None,
        headers: Mapping[str, str],
        auth: tuple[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return self._http.request(
                method, path, content=content, headers=dict(headers), auth=auth
            )
        except httpx.TransportError as error:
            # A timeout or a dropped connection may come after PayPal acted.
            raise ProviderError(
                ProviderErrorKind.UNAVAILABLE,
                "PayPal could not be reached or its answer was lost; the outcome is unknown.",
                data={"error": type(error).__name__},
            ) from error


def answer_of(response: httpx.Response) -> Answer:
    """A 2xx as an Answer; anything else raised as a ProviderError that says whether the
    outcome is known."""
    debug_id = response.headers.get("PayPal-Debug-Id", "")
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = None
    status = response.status_code
    if 200 <= status < 300:
        if not isinstance(body, dict):
            # A garbled success: PayPal may have acted, we cannot tell what it did.
            raise ProviderError(
                ProviderErrorKind.UNAVAILABLE,
                "PayPal's answer could not be read; the outcome is unknown.",
                request_id=debug_id,
            )
        return Answer(status, body, debug_id)
    raise error_of(status, body if isinstance(body, dict) else {}, debug_id)


def error_of(status: int, body: dict[str, Any], debug_id: str) -> ProviderError:
    """PayPal's error body (`name`, `message`, `details[{issue, description}]`, `debug_id`)
    as a ProviderError. A 5xx is indeterminate (PayPal may have acted), a 429 asks us to
    come back, a 409 means a request with the same PayPal-Request-Id is still running:
    all three are "outcome unknown", so nobody retries them under a fresh key."""
    details = body.get("details") if isinstance(body.get("details"), list) else []
    first = details[0] if details and isinstance(details[0], dict) else {}
    issue = str(first.get("issue", ""))
    description = str(first.get("description", "")) or str(body.get("message", ""))
    kind = (
        ProviderErrorKind.UNAVAILABLE
        if status >= 500 or status in (409, 429)
        else ProviderErrorKind.OTHER
    )
    return ProviderError(
        kind,
        f"PayPal answered {status} {issue or body.get('name', '')}: {description}".strip(),
        data={
            "http_status": status,
            "name": str(body.get("name", "")),
            "issue": issue,
            "debug_id": str(body.get("debug_id", "")) or debug_id,
        },
        raw=body,
        request_id=debug_id or str(body.get("debug_id", "")),
    )


def build_client() -> PayPalClient:
    """A client for the app in PAYPAL_CLIENT_ID/SECRET, at PAYPAL_API_BASE."""
    client_id = getattr(settings, "PAYPAL_CLIENT_ID", "")
    secret = getattr(settings, "PAYPAL_CLIENT_SECRET", "")
    if not client_id or not secret:
        raise ImproperlyConfigured(
            "PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET must be set for the paypal provider."
        )
    return PayPalClient(
        base_url=getattr(settings, "PAYPAL_API_BASE", "") or DEFAULT_API_BASE,
        client_id=client_id,
        client_secret=secret,
        timeout=float(getattr(settings, "PAYPAL_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)),
    )
