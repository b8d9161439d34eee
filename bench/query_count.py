"""Count the SQL statements each request issues, server side, in an `X-Query-Count` header.

`connection.execute_wrapper` sees every statement Django sends through a cursor (including
SAVEPOINT / RELEASE SAVEPOINT), but not the BEGIN and COMMIT that psycopg sends on its own:
the figure is "statements the code asked for", which is what N+1 fixes change.

With `BENCH_SQL_LOG=<path>` set, each request's statements are appended to that file as one
JSON line, to see *which* statements a step issues.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse

HEADER = "X-Query-Count"


class _Recorder:
    def __init__(self, keep_sql: bool) -> None:
        self.count = 0
        self.statements: list[str] = []
        self.keep_sql = keep_sql

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        self.count += 1
        if self.keep_sql:
            self.statements.append(sql)
        return execute(sql, params, many, context)


class QueryCountMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.sql_log = os.environ.get("BENCH_SQL_LOG", "")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        recorder = _Recorder(keep_sql=bool(self.sql_log))
        # The wrapper is installed on this thread's connection only: gthread workers serve
        # several requests at once, each with its own connection and its own count.
        with connection.execute_wrapper(recorder):
            response = self.get_response(request)
        response[HEADER] = str(recorder.count)
        if self.sql_log:
            self._log(request, response, recorder.statements)
        return response

    def _log(self, request: HttpRequest, response: HttpResponse, statements: list[str]) -> None:
        line = json.dumps(
            {
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "statements": statements,
            }
        )
        # O_APPEND keeps lines from concurrent workers whole.
        with open(self.sql_log, "a", encoding="utf-8") as log:
            log.write(line + "\n")
