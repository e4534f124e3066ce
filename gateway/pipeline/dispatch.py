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

Streams are committed only once their first event has arrived: until then a failing
target is replaced exactly as for a plain request, so the client never sees it. A
committed stream then ends with exactly one `End` (see `_committed`).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gateway.config.snapshot import Retry, Route, Target
from gateway.errors import (
    AllTargetsFailed,
    DeadlineExceeded,
    GatewayError,
    NoTargetAvailable,
    RateLimited,
)
from gateway.observe import metrics, tracing
from gateway.observe.exchange import Exchange
from gateway.observe.redact import redact
from gateway.pipeline import output_check
from gateway.pipeline.deadline import Deadline
from gateway.pipeline.request import EMBEDDING, ModelRequest
from gateway.pipeline.runtime import Runtime
from gateway.providers.events import COMPLETE, CUT, FAILED, End, Event, EventStream
from gateway.providers.origin import Reply
from gateway.providers.packs.wire import (
    Signer,
    StreamCut,
    UpstreamFailure,
    UpstreamRequest,
    bad_upstream_body,
    pack_of,
)
from gateway.providers.upstream import Upstream, chunks, lines
from gateway.store.circuits import TRIPPING_CLASSES
from gateway.values import value

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
    again: bool = True  # worth another try on the same target (not after its own time ran out)

    def as_dict(self, message: bool = True) -> dict[str, Any]:
        """What a client (and the log) is told of this call; the provider's own message may
        name its account or organisation, so a client gets it only where the config says so."""
        out: dict[str, Any] = {"target": self.target, "status": self.status, "class": self.fallback_class}
        if message:
            out["message"] = self.message
        return out


def _with_attempts(error: GatewayError, route: Route, failures: list[Attempt]) -> GatewayError:
    """`error` carrying what was tried: each call's target, status and class in its body
    (with the providers' messages when `expose_upstream_errors`), everything in the log."""
    error.extra["attempts"] = [a.as_dict(route.expose_upstream_errors) for a in failures]
    error.logged = {"failures": [a.as_dict() for a in failures]}
    return error


def _all_rate_limited(route: Route, failures: list[Attempt]) -> GatewayError | None:
    """Every call was refused with 429: the client gets a 429 too, with the soonest
    `Retry-After` any target gave, so it can wait and try again rather than give up."""
    if not failures or any(a.fallback_class != "rate_limit" or a.status != 429 for a in failures):
        return None
    waits = [a.retry_after for a in failures if a.retry_after is not None]
    headers = {"retry-after": str(max(1, math.ceil(min(waits))))} if waits else None
    return _with_attempts(RateLimited(
        f"every target of '{route.alias}' is rate limited", code="upstream_rate_limited", headers=headers,
    ), route, failures)


@value
class Answer:
    """A plain (not streamed) answer: in the pipeline's shape, and the upstream's own bytes
    when they already are in the shape of the API named by `wire`."""

    body: dict[str, Any]
    raw: bytes | None = None
    wire: str | None = None

    @property
    def usage(self) -> dict[str, Any] | None:
        usage = self.body.get("usage")
        return usage if isinstance(usage, dict) else None


@dataclass(slots=True)
class Outcome:
    """Who answered and how: a plain answer or a committed stream of events."""

    target: Target | None = None
    failures: list[Attempt] = field(default_factory=list)  # the calls that did not answer, in order
    answer: Answer | None = None
    stream: EventStream | None = None
    # The answering provider's rate-limit headers under OpenAI's names (its pack's `rate_limits`).
    rate_limits: dict[str, str] | None = None
    deadline: float = math.inf  # the route's deadline, on the loop's (monotonic) clock


# Asked right before a candidate whose provider has limits of its own is tried: False skips
# it (the provider is at its quota). A provider without limits is not asked about.
Gate = Callable[[Target], Awaitable[bool]]


async def _always(target: Target) -> bool:
    return True


Call = Callable[[Target, Outcome], Awaitable[None]]


