"""What every fake provider server shares: a threaded HTTP server on a free local port,
started and stopped as a context manager. Each fake brings its own handler."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LocalServer(ThreadingHTTPServer):
    # The fake whose requests this server answers (its handler reads it).
    fake: Any
    # A request held back to play a slow provider never keeps the test process alive.
    daemon_threads = True


class FakeHandler(BaseHTTPRequestHandler):
    """Hands every request to the fake's `serve(handler)`."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the clients' connection pools expect
    # Headers and body go out in two writes; with Nagle each answer would wait for the
    # client's delayed ACK (40 ms).
    disable_nagle_algorithm = True
    server: LocalServer

    def do_GET(self) -> None:
        self.server.fake.serve(self)

    def do_POST(self) -> None:
        self.server.fake.serve(self)

    def do_PATCH(self) -> None:
        self.server.fake.serve(self)

    def do_DELETE(self) -> None:
        self.server.fake.serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows what matters."""


class LocalFake:
    """Serve the fake on 127.0.0.1 at a free port while the `with` block runs; it answers
    each request in `serve(handler)`."""

    # Set on leaving, so a request held back to play a slow provider ends at once.
    _released: threading.Event

    def __enter__(self) -> Self:
        self._httpd = LocalServer(("127.0.0.1", 0), FakeHandler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._released.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"
