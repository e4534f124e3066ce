"""Writing an answer's status line and headers, once per request, in fewer steps.

uvicorn's request cycle checks every header of every answer with two regular
expressions, lowers its name and compares it with three special names, one header at a
time. A gateway answer carries a dozen headers (its own `x-gateway-*`, the rate-limit
headers, the request id), so that loop was about 2% of a pass-through request's
CPU. `GatewayCycle` writes the same bytes under the same rules with less work:

- a header name is checked and lowered once per distinct name (the names are the
  gateway's own and its packs', a small set) and remembered;
- the values are checked together, with one search over them all: a control character
  is found in the joined bytes exactly when one value holds it;
- uvicorn's default headers (`date`, changed once a second) are checked and joined once
  per list uvicorn makes;
- the head of an answer with a length (every JSON answer) is held until its body comes,
  a moment later, and both leave in one system call where uvicorn makes two. A stream's
  head (no length) still leaves at once, so its client sees the headers before the first
  event.

An answer with a header this fast path does not handle (`transfer-encoding`,
`connection`), or sent while the connection is paused or gone, goes through uvicorn's
own `send` unchanged, as does every body message.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    RequestResponseCycle,
)

_CONTENT_LENGTH = b"content-length: "
_UVICORN_ONLY = frozenset({b"transfer-encoding: ", b"connection: "})  # left to uvicorn's loop
_NAMES_KEPT = 1024  # distinct header names remembered; past it a name is checked each time

_names: dict[bytes, bytes] = {}  # a checked name as sent by the app -> its line's start, b"name: "
_defaults: list[Any] = [None, b""]  # uvicorn's default header list (by identity) -> its bytes


def _prefix(name: bytes) -> bytes:
    """The start of the name's header line (lowered name, colon, space), after uvicorn's check of it."""
    if HEADER_RE.search(name):
        raise RuntimeError("Invalid HTTP header name.")
    prefix = name.lower() + b": "
    if len(_names) < _NAMES_KEPT:
        _names[name] = prefix
    return prefix


def _default_block(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """uvicorn's default headers as written, or None when one needs uvicorn's own loop."""
    if headers is _defaults[0]:
        return _defaults[1]  # type: ignore[no-any-return]
    parts: list[bytes] = []
    for name, value in headers:
        prefix = _names.get(name) or _prefix(name)
        if prefix in _UVICORN_ONLY or prefix == _CONTENT_LENGTH or HEADER_VALUE_RE.search(value):
            return None
        parts += (prefix, value, b"\r\n")
    block = b"".join(parts)
    _defaults[0], _defaults[1] = headers, block
    return block


class GatewayCycle(RequestResponseCycle):
    """uvicorn's request cycle with the answer's head written by `_start` (module docstring)."""

    _held: bytes | None = None  # the head of an answer with a length, until its first body message

    async def send(self, message: Any) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if message["type"] == "http.response.body" and not self.disconnected:
                if self.flow.write_paused:
                    await self.flow.drain()
                self._first_body(held, message)
                return
            if not self.disconnected:
                self.transport.write(held)
            await super().send(message)
        elif (message["type"] != "http.response.start" or self.response_started or self.disconnected
                or self.flow.write_paused or self.access_log or not self._start(message)):
            await super().send(message)

    def _start(self, message: Any) -> bool:
        """Write the status line and headers as uvicorn would; False (nothing written,
        nothing changed) when a header needs uvicorn's own handling."""
        defaults = _default_block(self.default_headers)
        if defaults is None:
            return False
        status = message["status"]
        content = [STATUS_LINE[status], defaults]
        values: list[bytes] = []
        length: bytes | None = None
        names = _names
        for name, value in message.get("headers", ()):
            prefix = names.get(name) or _prefix(name)
            if prefix == _CONTENT_LENGTH:
                if length is None:
                    length = value  # the first one counts, as in uvicorn
            elif prefix in _UVICORN_ONLY:
                return False
            content += (prefix, value, b"\r\n")
            values.append(value)
        if HEADER_VALUE_RE.search(b"".join(values)):
            raise RuntimeError("Invalid HTTP header value.")
        if length is not None:
            self.expected_content_length = int(length.decode())
            self.chunked_encoding = False
        self.response_started = True
        self.waiting_for_100_continue = False
        if not self.keep_alive:
            content.append(b"connection: close\r\n")
        if length is None and self.scope["method"] != "HEAD" and status not in (204, 304):
            self.chunked_encoding = True  # neither a length nor an encoding given: chunked
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        if length is None:
            self.transport.write(b"".join(content))  # a stream's head leaves now, before its first event
        else:
            self._held = b"".join(content)  # goes out with the body, in one write (`_first_body`)
        return True

    def _first_body(self, head: bytes, message: Any) -> None:
        """The held head and the first body message in one system call (uvicorn writes each
        on its own), then the answer goes on under uvicorn's rules for a body with a length."""
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
            body = b""
        elif len(body) > self.expected_content_length:
            self.transport.write(head)  # uvicorn would have written the head already
            raise RuntimeError("Response content longer than Content-Length")
        else:
            self.expected_content_length -= len(body)
        if body:
            self.transport.writelines((head, body))  # one writev, no copy of the body
        else:
            self.transport.write(head)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()