def dispatch(
    runtime: Runtime, route: Route, candidates: tuple[Target, ...], request: ModelRequest, exchange: Exchange,
    gate: Gate = _always,
) -> Awaitable[Outcome]:
    """Try the candidates in order until one answers `request`; every call is counted in `exchange`.
    A plain function returning the awaitable: only a stream a route validates needs a step after it."""
    upstream = runtime.upstream

    def call(target: Target, outcome: Outcome) -> Awaitable[None]:
        if request.kind == EMBEDDING:
            return _embeddings_once(upstream, target, request, outcome)
        if request.stream:
            return _open_stream(runtime, target, request, outcome)
        return _chat_once(upstream, target, request, outcome)

    # A route with validate_output checks answers to json_schema requests (pipeline/output_check.py).
    run = _run(runtime, route, candidates, output_check.guarded(route, request, call), exchange, gate)
    if not (route.validate_output and request.stream):
        return run
    return _stream_checked(run, route, request)


async def _stream_checked(run: Awaitable[Outcome], route: Route, request: ModelRequest) -> Outcome:
    return output_check.checked(route, request, await run)


async def _run(
    runtime: Runtime, route: Route, candidates: tuple[Target, ...], call: Call, exchange: Exchange, gate: Gate
) -> Outcome:
    if not candidates:
        raise NoTargetAvailable(f"no target of '{route.alias}' can take this request")
    outcome = Outcome()
    outcome.deadline = deadline = asyncio.get_running_loop().time() + route.timeout
    watch = runtime.deadlines.watch(deadline)
    try:
        for target in candidates:
            # The plan saw this circuit a moment ago; another request may have tripped it
            # since, or taken the single half-open probe.
            if not runtime.circuits.allow(target):
                continue
            if target.limits.metered and not await gate(target):
                continue  # its provider is at its own quota: skipped, never waited for
            if await _try_target(runtime, route, target, outcome, call, exchange, deadline):
                outcome.target = target
                return outcome
            metrics.fell_back(route.alias)
    except asyncio.CancelledError:
        if not watch.timed_out():
            raise  # the client left (or the server is stopping): not the deadline
        raise _with_attempts(DeadlineExceeded(
            f"'{route.alias}' did not answer within its {route.timeout:g}s deadline",
        ), route, outcome.failures) from None
    finally:
        runtime.deadlines.release(watch)
    if not outcome.failures:
        raise NoTargetAvailable(f"no target of '{route.alias}' can take this request (skipped: open circuits or provider limits)")
    raise _all_rate_limited(route, outcome.failures) or _with_attempts(AllTargetsFailed(
        f"every target of '{route.alias}' failed",
    ), route, outcome.failures)


async def _try_target(
    runtime: Runtime, route: Route, target: Target, outcome: Outcome, call: Call, exchange: Exchange, deadline: float
) -> bool:
    """Up to `retry.attempts` tries on one target. True: it answered; False: fall back."""
    tries = route.retry.attempts
    for number in range(1, tries + 1):
        failure = await _attempt(runtime, route, target, outcome, call, exchange, deadline)
        if failure is None:
            return True
        if (number == tries or failure.fallback_class not in TRANSIENT_CLASSES or failure.status in _NOT_AGAIN
                or not failure.again):
            break
        wait = backoff_delay(route.retry, number)
        if failure.retry_after is not None:
            wait = max(wait, failure.retry_after)
        if asyncio.get_running_loop().time() + wait >= deadline:
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
    runtime: Runtime, route: Route, target: Target, outcome: Outcome, call: Call, exchange: Exchange, deadline: float
) -> Attempt | None:
    """One call to one target. None when it answered, else the failed `Attempt` (recorded).

    The call is counted here and only here: in the request's `Exchange` (attempts,
    fallbacks, upstream time), in the metrics, in the target's circuit and latency, and
    as a child span when tracing is on. A client error (no fallback class) is raised at
    once: it is the request's fault and no retry or other target would change it.
    """
    if exchange.failed and exchange.failed[-1][0] != target.id:
        exchange.fallbacks += 1
    exchange.attempts += 1
    span = token = None
    if tracing.enabled:
        span, token = tracing.start_attempt(route.alias, target)
    started = time.perf_counter()
    limit = _attempt_limit(runtime, route, target, deadline)
    try:
        await call(target, outcome)
    except asyncio.CancelledError:
        if limit is None or not limit.timed_out():
            _cancelled(runtime, route, target, outcome, exchange, deadline, started, span, token)
            raise
        # This call's own time ran out (not the route's): a timeout like any other, and the
        # route's remaining time goes to the next try or target.
        attempt = Attempt(target.id, None, "timeout",
                          f"{target.id} did not start answering within {route.attempt_timeouts[target.id]:g}s",
                          again=False)
        runtime.latency.observe(target.id, time.perf_counter() - started)
    except UpstreamFailure as failure:
        message = redact(str(failure.error.get("message", "")), (target.api_key,))
        attempt = Attempt(target.id, failure.status, failure.fallback_class, message, failure.retry_after)
        if failure.fallback_class is None:
            elapsed = _count(exchange, started, span, token, "client_error", failure.status)
            outcome.failures.append(attempt)
            exchange.failed.append((target.id, False))
            runtime.circuits.record_success(target)  # it answered: the target is healthy
            metrics.upstream_called(route.alias, target.id, "client_error", elapsed)
            raise _client_error(failure, message) from None
    except TimeoutError:
        # aiohttp's connect/read timeouts; the route deadline arrives as a cancellation instead.
        attempt = Attempt(target.id, None, "timeout", f"{target.id} did not answer in time")
        runtime.latency.observe(target.id, time.perf_counter() - started)
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        attempt = Attempt(target.id, None, "connection", f"could not reach {target.id} ({type(exc).__name__})")
    except GatewayError as exc:  # the pack could not translate the request: the client's to fix
        _count(exchange, started, span, token, "client_error" if exc.status < 500 else "error", None)
        raise
    except BaseException:
        _count(exchange, started, span, token, "error", None)
        raise
    else:
        elapsed = _count(exchange, started, span, token, "ok", None)
        if outcome.stream is None:  # a stream's verdict waits for its end (see _committed)
            runtime.circuits.record_success(target)
        runtime.latency.observe(target.id, elapsed)
        metrics.upstream_called(route.alias, target.id, "ok", elapsed)
        return None
    finally:
        if limit is not None:
            runtime.deadlines.release(limit)
    elapsed = _count(exchange, started, span, token, attempt.fallback_class or "error", attempt.status)
    outcome.failures.append(attempt)
    exchange.failed.append((target.id, True))
    metrics.upstream_called(route.alias, target.id, attempt.fallback_class or "error", elapsed)
    if attempt.fallback_class in TRIPPING_CLASSES:
        runtime.circuits.record_failure(target)
    else:
        runtime.circuits.record_success(target)
    return attempt


