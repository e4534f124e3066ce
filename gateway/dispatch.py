"""Calling the candidates in order until one answers.

For each candidate the pack renders the upstream request, `Upstream` sends it, and a
failure is classified (rate_limit, server_error, timeout, connection, context_length,
content_filter). A transient failure (rate limit, server error, timeout, connection) is
retried on the same target up to `retry.attempts` tries, with exponential backoff and
jitter, or after the upstream's `Retry-After` when that fits the deadline. Then a class
the route lists in `fallback_on` moves on to the next candidate; anything else goes
straight back to the client. A client error (a bad request) is never retried and never
falls back. The route's `timeout` bounds all attempts together, backoff waits included.

Every call reports to the target's circuit breaker and, on success or timeout, to its
latency average; those live on the `Runtime` and outlive config reloads.

Streams are committed only once the first chunk has arrived: until then a failing
target is replaced exactly as for a plain request, so the client never sees it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson

from gateway import metrics, output_check, telemetry
from gateway.circuit import TRIPPING_CLASSES
from gateway.errors import AllTargetsFailed, DeadlineExceeded, GatewayError, NoTargetAvailable
from gateway.packs.engine import UpstreamFailure
from gateway.redact import redact
from gateway.runtime import Runtime
from gateway.snapshot import Retry, Route, Target
from gateway.upstream import Upstream, lines

DONE = b"data: [DONE]\n\n"
NATIVE_END = b"event: message_stop\n"  # how an Anthropic event stream ends when it is complete
# Worth another try on the same target; context_length and content_filter are not.
TRANSIENT_CLASSES = frozenset({"rate_limit", "server_error", "timeout", "connection"})
# Rejected provider credentials count as the target's outage (server_error) and fall
# back, but a second try a moment later would be rejected the same way.
_NOT_AGAIN = frozenset({401, 403})


@dataclass(slots=True)
class Attempt:
    target: str
    status: int | None
    fallback_class: str | None
    message: str
    retry_after: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "status": self.status, "class": self.fallback_class, "message": self.message}


@dataclass(slots=True)
class Outcome:
    """What the endpoint needs to answer: who answered, how, and at what cost in time."""

    target: Target | None = None
    attempts: list[Attempt] = field(default_factory=list)
    upstream_seconds: float = 0.0
    answer: dict[str, Any] | None = None
    stream: AsyncIterator[bytes] | None = None
    usage: dict[str, Any] | None = None
    # Set when the target was sent the client's own (Anthropic) body: the provider's answer
    # as it came, or `stream` carries its events rather than OpenAI frames. `answer` and
    # `usage` stay in OpenAI's shape either way, for the cache and accounting.
    native_answer: bytes | None = None
    native_stream: bool = False
    # Characters of generated text a stream has sent so far: the completion estimate when
    # the upstream reports no usage, counted as the chunks pass rather than re-read later.
    stream_chars: int = 0
    # The answering provider's rate-limit headers under OpenAI's names (its pack's `rate_limits`).
    rate_limits: dict[str, str] | None = None

    @property
    def calls(self) -> int:
        return len(self.attempts) + (1 if self.target is not None else 0)


# Asked right before a candidate is tried: False skips it (its provider is at its own quota).
Gate = Callable[[Target], Awaitable[bool]]


async def _always(target: Target) -> bool:
    return True


async def dispatch_chat(
    runtime: Runtime, route: Route, candidates: tuple[Target, ...], body: dict[str, Any], stream: bool,
    native: NativeCall | None = None, gate: Gate = _always,
) -> Outcome:
    """`native` (for an Anthropic client's request) takes the targets that speak the client's
    own API; every other target gets `body`, the OpenAI-shaped translation, as usual."""
    upstream = runtime.upstream

    def call(target: Target, outcome: Outcome) -> Any:
        if native is not None and native.speaks(target):
            return native.call(upstream, target, outcome)
        if stream:
            return _open_stream(upstream, target, body, outcome)
        return _chat_once(upstream, target, body, outcome)

    # A route with validate_output checks answers to json_schema requests (gateway.output_check).
    outcome = await _run(runtime, route, candidates, output_check.guarded(route, body, call), gate)
    return output_check.checked(route, body, outcome)


class NativeCall(Protocol):
    """A request that some targets take in the client's own wire format (see `anthropic_native`)."""

    def speaks(self, target: Target) -> bool: ...

    def call(self, upstream: Upstream, target: Target, outcome: Outcome) -> Awaitable[None]: ...


async def dispatch_embeddings(
    runtime: Runtime, route: Route, candidates: tuple[Target, ...], body: dict[str, Any], gate: Gate = _always
) -> Outcome:
    upstream = runtime.upstream
    return await _run(runtime, route, candidates, lambda t, o: _embeddings_once(upstream, t, body, o), gate)


Call = Callable[[Target, Outcome], Any]


async def _run(
    runtime: Runtime, route: Route, candidates: tuple[Target, ...], call: Call, gate: Gate = _always
) -> Outcome:
    if not candidates:
        raise NoTargetAvailable(f"no target of '{route.alias}' can take this request")
    outcome = Outcome()
    deadline = asyncio.get_running_loop().time() + route.timeout
    watch = runtime.deadlines.watch(deadline)
    try:
        for target in candidates:
            # The plan saw this circuit a moment ago; another request may have tripped it
            # since, or taken the single half-open probe.
            if not runtime.circuits.allow(target):
                continue
            if not await gate(target):
                continue  # its provider is at its own quota: skipped, never waited for
            if await _try_target(runtime, route, target, outcome, call, deadline):
                outcome.target = target
                if outcome.stream is not None:
                    outcome.stream = _watched(outcome.stream, target, runtime)
                return outcome
            metrics.fell_back(route.alias)
    except asyncio.CancelledError:
        if not watch.timed_out():
            raise  # the client left (or the server is stopping): not the deadline
        raise DeadlineExceeded(
            f"'{route.alias}' did not answer within its {route.timeout:g}s deadline",
            extra={"attempts": [a.as_dict() for a in outcome.attempts]},
        ) from None
    finally:
        runtime.deadlines.release(watch)
    if not outcome.attempts:
        raise NoTargetAvailable(f"no target of '{route.alias}' can take this request (skipped: open circuits or provider limits)")
    raise AllTargetsFailed(
        f"every target of '{route.alias}' failed",
        extra={"attempts": [a.as_dict() for a in outcome.attempts]},
    )


async def _try_target(
    runtime: Runtime, route: Route, target: Target, outcome: Outcome, call: Call, deadline: float
) -> bool:
    """Up to `retry.attempts` tries on one target. True: it answered; False: fall back."""
    loop = asyncio.get_running_loop()
    tries = route.retry.attempts
    for number in range(1, tries + 1):
        failure = await _attempt(runtime, route, target, outcome, call, deadline)
        if failure is None:
            return True
        if number == tries or failure.fallback_class not in TRANSIENT_CLASSES or failure.status in _NOT_AGAIN:
            break
        wait = backoff_delay(route.retry, number)
        if failure.retry_after is not None:
            wait = max(wait, failure.retry_after)
        if loop.time() + wait >= deadline:
            break  # the wait does not fit the deadline: better spent on the next target
        await asyncio.sleep(wait)
        if not runtime.circuits.allow(target):
            break
    if failure.fallback_class in route.fallback_on:
        return False
    raise _final_error(route, failure, outcome)


def backoff_delay(retry: Retry, number: int, rng: random.Random | None = None) -> float:
    """Wait before try `number + 1`: backoff doubled per try, capped, then jittered.

    Equal jitter: a uniform draw in [delay/2, delay], so clients that failed together do
    not retry together, while the wait never collapses to zero.
    """
    delay = min(retry.max_backoff, retry.backoff * (2 ** (number - 1)))
    return delay / 2 + (rng or random).random() * delay / 2


async def _attempt(
    runtime: Runtime, route: Route, target: Target, outcome: Outcome, call: Call, deadline: float
) -> Attempt | None:
    """One call to one target. None when it answered, else the failed `Attempt` (recorded).

    A client error (no fallback class) is raised at once: it is the request's fault and
    no retry or other target would change it.
    """
    started = time.perf_counter()
    try:
        await telemetry.attempt(route, target, call(target, outcome))
    except UpstreamFailure as failure:
        message = redact(str(failure.error.get("message", "")), (target.api_key,))
        attempt = Attempt(target.id, failure.status, failure.fallback_class, message, failure.retry_after)
        if failure.fallback_class is None:
            outcome.upstream_seconds += time.perf_counter() - started
            outcome.attempts.append(attempt)
            runtime.circuits.record_success(target)  # it answered: the target is healthy
            metrics.upstream_called(route.alias, target.id, "client_error", time.perf_counter() - started)
            raise _client_error(failure, message) from None
    except TimeoutError:
        # aiohttp's connect/read timeouts; the route deadline arrives as a cancellation instead.
        attempt = Attempt(target.id, None, "timeout", f"{target.id} did not answer in time")
        runtime.latency.observe(target.id, time.perf_counter() - started)
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        attempt = Attempt(target.id, None, "connection", f"could not reach {target.id} ({type(exc).__name__})")
    except asyncio.CancelledError:
        # The route deadline (or the client leaving) cut this call short. Past the deadline
        # it counts against the target like any timeout: a hang longer than the deadline
        # must still open the circuit.
        elapsed = time.perf_counter() - started
        outcome.upstream_seconds += elapsed
        outcome.attempts.append(Attempt(target.id, None, "timeout", f"{target.id} was still working at the deadline"))
        if asyncio.get_running_loop().time() >= deadline:
            runtime.circuits.record_failure(target)
            runtime.latency.observe(target.id, elapsed)
            metrics.upstream_called(route.alias, target.id, "timeout", elapsed)
        raise
    else:
        elapsed = time.perf_counter() - started
        outcome.upstream_seconds += elapsed
        if outcome.stream is None:  # a stream's verdict waits for its end (see _watched)
            runtime.circuits.record_success(target)
        runtime.latency.observe(target.id, elapsed)
        metrics.upstream_called(route.alias, target.id, "ok", elapsed)
        return None
    elapsed = time.perf_counter() - started
    outcome.upstream_seconds += elapsed
    outcome.attempts.append(attempt)
    metrics.upstream_called(route.alias, target.id, attempt.fallback_class or "error", elapsed)
    if attempt.fallback_class in TRIPPING_CLASSES:
        runtime.circuits.record_failure(target)
    else:
        runtime.circuits.record_success(target)
    return attempt


def _final_error(route: Route, attempt: Attempt, outcome: Outcome) -> GatewayError:
    """A failure whose class the route does not fall back on: answer with it now."""
    status = attempt.status
    if status is not None and 400 <= status < 500 and attempt.fallback_class in _CLIENT_VISIBLE:
        headers = {"retry-after": str(max(1, round(attempt.retry_after)))} if attempt.retry_after else None
        type_ = "rate_limit_error" if attempt.fallback_class == "rate_limit" else "invalid_request_error"
        return GatewayError(
            attempt.message, status=status, type=type_, code=_class_code(attempt.fallback_class), headers=headers,
            extra={"attempts": [a.as_dict() for a in outcome.attempts]},
        )
    return AllTargetsFailed(
        f"{attempt.target} failed ({attempt.fallback_class}) and '{route.alias}' does not fall back on that",
        extra={"attempts": [a.as_dict() for a in outcome.attempts]},
    )


# 4xx classes that mean the same to the client as to us. A 401/403 is our provider
# credentials failing (server_error): the client gets a 502, never a 401 about a key it did not send.
_CLIENT_VISIBLE = frozenset({"rate_limit", "context_length", "content_filter"})


def _class_code(fallback_class: str | None) -> str | None:
    return {
        "rate_limit": "rate_limit_exceeded",
        "context_length": "context_length_exceeded",
        "content_filter": "content_filter",
    }.get(fallback_class or "")


async def _watched(frames: AsyncIterator[bytes], target: Target, runtime: Runtime) -> AsyncIterator[bytes]:
    """The committed stream, reporting its end to the circuit: [DONE] (message_stop for a
    native Anthropic stream) is a success, an error
    event a failure. A client that leaves early says nothing about the target."""
    last = b""
    try:
        async for frame in frames:
            last = frame
            yield frame
    finally:
        await frames.aclose()  # type: ignore[attr-defined]
    if last == DONE or last.startswith(NATIVE_END):
        runtime.circuits.record_success(target)
    else:
        runtime.circuits.record_failure(target)
        metrics.stream_cut(target.id)


def _client_error(failure: UpstreamFailure, message: str) -> GatewayError:
    """An upstream's refusal that is the client's doing goes back with the upstream's status."""
    error = failure.error
    status = failure.status if 400 <= failure.status < 500 else 502
    return GatewayError(
        message, status=status, type=str(error.get("type") or "invalid_request_error"),
        code=error.get("code"), param=error.get("param"),
    )


async def _read_answer(upstream: Upstream, target: Target, request: Any, outcome: Outcome) -> bytes:
    response = await upstream.send(request, target.connect_timeout, target.read_timeout)
    try:
        raw = await response.read()
    finally:
        response.release()
    if response.status >= 300:
        raise target.pack.error(target, response.status, raw, response.headers)
    outcome.rate_limits = target.pack.rate_limit_headers(response.headers)
    return raw


async def _chat_once(upstream: Upstream, target: Target, body: dict[str, Any], outcome: Outcome) -> None:
    pack = target.pack
    if pack.local:
        outcome.answer = pack.chat_local(target, body)
    else:
        raw = await _read_answer(upstream, target, pack.chat_request(target, body, False), outcome)
        outcome.answer = pack.chat_answer(target, body, raw)
    outcome.usage = outcome.answer.get("usage")


async def _embeddings_once(upstream: Upstream, target: Target, body: dict[str, Any], outcome: Outcome) -> None:
    pack = target.pack
    if pack.local:
        outcome.answer = pack.embeddings_local(target, body)
    else:
        raw = await _read_answer(upstream, target, pack.embeddings_request(target, body), outcome)
        outcome.answer = pack.embeddings_answer(target, body, raw)
    outcome.usage = outcome.answer.get("usage")


async def _open_stream(upstream: Upstream, target: Target, body: dict[str, Any], outcome: Outcome) -> None:
    """Start the stream and read its first chunk; only then is the target committed."""
    pack = target.pack
    response = None
    if pack.local:
        chunks = pack.chat_local_stream(target, body)
    else:
        response = await upstream.send(pack.chat_request(target, body, True), target.connect_timeout, target.read_timeout)
        if response.status >= 300:
            try:
                raw = await response.read()
            finally:
                response.release()
            raise pack.error(target, response.status, raw, response.headers)
        outcome.rate_limits = pack.rate_limit_headers(response.headers)
        chunks = pack.chat_stream(target, body, lines(response))
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        if response is not None:
            response.release()
        raise UpstreamFailure(502, {"message": f"{target.id} sent an empty stream"}, "server_error") from None
    except BaseException:
        if response is not None:
            response.release()
        raise
    outcome.stream = _sse(target, first, chunks, response, outcome)


async def _sse(
    target: Target, first: dict[str, Any], chunks: AsyncIterator[dict[str, Any]], response: Any, outcome: Outcome
) -> AsyncIterator[bytes]:
    """OpenAI SSE frames; a failure after the first byte ends with an error event and no [DONE]."""
    try:
        outcome.stream_chars += text_chars(first)
        yield b"data: " + orjson.dumps(first) + b"\n\n"
        async for chunk in chunks:
            usage = chunk.get("usage")
            if usage:
                outcome.usage = usage
            outcome.stream_chars += text_chars(chunk)
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
        yield DONE
    except UpstreamFailure as failure:
        message = redact(str(failure.error.get("message", "")), (target.api_key,))
        yield _error_event(message, failure.error.get("type") or "upstream_error", failure.error.get("code"))
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        kind = "timeout" if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError)) else "connection"
        yield _error_event(f"the upstream stream from {target.id} broke off ({kind})", "upstream_error", "stream_interrupted")
    finally:
        if response is not None:
            response.release()


def text_chars(chunk: dict[str, Any]) -> int:
    """Characters of text and tool-call arguments in one OpenAI stream chunk."""
    chars = 0
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not delta:
            continue
        content = delta.get("content")
        if content:
            chars += len(content)
        for call in delta.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                chars += len(function.get("name") or "") + len(function.get("arguments") or "")
    return chars


def _error_event(message: str, type_: str, code: Any) -> bytes:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return b"data: " + orjson.dumps(body) + b"\n\n"
