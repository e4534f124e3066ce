"""What one client connection may cost a worker: header size and count, how long it may
take to send its headers and its body, how long it may idle between requests, and how
many connections a worker holds at once.

uvicorn's httptools protocol has no header limits and starts no timer until a first
response, so a client could send a 50 MB header or hold thousands of silent sockets.
`BoundedHttpProtocol` is that protocol with the limits added at the parser's own
callbacks (httptools/llhttp still does all the parsing): bytes are counted as they are
fed during the header phase, the headers' size and count are checked once they are
complete, and one timer per connection covers whichever phase the connection is in.
Every limit is an environment variable (or a `gateway serve` flag), documented in
docs/security.md.

The idle time between two requests of a kept-alive connection is timed by that same
timer. uvicorn arms a loop timer of its own after every answer and cancels it when the
next request's first bytes arrive: a libuv timer made, started, stopped and closed for
every request (about 1.9 µs each, measured), for a timeout that rarely fires.

It also cancels the handler of a request whose client hangs up before its answer has
started (`gateway.api.disconnect`), which costs nothing per request, and writes each
answer's head the cheaper way of `gateway.server.response_head`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass

from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from gateway.api import disconnect
from gateway.server.response_head import GatewayCycle

MAX_HEADER_BYTES_ENV = "GATEWAY_MAX_HEADER_BYTES"
MAX_HEADERS_ENV = "GATEWAY_MAX_HEADERS"
HEADER_TIMEOUT_ENV = "GATEWAY_HEADER_TIMEOUT"
BODY_TIMEOUT_ENV = "GATEWAY_BODY_TIMEOUT"
KEEPALIVE_TIMEOUT_ENV = "GATEWAY_KEEPALIVE_TIMEOUT"
MAX_CONNECTIONS_ENV = "GATEWAY_MAX_CONNECTIONS"


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_header_bytes: int = 64 * 1024  # request line and every header together
    max_headers: int = 100
    header_timeout: float = 10.0  # from a connection's (or a request's) first byte to its last header
    body_timeout: float = 30.0  # the longest silence while a request body is arriving
    keepalive_timeout: float = 5.0  # idle time between requests on one connection
    max_connections: int = 4096  # per worker; more are closed as soon as they are accepted

    @classmethod
    def from_env(cls) -> ConnectionLimits:
        """The limits from GATEWAY_* variables (see the module's docstring), else the defaults."""
        env = os.environ
        base = cls()
        return cls(
            max_header_bytes=int(env.get(MAX_HEADER_BYTES_ENV, base.max_header_bytes)),
            max_headers=int(env.get(MAX_HEADERS_ENV, base.max_headers)),
            header_timeout=float(env.get(HEADER_TIMEOUT_ENV, base.header_timeout)),
            body_timeout=float(env.get(BODY_TIMEOUT_ENV, base.body_timeout)),
            keepalive_timeout=float(env.get(KEEPALIVE_TIMEOUT_ENV, base.keepalive_timeout)),
            max_connections=int(env.get(MAX_CONNECTIONS_ENV, base.max_connections)),
        )


class _TooLarge(Exception):
    """Raised from a parser callback to stop parsing a request whose headers are over a limit."""


def _nothing() -> None:
    pass


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with `ConnectionLimits` (see the module's docstring).

    The limits cost next to nothing per request. Header size and count are checked once,
    when the headers are complete (until then the raw bytes fed are the bound). The phase
    timeouts share one timer per connection that is never cancelled on the request path:
    a phase only moves the connection's deadline, and the timer, when it fires, either
    acts on a deadline that has passed or sleeps again until the current one. It is never
    scheduled further ahead than the shortest timeout, so a later, shorter phase never
    needs it moved earlier."""

    limits = ConnectionLimits.from_env()
    # How far ahead the timer is ever set: the shortest timeout, so that arming any phase
    # (headers, body, idle) finds the timer already due no later than its deadline and
    # leaves it alone. Not below a tenth of a second, so that a zero or tiny timeout is met
    # by moving the timer earlier rather than by a timer that fires on every turn of the loop.
    cadence = max(min(limits.header_timeout, limits.body_timeout, limits.keepalive_timeout), 0.1)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._in_headers = True  # bytes fed now are a request line or headers
        self._in_body = False
        self._raw_bytes = 0  # bytes fed since the last request ended, while no body is arriving
        self._too_large = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # when the timer fires
        self._deadline: float | None = None  # when the current phase runs out; None: no phase timed
        self._expired: Callable[[], None] = _nothing  # what to do then
        if len(self.connections) > self.limits.max_connections:
            transport.abort()  # over the worker's cap: refused before it costs anything
            return
        self._arm(self.limits.header_timeout, self._headers_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self._cancel_handler()
        super().connection_lost(exc)

    def _cancel_handler(self) -> None:
        """The client is gone before its answer started: cancel the handler working for it
        (gateway.api.disconnect), so its upstream call stops and nothing is retried."""
        cycle = self.cycle
        if cycle is None or cycle.response_started or cycle.response_complete:
            return
        task = cycle.scope.get(disconnect.TASK)  # type: ignore[call-overload]
        if task is not None and not task.done():
            cycle.scope[disconnect.GONE] = True  # type: ignore[literal-required]
            task.cancel()

    def data_received(self, data: bytes) -> None:
        if not self._in_body:  # a request line or headers, or (kept alive) the next request's start
            self._raw_bytes += len(data)
        super().data_received(data)
        if self._too_large or (self._in_headers and self._raw_bytes > self.limits.max_header_bytes):
            self._refuse_headers()
        elif self._in_body:
            self._arm(self.limits.body_timeout, self._body_too_slow)  # the body moved: its clock restarts

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            return  # the parser stopped on our own limit: answered with 431 in data_received
        super().send_400_response(msg)

    # Parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_headers:  # the next request on a kept-alive connection
            self._in_headers = True
            self._arm(self.limits.header_timeout, self._headers_too_slow)

    def on_headers_complete(self) -> None:
        headers = self.headers
        limits = self.limits
        if len(headers) > limits.max_headers or (
            len(self.url) + sum(len(name) + len(value) for name, value in headers) > limits.max_header_bytes
        ):
            self._too_large = True
            raise _TooLarge  # httptools turns it into a parser error; data_received answers 431
        self.scope[disconnect.SERVER_WATCHES] = True  # type: ignore[literal-required]  # see _cancel_handler
        self._in_headers = False
        self._in_body = True
        self._arm(limits.body_timeout, self._body_too_slow)
        super().on_headers_complete()
        cycle = self.cycle
        if type(cycle) is RequestResponseCycle:
            # The same cycle with a cheaper way to write the answer's head (response_head).
            # Its task has been created but not started: the first `send` is already ours.
            cycle.__class__ = GatewayCycle

    def on_message_complete(self) -> None:
        self._in_body = False
        self._raw_bytes = 0  # what arrives next is the next request's
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and not self.pipeline:
            # Answered before its body had all arrived (a 413 on its length, a refused key):
            # the connection is idle from here, and timed as such.
            self._time_idle()
        else:
            self._deadline = None  # nothing timed until the answer is sent or the next request begins
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """uvicorn's, with the idle phase timed by the connection's timer (see the module's
        docstring) instead of a loop timer of its own: an answer was sent; start the next
        pipelined request, or time the wait for one."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif not self._in_headers and not self._in_body:  # the next request has not begun
            self._time_idle()

    # Limits ------------------------------------------------------------------------------

    def _arm(self, seconds: float, expired: Callable[[], None]) -> None:
        """Time the phase that starts now: `expired` runs if it lasts more than `seconds`."""
        loop = self.loop
        deadline = loop.time() + seconds
        self._deadline, self._expired = deadline, expired
        if self._timer is None or self._timer_at > deadline:
            self._schedule(deadline)

    def _schedule(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = min(deadline, self.loop.time() + self.cadence)
        self._timer = self.loop.call_at(self._timer_at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return  # no phase is timed: the next one schedules a timer again
        if self.loop.time() < deadline:
            self._schedule(deadline)
            return
        self._deadline = None
        self._expired()

    def _stop_timer(self) -> None:
        self._deadline = None
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.cancel()
            self._timer = None

    def _refuse_headers(self) -> None:
        self._in_headers = self._in_body = False
        self._stop_timer()
        self._answer(431, "Request Header Fields Too Large")

    def _headers_too_slow(self) -> None:
        if self.transport.is_closing():
            return
        if self._raw_bytes == 0:
            self.transport.close()  # an idle connection: nothing to answer
        else:
            self._answer(408, "Request Timeout")

    def _time_idle(self) -> None:
        """The connection waits for its next request: uvicorn's keep-alive time (the limits' own)."""
        self._arm(self.timeout_keep_alive, self._idle_too_long)

    def _idle_too_long(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()  # kept alive with nothing asked for the idle time: closed quietly

    def _body_too_slow(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()  # the request's handler sees the client gone (499)

    def _answer(self, status: int, text: str) -> None:
        """A plain answer written straight to the socket, then the connection closed."""
        if self.transport.is_closing():
            return
        body = f"{text}\n".encode()
        self.transport.write(b"".join([
            STATUS_LINE[status],
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]))
        self.transport.close()

