"""A keep-alive HTTP/1.1 client on the standard library: one connection per client thread.

A benchmark client must reuse its connection (as a browser or a storefront backend does),
or connection setup would be measured instead of the application.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# What a dropped connection looks like from http.client: the server closed the socket (a
# killed worker, an expired keep-alive) or never answered. GatewayError is an OSError.
CONNECTION_ERRORS = (OSError, http.client.HTTPException)


class GatewayError(ConnectionError):
    """The load balancer answered for the server (502, 504): the server behind it died or
    went silent mid-request. The same failure as a dropped connection, one hop further: the
    request may or may not have run, so it is retried like one (with its key)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply.status} from the load balancer")
        self.reply = reply


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def code(self) -> str:
        """The contract's machine code of an error answer, or ""."""
        try:
            data = self.json()
        except ValueError:
            return ""
        return data.get("code", "") if isinstance(data, dict) else ""

    @property
    def from_gateway(self) -> bool:
        """A 502/504 nginx made itself: every answer of the app carries its X-Request-Id."""
        return self.status in (502, 504) and "x-request-id" not in self.headers

    @property
    def query_count(self) -> int | None:
        """Statements the server issued for this request (bench settings only)."""
        value = self.headers.get("x-query-count")
        return int(value) if value is not None else None


class Client:
    """One persistent connection to the server; reopened after any connection error."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        headers: dict | None = None,
        balanced: bool = False,
    ):
        parts = urlsplit(base_url)
        # Behind a load balancer: its own 502/504 answers raise GatewayError.
        self.balanced = balanced
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self.default_headers = {"Accept": "application/json", **(headers or {})}
        self._connection: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Reply:
        """Send one request and read the whole answer. Raises CONNECTION_ERRORS."""
        payload = None if body is None else json.dumps(body).encode()
        all_headers = {**self.default_headers, **(headers or {})}
        if payload is not None:
            all_headers["Content-Type"] = "application/json"
        connection = self._connection or self._open()
        started = time.perf_counter()
        try:
            connection.request(method, path, body=payload, headers=all_headers)
            response = connection.getresponse()
            data = response.read()
        except CONNECTION_ERRORS:
            # Never reuse a connection in an unknown state: the next request opens a new one.
            self.close()
            raise
        elapsed = time.perf_counter() - started
        headers_out = {name.lower(): value for name, value in response.getheaders()}
        reply = Reply(response.status, headers_out, data, elapsed)
        if self.balanced and reply.from_gateway:
            raise GatewayError(reply)
        return reply

    def _open(self) -> http.client.HTTPConnection:
        self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
