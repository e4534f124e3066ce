"""An Anthropic client's request, sent as it is to targets whose pack is `anthropic`.

Going through OpenAI's shape and back would lose what that shape cannot say (thinking,
cache_control, citations, server tools, top_k, beta features). So such a target is
sent the client's own body with only `model` replaced (the pack still supplies URL,
auth and headers), and its answer or event stream goes back to the client as it came.

The request path still gets what it needs from such a call: usage in OpenAI's terms
for accounting, an OpenAI-shaped answer (the pack's own reading of it) for the cache,
and a stream committed only once its first event has arrived, so a failing target is
replaced before the client sees a byte, exactly as for every other target.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from starlette.datastructures import Headers

from gateway.api.anthropic.stream import event
from gateway.pipeline.dispatch import Outcome
from gateway.providers.packs.wire import UpstreamFailure, UpstreamRequest, bad_upstream_body
from gateway.providers.packs.framing import sse_events
from gateway.observe.redact import redact
from gateway.config.snapshot import Target
from gateway.providers.upstream import Upstream, lines

NATIVE_PACK = "anthropic"
FORWARDED_HEADERS = ("anthropic-beta",)  # what the client asks of Anthropic that the body cannot say
# The status Anthropic sends with each error type, for an error that arrives as a stream event.
ERROR_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402, "permission_error": 403,
    "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
    "timeout_error": 504, "overloaded_error": 529,
}


def speaks_messages(target: Target) -> bool:
    return not target.pack.local and target.pack.name == NATIVE_PACK


def openai_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Anthropic's usage in OpenAI's terms: cache reads and writes count as prompt tokens."""
    fresh, written, read, output = (
        _count(usage.get(name))
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    )
    prompt = fresh + written + read
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}
    if read or written:
        out["prompt_tokens_details"] = {"cached_tokens": read}
    return out


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass(frozen=True, slots=True)
class NativeMessages:
    """One Anthropic request as the native targets get it (dispatch's `NativeCall`)."""

    body: dict[str, Any]  # the client's own body
    chat_body: dict[str, Any]  # its OpenAI-shaped translation, for the pack's reading of the answer
    stream: bool
    headers: Mapping[str, str]  # forwarded client headers

    @classmethod
    def of(cls, body: dict[str, Any], chat_body: dict[str, Any], headers: Headers) -> NativeMessages:
        forwarded = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
        return cls(body, chat_body, body.get("stream") is True, forwarded)

    def speaks(self, target: Target) -> bool:
        return speaks_messages(target)

    async def call(self, upstream: Upstream, target: Target, outcome: Outcome) -> None:
        if self.stream:
            await self._open_stream(upstream, target, outcome)
        else:
            await self._answer(upstream, target, outcome)

    def _request(self, target: Target) -> UpstreamRequest:
        request = target.pack.native_chat_request(target, self.body, self.stream)  # type: ignore[attr-defined]
        if not self.headers:
            return request
        return UpstreamRequest(request.method, request.url, {**self.headers, **request.headers}, request.body)

    async def _answer(self, upstream: Upstream, target: Target, outcome: Outcome) -> None:
        response = await upstream.send(self._request(target), target.connect_timeout, target.read_timeout)
        try:
            raw = await response.read()
        finally:
            response.release()
        if response.status >= 300:
            raise target.pack.error(target, response.status, raw, response.headers)
        outcome.rate_limits = target.pack.rate_limit_headers(response.headers)
        # The pack's reading checks the answer (a 502 that may fall back if it is not a
        # message) and is what the cache keeps; the client gets the provider's own bytes.
        outcome.answer = target.pack.chat_answer(target, self.chat_body, raw)
        outcome.usage = outcome.answer.get("usage")
        outcome.native_answer = raw

    async def _open_stream(self, upstream: Upstream, target: Target, outcome: Outcome) -> None:
        """Start the stream and read its first event; only then is the target committed."""
        response = await upstream.send(self._request(target), target.connect_timeout, target.read_timeout)
        if response.status >= 300:
            try:
                raw = await response.read()
            finally:
                response.release()
            raise target.pack.error(target, response.status, raw, response.headers)
        outcome.rate_limits = target.pack.rate_limit_headers(response.headers)
        events = sse_events(lines(response))
        try:
            first = await anext(events)
            if first[0] == "error":  # refused after the 200 but before any content: still replaceable
                raise stream_failure(target, first[1])
        except StopAsyncIteration:
            response.release()
            raise bad_upstream_body(target, "an empty stream") from None
        except BaseException:
            response.release()
            raise
        outcome.native_stream = True
        outcome.stream = _relay(target, first, events, response, outcome)


def stream_failure(target: Target, payload: bytes) -> UpstreamFailure:
    """An `event: error` read as the pack reads the same error sent with its HTTP status."""
    try:
        kind = orjson.loads(payload)["error"]["type"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        kind = "api_error"
    return target.pack.error(target, ERROR_STATUS.get(kind, 500), payload, {})


def _frame(name: str | None, payload: bytes) -> bytes:
    head = b"event: " + name.encode() + b"\n" if name else b""
    return head + b"data: " + payload + b"\n\n"


async def _relay(
    target: Target, first: tuple[str | None, bytes], events: AsyncIterator[tuple[str | None, bytes]],
    response: aiohttp.ClientResponse, outcome: Outcome,
) -> AsyncIterator[bytes]:
    """The provider's events, as they come; usage is read on the way for accounting.

    A stream that stops before `message_stop` or breaks off ends with `event: error`, so
    the client can tell a cut answer from a complete one.
    """
    usage: dict[str, Any] = {}
    try:
        name, payload = first
        while True:
            if name == "error":
                yield _frame(name, redact(payload.decode("utf-8", "replace"), (target.api_key,)).encode())
                return
            if name in ("message_start", "message_delta"):
                _read_usage(name, payload, usage, outcome)
            yield _frame(name, payload)
            if name == "message_stop":
                return
            try:
                name, payload = await anext(events)
            except StopAsyncIteration:
                break
        yield _error_event(f"the stream from {target.id} ended before message_stop")
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        kind = "timeout" if isinstance(exc, TimeoutError) else "connection"
        yield _error_event(f"the stream from {target.id} broke off ({kind})")
    finally:
        response.release()


def _read_usage(name: str, payload: bytes, usage: dict[str, Any], outcome: Outcome) -> None:
    """message_start carries the input counts, message_delta the running output count."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return
    if not isinstance(data, dict):
        return
    holder = data.get("message") if name == "message_start" else data
    found = holder.get("usage") if isinstance(holder, dict) else None
    if isinstance(found, dict):
        usage.update({k: v for k, v in found.items() if v is not None})
        outcome.usage = openai_usage(usage)


def _error_event(message: str) -> bytes:
    return event("error", {"type": "error", "error": {"type": "api_error", "message": message}})
