"""Plain HTTP servers on loopback for tests of HTTP clients: a quiet handler base class with
one way to answer, and a context manager that serves a handler class on a free port."""

from __future__ import annotations

import contextlib
import http.server
import threading
from typing import Iterator, Mapping


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that logs nothing and answers with `reply`."""

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def reply(self, code: int, body: bytes = b"", headers: Mapping[str, str] = {}) -> None:
        """Status `code`, `headers`, Content-Length, then `body`."""
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on 127.0.0.1 in a thread; yields the base URL (".../v1")."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