def _attempt_limit(runtime: Runtime, route: Route, target: Target, deadline: float) -> Deadline | None:
    """A timer for this call's own first-byte time, when it ends before the route's deadline
    (which otherwise cuts the call itself)."""
    seconds = route.attempt_timeouts.get(target.id)
    if seconds is None:
        return None
    when = asyncio.get_running_loop().time() + seconds
    return runtime.deadlines.watch(when) if when < deadline else None


def _cancelled(
    runtime: Runtime, route: Route, target: Target, outcome: Outcome, exchange: Exchange, deadline: float,
    started: float, span: Any, token: Any,
) -> None:
    """The route deadline (or the client leaving) cut this call short. Past the deadline
    it counts against the target like any timeout: a hang longer than the deadline must
    still open the circuit."""
    elapsed = _count(exchange, started, span, token, "deadline", None)
    outcome.failures.append(Attempt(target.id, None, "timeout", f"{target.id} was still working at the deadline"))
    exchange.failed.append((target.id, True))
    if asyncio.get_running_loop().time() >= deadline:
        runtime.circuits.record_failure(target)
        runtime.latency.observe(target.id, elapsed)
        metrics.upstream_called(route.alias, target.id, "timeout", elapsed)


def _count(exchange: Exchange, started: float, span: Any, token: Any, result: str, status: int | None) -> float:
    """One finished call: its upstream time on the request, its span ended (or kept, when it
    answered, to carry the token counts known at the request's end). Returns its seconds."""
    elapsed = time.perf_counter() - started
    exchange.upstream_seconds += elapsed
    if span is not None:
        tracing.detach(token)
        if result == "ok":
            exchange.attempt_span = span
        else:
            tracing.end_attempt(span, result, status)
    return elapsed


def _final_error(route: Route, attempt: Attempt, outcome: Outcome) -> GatewayError:
    """A failure whose class the route does not fall back on: answer with it now."""
    status = attempt.status
    if status is not None and 400 <= status < 500 and attempt.fallback_class in _CLIENT_VISIBLE:
        headers = {"retry-after": str(max(1, round(attempt.retry_after)))} if attempt.retry_after else None
        type_ = "rate_limit_error" if attempt.fallback_class == "rate_limit" else "invalid_request_error"
        return _with_attempts(GatewayError(
            attempt.message, status=status, type=type_, code=_class_code(attempt.fallback_class), headers=headers,
        ), route, outcome.failures)
    return _with_attempts(AllTargetsFailed(
        f"{attempt.target} failed ({attempt.fallback_class}) and '{route.alias}' does not fall back on that",
    ), route, outcome.failures)


