"""The wrapper every endpoint runs in: request id, the one place errors become bodies,
response headers, and the one place a request ends (metrics, log line, span: see
`gateway.observe.telemetry`; a stream ends when its last byte is sent).

A plain function wrapper rather than Starlette's BaseHTTPMiddleware, which costs a
task and a queue per request.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import orjson
from loguru import logger
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.api import disconnect
from gateway.api.headers import IndexedHeaders
from gateway.errors import ClientGone, GatewayError, InternalError
from gateway.ids import random_hex
from gateway.observe import telemetry
from gateway.observe.exchange import Exchange

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id(request: Request, headers: Mapping[str, str] | None = None) -> str:
    """The client's id when it is safe to echo, else 32 random hex characters (the shape
    of a uuid4's hex, without building a UUID object or a system call per request).
    `headers`: the request's own, when the caller holds them already."""
    given = (request.headers if headers is None else headers).get("x-request-id")
    return given if given and _SAFE_ID.match(given) else random_hex()


class JSONAnswer(Response):
    """A JSON body and its headers, written straight into the raw header list: Starlette's
    own constructor scans the headers for content-length and content-type again, which
    the gateway's answers (a dozen headers of its own) paid on every request."""

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int = 200, headers: Mapping[str, str] | None = None) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        raw = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
        if headers:
            names = _NAMES
            for name, value in headers.items():
                encoded = names.get(name)
                if encoded is None:
                    encoded = _encoded_name(name)
                raw.append((encoded, value.encode("latin-1")))
        self.raw_headers = raw


# Header names as sent, by the name a handler gave: the same dozen names (the gateway's
# own, rate limits) answer after answer, so each is lowered and encoded once.
_NAMES: dict[str, bytes] = {}


def _encoded_name(name: str) -> bytes:
    encoded = name.lower().encode("latin-1")
    if len(_NAMES) < 1024:  # names come from the gateway and its packs; bound it anyway
        _NAMES[name] = encoded
    return encoded


def json_response(data: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONAnswer(orjson.dumps(data), status, headers)


# How an endpoint writes an error for its clients: (error, request id) -> body.
# OpenAI's shape unless the endpoint speaks another API (Anthropic's /v1/messages).
ErrorBody = Callable[[GatewayError, str], bytes]
# For an endpoint both APIs call (/v1/models), the shape is chosen per request.
ErrorShape = Callable[[Request], ErrorBody]


def openai_error_body(exc: GatewayError, request_id: str) -> bytes:
    return exc.json()


def error_response(exc: GatewayError, request_id: str, error_body: ErrorBody = openai_error_body) -> Response:
    headers = {"x-request-id": request_id, **exc.headers}
    return JSONAnswer(error_body(exc, request_id), exc.status, headers)


Handler = Callable[[Request, Exchange], Awaitable[Response]]


class Endpoint:
    """One endpoint as a plain ASGI app: Starlette's `Route` mounts it as it is.

    A function endpoint would be wrapped by Starlette in its own request/response and
    exception-handling layers; every error here already becomes a body in `__call__`, so those
    layers would only cost time on each request.
    """

    def __init__(self, name: str, handler: Handler, error_body: ErrorBody, error_shape: ErrorShape | None = None) -> None:
        self.name = name
        self.handler = handler
        self.error_body = error_body
        self.error_shape = error_shape
        self.__name__ = handler.__name__
        self.__doc__ = handler.__doc__

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the handler's response, or the error it raised as a body in the endpoint's
        shape; nothing when the client left before its answer was ready. One coroutine for
        the whole request: every layer of them is passed through on each resumption."""
        request = Request(scope, receive)
        request._headers = headers = IndexedHeaders(scope)  # what `request.headers` returns (Starlette caches it there)
        name, error_body = self.name, self.error_body
        if self.error_shape is not None:
            error_body = self.error_shape(request)
        exchange = Exchange(request_id(request, headers), time.perf_counter(), name)
        runtime = getattr(request.app.state, "runtime", None)
        if runtime is not None:
            exchange.config = runtime.snapshot.version
            exchange.per_key_metrics = runtime.snapshot.per_key_metrics
            exchange.traffic = runtime.traffic
            exchange.ledger = runtime.ledger
        tokens = telemetry.begin(exchange, headers)
        watch = disconnect.ClientWatch(asyncio.current_task(), scope)
        try:
            with watch:
                response = await self.handler(request, exchange)
            # Appended rather than set: no handler writes this header, so there is nothing to replace.
            response.raw_headers.append((b"x-request-id", exchange.request_id.encode()))
        except GatewayError as exc:
            exchange.error = exc
            response = error_response(exc, exchange.request_id, error_body)
        except Exception:
            # A bug. The client gets a plain 500 without internals; the log gets the trace.
            logger.opt(exception=True).bind(event="error", request_id=exchange.request_id).error(
                "unhandled error in {}", name)
            exchange.error = InternalError("internal error in the gateway")
            response = error_response(exchange.error, exchange.request_id, error_body)
        except BaseException as exc:
            telemetry.leave(tokens)
            # Cancelled: the client went away (or the server is stopping).
            exchange.error = exchange.error or ClientGone("the client disconnected before its answer was ready")
            telemetry.finish(exchange, 499)
            if isinstance(exc, asyncio.CancelledError) and watch.cancelled_by_client():
                return  # nothing is left to send
            raise
        telemetry.leave(tokens)
        exchange.ready = time.perf_counter()
        if isinstance(response, StreamingResponse):
            await ObservedStream(response, exchange)(scope, receive, send)
            return
        telemetry.finish(exchange, response.status_code)
        await response(scope, receive, send)


def endpoint(name: str, error_body: ErrorBody = openai_error_body,
             error_shape: ErrorShape | None = None) -> Callable[[Handler], Endpoint]:
    def wrap(handler: Handler) -> Endpoint:
        return Endpoint(name, handler, error_body, error_shape)

    return wrap


class ObservedStream(StreamingResponse):
    """A streamed answer whose end is the request's end: `telemetry.finish` runs when it
    stops, however it stops (complete, cut, or the client gone). How it ended is already
    on the exchange (the pipeline read it from the stream's `End`); this adds the time of
    the first byte and the end itself."""

    def __init__(self, inner: StreamingResponse, exchange: Exchange) -> None:
        self.__dict__.update(inner.__dict__)
        self._exchange = exchange
        self._inner = inner.body_iterator
        self.body_iterator = self._relay()

    async def _relay(self) -> AsyncIterator[bytes | str | memoryview]:
        exchange = self._exchange
        try:
            async for chunk in self._inner:
                if not exchange.first_byte:
                    exchange.first_byte = time.perf_counter()
                yield chunk
        finally:
            await _close(self._inner)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await _close(self.body_iterator)
            await _close(self._inner)
            self._exchange.stream_end = self._exchange.stream_end or "disconnected"
            telemetry.finish(self._exchange, self.status_code)


async def _close(iterator: Any) -> None:
    """Close an async generator now, so the upstream connection is released at once."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        pass
