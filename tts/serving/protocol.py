"""The HTTP protocol `tts serve` runs under uvicorn: uvicorn's own (httptools when installed,
else h11) with two changes a public server needs.

- A request uvicorn cannot parse (a bad request line, header or Content-Length, e.g. a
  negative one) gets a 400 in OpenAI's error format, like every other error of the server,
  instead of uvicorn's plain text.
- A request's head must arrive within `read_timeout` seconds of its first byte (the app
  gives the body as long again): a client trickling its headers byte by byte would otherwise
  hold a connection forever. It gets a 408 and the connection is closed. Idle keep-alive
  connections are left to uvicorn's keep-alive timeout.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

__all__ = ["protocol_class"]

_REASONS = {400: b"Bad Request", 408: b"Request Timeout"}


def protocol_class(read_timeout: float) -> type:
    """uvicorn's HTTP protocol with JSON 400s and a `read_timeout` on request heads."""

    class Protocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:
            self._head_timer: Any = None
            self._partial: Any = None
            """The cycle after which bytes of a new request head came (None: the first)."""
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().connection_lost(exc)

        def _idle(self) -> bool:
            """No request being answered: bytes that come now belong to a new head."""
            return self.cycle is None or self.cycle.response_complete

        def data_received(self, data: bytes) -> None:
            if self._idle():
                self._partial = self.cycle
                if self._head_timer is None:
                    self._head_timer = self.loop.call_later(read_timeout, self._head_expired,
                                                            self.cycle)
            super().data_received(data)

        def _head_expired(self, since: Any) -> None:
            self._head_timer = None
            if not self._idle() or self.transport.is_closing() or self._partial is not \
                    self.cycle:
                return  # a request is being answered, or no new head has begun
            if self.cycle is since:
                self._send_error(408, f"the request headers did not arrive within "
                                      f"{read_timeout:g} s.", "request_timeout")
            else:  # a request was answered meanwhile; this head began after it
                self._head_timer = self.loop.call_later(read_timeout, self._head_expired,
                                                        self.cycle)

        def send_400_response(self, msg: str) -> None:
            self._send_error(400, f"{msg.rstrip('.')}: a malformed request line, header or "
                                  f"Content-Length.", "invalid_http_request")

        def _send_error(self, status: int, message: str, code: str) -> None:
            body = json.dumps({"error": {"message": message, "type": "invalid_request_error",
                                         "param": None, "code": code}}).encode()
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body))
            self.transport.close()

    return Protocol
