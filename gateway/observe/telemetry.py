"""What the gateway records about each request: metrics, its log line, its trace spans.

The endpoint wrapper calls `begin` when a request arrives and `finish` when it has
ended (for a stream: when its last byte is sent). In between, the request path writes
what it learns into the request's `Exchange` (the route, the target, each upstream
call, the tokens settled), and everything is recorded once, at the end, from it: one
log line, one set of metric updates, one span end, one request-ledger row. Label values
are config names only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from gateway.observe import log, metrics, tracing
from gateway.observe.exchange import Exchange

_pid = [os.getpid()]  # for the log line; a forked worker learns its own below
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def begin(exchange: Exchange, headers: Mapping[str, str]) -> Any:
    """A request arrived: count it in flight and open its span; returns what `leave` undoes."""
    metrics.in_flight(exchange.endpoint).inc()
    if not tracing.enabled:
        return None
    exchange.span, token = tracing.start_request(exchange.endpoint, headers)
    return token


def leave(token: Any) -> None:
    """The endpoint function returned: undo `begin`'s context change (in the same task)."""
    if token is not None:
        tracing.detach(token)


def finish(exchange: Exchange, status: int) -> None:
    """The request has ended: write its log line, update its metrics, end its span."""
    now = time.perf_counter()
    ready = exchange.ready or now
    overhead = max(ready - exchange.started - exchange.upstream_seconds, 0.0)
    duration = now - exchange.started
    endpoint, route, target, key = exchange.endpoint, exchange.route, exchange.target, exchange.key
    prompt, completion, cost = exchange.prompt_tokens, exchange.completion_tokens, exchange.cost_usd

    metrics.in_flight(endpoint).dec()
    metrics.request_ended(endpoint, route, target, status, duration, overhead)
    if exchange.traffic is not None:
        exchange.traffic.request_ended(exchange, status, duration)
    if prompt or completion or cost:
        metrics.usage_counted(key if exchange.per_key_metrics else "", route, target, prompt or 0, completion or 0,
                              cost or 0.0)
    first_byte_ms = None
    if exchange.first_byte:
        first_byte = exchange.first_byte - exchange.started
        first_byte_ms = _ms(first_byte)
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
        "cost_usd": _cost(exchange),
        "duration_ms": _ms(duration),
        "overhead_ms": _ms(overhead),
        "upstream_ms": _ms(exchange.upstream_seconds),
        "cache": exchange.cache,
        "config": exchange.config,
        "pid": _pid[0],
    }
    if exchange.user:
        fields["user"] = exchange.user
    if exchange.plan:
        fields["plan"] = exchange.plan
    if exchange.stream_end:
        fields["stream"] = exchange.stream_end
        fields["first_byte_ms"] = first_byte_ms
    error = exchange.error
    if error is not None:
        fields["error"] = error.code or error.type
        fields["error_message"] = error.message
        if "attempts" in error.extra:
            fields["failures"] = error.extra["attempts"]
        fields.update(error.logged)  # the providers' own messages, which the client may not see
    if exchange.unpriced:
        fields["unpriced"] = True
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
            "gateway.user": exchange.user,
            "gateway.plan": exchange.plan,
            "gateway.attempts": exchange.attempts,
            "gateway.config": exchange.config,
            "gateway.pipeline.cache": exchange.cache,
            "gateway.stream": exchange.stream_end or None,
            "gateway.cost_usd": cost,
            "http.response.status_code": status,
            "gen_ai.usage.input_tokens": prompt,
            "gen_ai.usage.output_tokens": completion,
        }, status >= 500 or exchange.stream_end == "error")


def _ms(seconds: float) -> float:
    """Milliseconds to two decimals, for the log line: `round(x, 2)` goes through a decimal
    conversion, and a request line has four of these."""
    return int(seconds * 100_000.0 + 0.5) / 100


def _cost(exchange: Exchange) -> float | None:
    """The request's cost for its log line: what the budget was charged (estimates included)
    once settled, else the provider's figures; None (not free: unknown) when the model has no price."""
    if exchange.unpriced:
        return None
    cost = exchange.charged[2] if exchange.charged is not None else exchange.cost_usd
    return round(cost, 8) if cost is not None else None
