"""What the gateway records about each request: metrics, its log line, its trace spans.

Two places feed it. The endpoint wrapper calls `begin` when a request arrives and
`finish` when it has ended (for a stream: when its last byte is sent, through
`observed_stream`). Dispatch runs every upstream call through `attempt`, which adds
it to the request's `Exchange` (found through a context variable, so dispatch needs
no extra arguments) and gives it a child span; dispatch counts the call in the
metrics itself, where it knows the failure class it acts on.

Everything is recorded once, at the end, from the `Exchange`: one log line, one set of
metric updates, one span end, one request-ledger row. Label values are config names only.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway import log, metrics, tracing
from gateway.errors import GatewayError
from gateway.packs.engine import UpstreamFailure

if TYPE_CHECKING:
    from gateway.endpoints.handler import Exchange
    from gateway.snapshot import Route, Target

T = TypeVar("T")

CURRENT: ContextVar[Exchange] = ContextVar("gateway_exchange")
_pid = [os.getpid()]  # for the log line; a forked worker learns its own below
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))
DONE = b"data: [DONE]\n\n"
# How a stream that ended in an error ends: OpenAI's error frame, or Anthropic's error event (/v1/messages).
ERROR_EVENT = (b'data: {"error"', b"event: error\n")


def begin(exchange: Exchange, request: Request) -> tuple[Token[Exchange], Any]:
    """A request arrived: count it in flight, open its span, make it findable by `attempt`."""
    metrics.child(metrics.IN_FLIGHT, exchange.endpoint).inc()
    trace_token = None
    if tracing.enabled:
        exchange.span, trace_token = tracing.start_request(exchange.endpoint, request.headers)
    return CURRENT.set(exchange), trace_token


def leave(tokens: tuple[Token[Exchange], Any]) -> None:
    """The endpoint function returned: undo `begin`'s context changes (in the same task)."""
    CURRENT.reset(tokens[0])
    if tokens[1] is not None:
        tracing.detach(tokens[1])


async def attempt(route: Route, target: Target, call: Awaitable[T]) -> T:
    """Run one upstream call, adding its time to the request and giving it a span."""
    exchange = CURRENT.get(None)
    if exchange is not None:
        if exchange.last_target and exchange.last_target != target.id:
            exchange.fallbacks += 1
        exchange.last_target = target.id
    span = token = None
    if tracing.enabled:
        span, token = tracing.start_attempt(route.alias, target)
    outcome, status = "ok", None
    started = time.perf_counter()
    try:
        return await call
    except UpstreamFailure as failure:
        outcome, status = failure.fallback_class or "client_error", failure.status
        raise
    except TimeoutError:
        outcome = "timeout"
        raise
    except asyncio.CancelledError:
        outcome = "deadline"  # the route's deadline (or the client) ended the call
        raise
    except (aiohttp.ClientError, OSError, ValueError):
        outcome = "connection"
        raise
    except GatewayError as exc:
        outcome = "client_error" if exc.status < 500 else "error"
        raise
    except BaseException:
        outcome = "error"
        raise
    finally:
        seconds = time.perf_counter() - started
        if exchange is not None:
            exchange.attempts += 1
            exchange.upstream_seconds += seconds
        if span is not None:
            tracing.detach(token)
            if outcome == "ok" and exchange is not None:
                exchange.attempt_span = span  # ended at the request's end, with its token counts
            else:
                tracing.end_attempt(span, outcome, status)


def _usage(exchange: Exchange) -> tuple[int | None, int | None, float | None]:
    outcome = exchange.outcome
    usage = getattr(outcome, "usage", None)
    if not isinstance(usage, dict):
        return None, None, None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    prompt = prompt if isinstance(prompt, int) and prompt >= 0 else None
    completion = completion if isinstance(completion, int) and completion >= 0 else None
    target = getattr(outcome, "target", None)
    cost = target.price.cost(prompt or 0, completion or 0) if target is not None else None
    return prompt, completion, cost