# 4xx classes that mean the same to the client as to us. A 401/403 is our provider
# credentials failing (server_error): the client gets a 502, never a 401 about a key it did not send.
_CLIENT_VISIBLE = frozenset({"rate_limit", "context_length", "content_filter"})


def _class_code(fallback_class: str | None) -> str | None:
    return {
        "rate_limit": "rate_limit_exceeded",
        "context_length": "context_length_exceeded",
        "content_filter": "content_filter",
    }.get(fallback_class or "")


def _client_error(failure: UpstreamFailure, message: str) -> GatewayError:
    """An upstream's refusal that is the client's doing goes back with the upstream's status."""
    error = failure.error
    status = failure.status if 400 <= failure.status < 500 else 502
    return GatewayError(
        message, status=status, type=str(error.get("type") or "invalid_request_error"),
        code=error.get("code"), param=error.get("param"),
    )


def _send(
    upstream: Upstream, target: Target, request: UpstreamRequest, read: float | None
) -> Awaitable[aiohttp.ClientResponse]:
    """Send for a stream, signed when the pack signs (AWS SigV4, Google OAuth). A plain
    function: an unsigned request awaits the client's own call, without a coroutine of its own."""
    signer = pack_of(target).signer
    if signer is None:
        return upstream.send(request, target.connect_timeout, read)
    return _send_signed(upstream, signer, target, request, read)


async def _send_signed(
    upstream: Upstream, signer: Signer, target: Target, request: UpstreamRequest, read: float | None
) -> aiohttp.ClientResponse:
    """A 401 to a signed request is tried once more with fresh credentials, since a token
    can be revoked before it expires."""
    response = await upstream.send(await signer.sign(target, request), target.connect_timeout, read)
    if response.status != 401 or not signer.refreshes:
        return response
    response.release()
    return await upstream.send(await signer.sign(target, request, fresh=True), target.connect_timeout, read)


def _fetch(upstream: Upstream, target: Target, request: UpstreamRequest, read: float | None) -> Awaitable[Reply]:
    """A plain call read to its end, signed when the pack signs (as `_send`)."""
    signer = pack_of(target).signer
    if signer is None:
        return upstream.fetch(request, target.connect_timeout, read)
    return _fetch_signed(upstream, signer, target, request, read)


async def _fetch_signed(
    upstream: Upstream, signer: Signer, target: Target, request: UpstreamRequest, read: float | None
) -> Reply:
    """As `_send_signed`: a 401 is tried once more with fresh credentials."""
    reply = await upstream.fetch(await signer.sign(target, request), target.connect_timeout, read)
    if reply.status != 401 or not signer.refreshes:
        return reply
    return await upstream.fetch(await signer.sign(target, request, fresh=True), target.connect_timeout, read)


def plain_read_timeout(target: Target, deadline: float) -> float | None:
    """The read timeout of a call for a plain (not streamed) answer: the target's, or None
    when the route's deadline (on the loop's monotonic clock) ends the wait first anyway.

    A plain answer has one wait, for its first byte, and the rest follows at once, so a read
    timeout no shorter than the time left to the deadline can never fire first. Left out,
    it saves aiohttp two loop timers a call (armed when the request is sent, armed again
    when the answer starts arriving), 1.2% of a pass-through request's instructions with
    the shipped timeouts (read 120 s, route deadline 60 s). A stream's read timeout bounds
    every gap between its events and always stays."""
    read = target.read_timeout
    return read if time.monotonic() + read < deadline else None


async def _read_answer(upstream: Upstream, target: Target, request: UpstreamRequest, outcome: Outcome) -> bytes:
    reply = await _fetch(upstream, target, request, plain_read_timeout(target, outcome.deadline))
    pack = pack_of(target)
    if reply.status >= 300:
        raise pack.error(target, reply.status, reply.body, reply.headers)
    outcome.rate_limits = pack.rate_limit_headers(reply.headers)
    return reply.body


def _native(target: Target, request: ModelRequest) -> bool:
    """Whether the target takes the client's own body: its pack speaks the client's API."""
    return request.native_body is not None and request.api in target.speaks


