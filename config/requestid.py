"""One id per request, on every log line the request causes, in the web process and in the
worker tasks it queues (README, "Logs").

The id comes from the `X-Request-Id` header when it is well formed (nginx sets one, see
deploy/nginx), else it is made here; the response echoes it. Tasks carry it in a message
header, so a checkout's release of its unselected sessions logs under the checkout's id.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-Id"
TASK_HEADER = "request_id"
# Whatever a client sends lands in every log line: letters, digits and a few separators,
# bounded, so a header cannot forge log fields or flood them.
WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")

current: ContextVar[str] = ContextVar("request_id", default="")


def new_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """First in MIDDLEWARE, so even a redirect or an error page carries the id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        sent = request.headers.get(HEADER, "")
        request_id = sent if WELL_FORMED.fullmatch(sent) else new_id()
        token = current.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            current.reset(token)
        response[HEADER] = request_id
        return response


class RequestIdFilter(logging.Filter):
    """Puts `request_id` on every record ("-" outside a request or task), for the plain and
    the JSON formats alike."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current.get() or "-"
        return True


# Celery: the publisher writes the id into the message's headers, the worker reads it back
# around the task. Connected in config/celery.py, which every process imports.

_task_tokens: dict[str, Token[str]] = {}


def task_publishing(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = current.get()
    if headers is not None and request_id and TASK_HEADER not in headers:
        headers[TASK_HEADER] = request_id


def task_starting(task_id: str = "", task: Any = None, **_: Any) -> None:
    request = getattr(task, "request", None)
    # A worker's message headers become attributes of the request; an eager call made with
    # headers=... keeps them in `request.headers`.
    request_id = getattr(request, TASK_HEADER, None) or (
        (getattr(request, "headers", None) or {}).get(TASK_HEADER)
    )
    if isinstance(request_id, str) and WELL_FORMED.fullmatch(request_id):
        _task_tokens[task_id] = current.set(request_id)
    elif not current.get():
        # A periodic sweep has no request behind it: its own id still ties its lines.
        _task_tokens[task_id] = current.set(f"task-{task_id}")


def task_finished(task_id: str = "", **_: Any) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        current.reset(token)
