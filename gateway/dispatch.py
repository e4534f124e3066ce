"""Calling the candidates in order until one answers.

For each candidate the pack renders the upstream request, `Upstream` sends it, and a
failure is classified (rate_limit, server_error, timeout, connection, ...). A class the
route lists in `fallback_on` moves on to the next candidate; anything else (a client
error) goes straight back to the client. The route's `timeout` bounds all attempts
together.

Streams are committed only once the first chunk has arrived: until then a failing
target is replaced exactly as for a plain request, so the client never sees it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from gateway.errors import AllTargetsFailed, DeadlineExceeded, GatewayError, NoTargetAvailable
from gateway.packs.engine import UpstreamFailure
from gateway.redact import redact
from gateway.snapshot import Route, Target
from gateway.upstream import Upstream, lines

DONE = b"data: [DONE]\n\n"


@dataclass(slots=True)
class Attempt:
    target: str
    status: int | None
    fallback_class: str | None
    message: str

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

    @property
    def calls(self) -> int:
        return len(self.attempts) + (1 if self.target is not None else 0)


class _Retryable(Exception):
    """A failure the route may fall back from."""


async def dispatch_chat(
    upstream: Upstream, route: Route, candidates: tuple[Target, ...], body: dict[str, Any], stream: bool
) -> Outcome:
    if stream:
        return await _run(route, candidates, lambda t, o: _open_stream(upstream, t, body, o))
    return await _run(route, candidates, lambda t, o: _chat_once(upstream, t, body, o))


async def dispatch_embeddings(
    upstream: Upstream, route: Route, candidates: tuple[Target, ...], body: dict[str, Any]
) -> Outcome:
    return await _run(route, candidates, lambda t, o: _embeddings_once(upstream, t, body, o))


async def _run(route: Route, candidates: tuple[Target, ...], call: Callable[[Target, Outcome], Any]) -> Outcome:
    if not candidates:
        raise NoTargetAvailable(f"no target of '{route.alias}' can take this request")
    outcome = Outcome()
    try:
        async with asyncio.timeout(route.timeout):
            for target in candidates:
                try:
                    await _attempt(route, target, outcome, call)
                    outcome.target = target
                    return outcome
                except _Retryable:
                    continue
    except TimeoutError:
        raise DeadlineExceeded(
            f"'{route.alias}' did not answer within its {route.timeout:g}s deadline",
            extra={"attempts": [a.as_dict() for a in outcome.attempts]},
        ) from None
    raise AllTargetsFailed(
        f"every target of '{route.alias}' failed",
        extra={"attempts": [a.as_dict() for a in outcome.attempts]},
    )


async def _attempt(route: Route, target: Target, outcome: Outcome, call: Callable[[Target, Outcome], Any]) -> None:
    """One call to one target; a fallback-class failure becomes `_Retryable`."""
    started = time.perf_counter()
    try:
        await call(target, outcome)
    except UpstreamFailure as failure:
        message = redact(str(failure.error.get("message", "")), (target.api_key,))
        outcome.attempts.append(Attempt(target.id, failure.status, failure.fallback_class, message))
        if failure.fallback_class in route.fallback_on:
            raise _Retryable from None
        raise _client_error(failure, message) from None
    except TimeoutError:
        # aiohttp's connect/read timeouts; the route deadline arrives as a cancellation instead.
        _failed(route, target, outcome, "timeout", "the upstream did not answer in time")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        _failed(route, target, outcome, "connection", f"could not reach the upstream ({type(exc).__name__})")
    finally:
        outcome.upstream_seconds += time.perf_counter() - started


def _failed(route: Route, target: Target, outcome: Outcome, fallback_class: str, message: str) -> None:
    outcome.attempts.append(Attempt(target.id, None, fallback_class, message))
    if fallback_class in route.fallback_on:
        raise _Retryable
    raise AllTargetsFailed(message, extra={"attempts": [a.as_dict() for a in outcome.attempts]})


def _client_error(failure: UpstreamFailure, message: str) -> GatewayError:
    """An upstream's refusal that is the client's doing goes back with the upstream's status."""
    error = failure.error
    status = failure.status if 400 <= failure.status < 500 else 502
    return GatewayError(
        message, status=status, type=str(error.get("type") or "invalid_request_error"),
        code=error.get("code"), param=error.get("param"),
    )


async def _read_answer(upstream: Upstream, target: Target, request: Any) -> bytes:
    response = await upstream.send(request, target.connect_timeout, target.read_timeout)
    try:
        raw = await response.read()
    finally:
        response.release()
    if response.status >= 300:
        raise target.pack.error(target, response.status, raw, response.headers)
    return raw


async def _chat_once(upstream: Upstream, target: Target, body: dict[str, Any], outcome: Outcome) -> None:
    pack = target.pack
    if pack.local:
        outcome.answer = pack.chat_local(target, body)
    else:
        raw = await _read_answer(upstream, target, pack.chat_request(target, body, False))
        outcome.answer = pack.chat_answer(target, body, raw)
    outcome.usage = outcome.answer.get("usage")


async def _embeddings_once(upstream: Upstream, target: Target, body: dict[str, Any], outcome: Outcome) -> None:
    pack = target.pack
    if pack.local:
        outcome.answer = pack.embeddings_local(target, body)
    else:
        raw = await _read_answer(upstream, target, pack.embeddings_request(target, body))
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
        yield b"data: " + orjson.dumps(first) + b"\n\n"
        async for chunk in chunks:
            usage = chunk.get("usage")
            if usage:
                outcome.usage = usage
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


def _error_event(message: str, type_: str, code: Any) -> bytes:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return b"data: " + orjson.dumps(body) + b"\n\n"