def _chat_request(target: Target, request: ModelRequest, stream: bool) -> UpstreamRequest:
    pack = pack_of(target)
    if not _native(target, request):
        return pack.chat_request(target, request.body, stream)
    rendered = pack.native_request(target, request.api, request.native_body or {}, stream)
    if not request.native_headers:
        return rendered
    return UpstreamRequest(rendered.method, rendered.url, {**request.native_headers, **rendered.headers}, rendered.body)


async def _chat_once(upstream: Upstream, target: Target, request: ModelRequest, outcome: Outcome) -> None:
    pack = pack_of(target)
    if pack.local:
        outcome.answer = Answer(pack.chat_local(target, request.body))
        return
    raw = await _read_answer(upstream, target, _chat_request(target, request, False), outcome)
    # The pack's reading checks the answer (a 502 that may fall back when it is not one)
    # and is what accounting and the cache use, whichever bytes the client is sent.
    if _native(target, request):
        body, wire = pack.native_answer(target, request.api, request.body, raw), request.api
    else:
        body, wire = pack.chat_answer(target, request.body, raw), pack.answer_wire("chat")
    outcome.answer = Answer(body, raw if wire else None, wire)


async def _embeddings_once(upstream: Upstream, target: Target, request: ModelRequest, outcome: Outcome) -> None:
    pack = pack_of(target)
    if pack.local:
        outcome.answer = Answer(pack.embeddings_local(target, request.body))
        return
    raw = await _read_answer(upstream, target, pack.embeddings_request(target, request.body), outcome)
    wire = pack.answer_wire("embedding")
    outcome.answer = Answer(pack.embeddings_answer(target, request.body, raw), raw if wire else None, wire)


async def _open_stream(runtime: Runtime, target: Target, request: ModelRequest, outcome: Outcome) -> None:
    """Start the stream and read its first event; only then is the target committed."""
    pack = pack_of(target)
    response = None
    if pack.local:
        stream = EventStream(pack.chat_local_events(target, request.body))
    else:
        rendered = _chat_request(target, request, True)
        response = await _send(runtime.upstream, target, rendered, target.read_timeout)
        if response.status >= 300:
            try:
                raw = await response.read()
            finally:
                response.release()
            raise pack.error(target, response.status, raw, response.headers)
        outcome.rate_limits = pack.rate_limit_headers(response.headers)
        body = chunks(response) if pack.reads_bytes else lines(response)
        stream = pack.chat_events(target, request.body, body, request.api, _native(target, request))
    try:
        first = await anext(stream.events)
    except StopAsyncIteration:
        if response is not None:
            response.release()
        raise bad_upstream_body(target, "an empty stream") from None
    except BaseException:
        if response is not None:
            response.release()
        raise
    outcome.stream = EventStream(_committed(runtime, target, first, stream.events, response), stream.wire)


async def _committed(
    runtime: Runtime, target: Target, first: Event, events: AsyncIterator[Event], response: Any
) -> AsyncIterator[Event]:
    """The committed stream, ended by exactly one `End`: the one place that decides how a
    stream ended. The pack's own `End` says complete; a failure the provider reported
    is `failed`; a stream that broke off or stopped early is `cut`. The end is reported
    to the target's circuit; a client that leaves early says nothing about the target."""
    end: End | None = first if isinstance(first, End) else None
    try:
        if end is None:
            yield first
            async for event in events:
                if isinstance(event, End):
                    end = event
                    break
                yield event
            else:
                end = _cut(f"the upstream stream from {target.id} ended before its last event")
    except StreamCut as failure:
        end = _cut(redact(str(failure.error.get("message", "")), (target.api_key,)))
    except UpstreamFailure as failure:
        message = redact(str(failure.error.get("message", "")), (target.api_key,))
        end = End(FAILED, {"message": message, "type": failure.error.get("type") or "upstream_error",
                           "code": failure.error.get("code")})
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        kind = "timeout" if isinstance(exc, TimeoutError) else "connection"
        end = _cut(f"the upstream stream from {target.id} broke off ({kind})")
    finally:
        await _close(events)
        if response is not None:
            response.release()
    if end.status == COMPLETE:
        runtime.circuits.record_success(target)
    else:
        runtime.circuits.record_failure(target)
        metrics.stream_cut(target.id)
    yield end


def _cut(message: str) -> End:
    return End(CUT, {"message": message, "type": "upstream_error", "code": "stream_interrupted"})


async def _close(events: AsyncIterator[Event]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