def finish(exchange: Exchange, status: int) -> None:
    """The request has ended: write its log line, update its metrics, end its span."""
    now = time.perf_counter()
    ready = exchange.ready or now
    overhead = max(ready - exchange.started - exchange.upstream_seconds, 0.0)
    duration = now - exchange.started
    endpoint, route, target, key = exchange.endpoint, exchange.route, exchange.target, exchange.key
    prompt, completion, cost = _usage(exchange)

    metrics.child(metrics.IN_FLIGHT, endpoint).dec()
    metrics.request_ended(endpoint, route, target, status, duration, overhead)
    if exchange.traffic is not None:
        exchange.traffic.request_ended(exchange, status, duration)
    if prompt or completion or cost:
        metrics.usage_counted(key, route, target, prompt or 0, completion or 0, cost or 0.0)
    first_byte_ms = None
    if exchange.first_byte:
        first_byte = exchange.first_byte - exchange.started
        first_byte_ms = round(first_byte * 1000, 2)
        metrics.child(metrics.FIRST_BYTE_SECONDS, route, target).observe(first_byte)

    fields: dict[str, Any] = {
        "request_id": exchange.request_id,
        "endpoint": endpoint,
        "key": key,
        "route": route,
        "target": target,
        "attempts": exchange.attempts,
        "fallbacks": exchange.fallbacks,
        "status": status,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cost_usd": round(cost, 8) if cost is not None else None,
        "duration_ms": round(duration * 1000, 2),
        "overhead_ms": round(overhead * 1000, 2),
        "upstream_ms": round(exchange.upstream_seconds * 1000, 2),
        "cache": exchange.cache,
        "config": exchange.config,
        "pid": _pid[0],
    }
    if exchange.stream_end:
        fields["stream"] = exchange.stream_end
        fields["first_byte_ms"] = first_byte_ms
    error = exchange.error
    if error is not None:
        fields["error"] = error.code or error.type
        fields["error_message"] = error.message
        if "attempts" in error.extra:
            fields["failures"] = error.extra["attempts"]
    if exchange.admission is not None and exchange.admission.used is not None:
        fields["cost_usd"] = round(exchange.admission.used[2], 8)  # what the budget was charged, estimates included
    log.request_line(fields, "WARNING" if status >= 500 else "INFO")
    if exchange.ledger is not None:
        exchange.ledger.add(exchange, status, duration)  # no I/O: a row onto the writer's queue

    if exchange.span is not None:
        if exchange.attempt_span is not None:
            tracing.set_usage(exchange.attempt_span, prompt, completion)
            tracing.end_attempt(exchange.attempt_span, "ok", None)
        tracing.end_request(exchange.span, f"{endpoint} {route}".strip(), {
            "gateway.request_id": exchange.request_id,
            "gateway.route": route,
            "gateway.target": target,
            "gateway.key": key,
            "gateway.attempts": exchange.attempts,
            "gateway.config": exchange.config,
            "gateway.cache": exchange.cache,
            "gateway.stream": exchange.stream_end or None,
            "gateway.cost_usd": cost,
            "http.response.status_code": status,
            "gen_ai.usage.input_tokens": prompt,
            "gen_ai.usage.output_tokens": completion,
        }, status >= 500 or exchange.stream_end == "error")


class _ObservedStream(StreamingResponse):
    """A streamed answer whose end is the request's end: `finish` runs when it stops,
    however it stops (complete, cut by an upstream error, or the client gone)."""

    def __init__(self, inner: StreamingResponse, exchange: Exchange) -> None:
        self.__dict__.update(inner.__dict__)
        self._exchange = exchange
        self._inner = inner.body_iterator
        self.body_iterator = self._relay()

    async def _relay(self) -> AsyncIterator[bytes | str | memoryview]:
        exchange = self._exchange
        last: Any = b""
        try:
            async for chunk in self._inner:
                if not exchange.first_byte:
                    exchange.first_byte = time.perf_counter()
                last = chunk
                yield chunk
            ended_with_error = isinstance(last, bytes) and last.startswith(ERROR_EVENT)
            exchange.stream_end = "error" if ended_with_error else "done"
        finally:
            await _close(self._inner)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await _close(self.body_iterator)
            await _close(self._inner)
            self._exchange.stream_end = self._exchange.stream_end or "disconnected"
            finish(self._exchange, self.status_code)


async def _close(iterator: Any) -> None:
    """Close an async generator now, so the upstream connection is released at once."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except (RuntimeError, Exception):
        pass


def observed_stream(response: StreamingResponse, exchange: Exchange) -> StreamingResponse:
    return _ObservedStream(response, exchange)
