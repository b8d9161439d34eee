"""A small HTTP client for Klarna's REST APIs (Klarna has no official Python SDK).

HTTP Basic with the Merchant Portal's API credentials, JSON both ways, one attempt per call
bounded by KLARNA_TIMEOUT_SECONDS, and Klarna's error shape (`error_code`,
`error_messages`, `correlation_id`) turned into ProviderError:

- no answer (timeout, refused or dropped connection), a 5xx, a 429, or a 409 from Order
  Management (a request with the same idempotency key still running): UNAVAILABLE, the
  outcome is unknown and the caller asks again with the same key;
- any other 4xx: OTHER, Klarna refused and nothing moved. The provider turns the codes that
  mean something more (a refused purchase, a capture not allowed yet) into their kinds.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from providers.base import ProviderError, ProviderErrorKind

DEFAULT_TIMEOUT_SECONDS = 10.0
# Klarna advises UUIDs (v5) as idempotency keys; ours are readable strings derived from
# what a call does, so each is mapped to the one UUID it names in this namespace.
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c2a4e-9b0d-5c3e-8a7f-2d4b6e8f0a1c")


def klarna_idempotency_key(key: str) -> str:
    """The Klarna-Idempotency-Key for one of our keys: the same key, the same UUID."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, key))


@dataclass(frozen=True)
class KlarnaResponse:
    status: int
    body: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


class KlarnaClient:
    """One Klarna account. Thread-safe: httpx's connection pool is shared by the threads
    of a web worker."""

    def __init__(
        self,
        *,
        base_url: str,
        username: str,
        password: str,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            auth=httpx.BasicAuth(username, password),
            timeout=timeout,
            headers={"Accept": "application/json", "User-Agent": "payments-backoffice"},
            # No transport retries: a lost answer is reported, and the caller's retry
            # carries the same idempotency key (a hidden retry would only hide it).
            transport=httpx.HTTPTransport(retries=0),
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def get(self, path: str) -> KlarnaResponse:
        return self._send("GET", path)

    def post(
        self, path: str, body: Mapping[str, Any] | None = None, *, idempotency_key: str = ""
    ) -> KlarnaResponse:
        headers = (
            {"Klarna-Idempotency-Key": klarna_idempotency_key(idempotency_key)}
            if idempotency_key
            else {}
        )
        return self._send("POST", path, body=body, headers=headers)

    def delete(self, path: str) -> KlarnaResponse:
        return self._send("DELETE", path)

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> KlarnaResponse:
        try:
            response = self._http.request(
                method, path, json=dict(body) if body is not None else None, headers=headers
            )
        except httpx.TransportError as error:
            # Includes timeouts and a connection closed before the answer: Klarna may have
            # acted, so nobody may conclude that nothing moved.
            raise ProviderError(
                ProviderErrorKind.UNAVAILABLE,
                f"Klarna could not be reached or its answer was lost ({type(error).__name__});"
                " the outcome is unknown.",
            ) from error
        payload = _json_of(response)
        if response.is_success:
            return KlarnaResponse(
                status=response.status_code,
                body=payload,
                headers={name.lower(): value for name, value in response.headers.items()},
            )
        raise error_of(response.status_code, payload, path=path)


def _json_of(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}  # 201 and 204 answers have no body
    try:
        payload = response.json()
    except ValueError:
        return {"unparsed": response.text[:500]}
    return payload if isinstance(payload, dict) else {"unparsed": payload}


def error_of(status: int, payload: Mapping[str, Any], *, path: str) -> ProviderError:
    code = str(payload.get("error_code") or "")
    messages = payload.get("error_messages") or []
    text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
    correlation_id = str(payload.get("correlation_id") or "")
    order_management = path.startswith("/ordermanagement/")
    unknown = status >= 500 or status == 429 or (status == 409 and order_management)
    return ProviderError(
        ProviderErrorKind.UNAVAILABLE if unknown else ProviderErrorKind.OTHER,
        f"Klarna answered {status} {code or 'error'}: {text or 'no message'}",
        data={"http_status": status, "error_code": code, "correlation_id": correlation_id},
        raw=payload,
        request_id=correlation_id,
    )


def build_client() -> KlarnaClient:
    """A client for the account in KLARNA_USERNAME / KLARNA_PASSWORD at KLARNA_API_BASE."""
    if not settings.KLARNA_USERNAME or not settings.KLARNA_PASSWORD:
        raise ImproperlyConfigured(
            "KLARNA_USERNAME and KLARNA_PASSWORD must be set: the klarna provider cannot run."
        )
    return KlarnaClient(
        base_url=settings.KLARNA_API_BASE,
        username=settings.KLARNA_USERNAME,
        password=settings.KLARNA_PASSWORD,
        timeout=float(getattr(settings, "KLARNA_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)),
    )
