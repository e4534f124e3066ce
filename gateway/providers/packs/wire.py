"""What crosses the wire between the request path and a pack: the upstream request a
pack renders, the classified failure it reads, and the interface the request path calls.

The dispatcher never knows which provider it talks to: it asks the target's pack to
render the upstream request, makes the HTTP call itself, and asks the pack to read the
answer, the stream (as typed events) or the error. A pack that answers in-process
(`local`, the built-in `echo`) is asked for the answer directly and makes no HTTP call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from gateway.config.snapshot import Target
from gateway.errors import BadRequest
from gateway.providers.events import Event, EventStream
from gateway.values import value


@value
class UpstreamRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    encoded: bool = False  # the URL is sent exactly as it is (a signature covers its escapes)


class Signer(Protocol):
    """Signs a rendered request just before it is sent (AWS SigV4, Google OAuth): `Pack.signer`."""

    refreshes: bool  # a 401 is worth one more try with `fresh=True` (new credentials or token)

    async def sign(self, target: Target, request: UpstreamRequest, fresh: bool = False) -> UpstreamRequest: ...


@dataclass(slots=True)
class UpstreamFailure(Exception):
    """An upstream answer that is not a success, already classified.

    `fallback_class` is one of the routes.yaml `fallback_on` names, or None for a client
    error that must go back to the client as it is and never fall back.
    """

    status: int
    error: dict[str, Any]
    fallback_class: str | None
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class StreamCut(UpstreamFailure):
    """A stream that stopped before its end marker: cut, not refused."""


class Pack(Protocol):
    """What the request path calls on a compiled pack (the config holds it as `config.snapshot.Pack`)."""

    name: str
    local: bool
    speaks: frozenset[str]  # the client APIs whose requests this pack takes as they are
    signer: Signer | None  # signs each request before it is sent; None: the auth style needs nothing more
    reads_bytes: bool  # its stream framing is binary: chat_events gets the body's chunks, not its lines

    def chat_request(self, target: Target, body: dict[str, Any], stream: bool) -> UpstreamRequest: ...

    def native_request(self, target: Target, api: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        """A body already in the pack's own wire format (a client of an API it `speaks`): sent with only `model` replaced."""
        ...

    def native_answer(self, target: Target, api: str, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        """The pipeline's reading (a chat completion) of the answer to a native request."""
        ...

    def chat_answer(self, target: Target, body: dict[str, Any], raw: bytes) -> dict[str, Any]: ...

    def chat_events(
        self, target: Target, body: dict[str, Any], lines: AsyncIterator[bytes], client_api: str, native: bool = False
    ) -> EventStream: ...

    def answer_wire(self, kind: str) -> str | None:
        """The client API whose shape an upstream answer already has, if any (its bytes go out unchanged)."""
        ...

    def embeddings_request(self, target: Target, body: dict[str, Any]) -> UpstreamRequest: ...

    def embeddings_answer(self, target: Target, body: dict[str, Any], raw: bytes) -> dict[str, Any]: ...

    def error(self, target: Target, status: int, raw: bytes, headers: Mapping[str, str]) -> UpstreamFailure: ...

    def rate_limit_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The provider's rate-limit headers of one answer, as OpenAI's `x-ratelimit-*`."""
        ...

    def prepare(self, target: Target) -> None:
        """Called once per target as the snapshot is built: work that depends on the target alone."""
        ...

    # Only for local packs:
    def chat_local(self, target: Target, body: dict[str, Any]) -> dict[str, Any]: ...

    def chat_local_events(self, target: Target, body: dict[str, Any]) -> AsyncIterator[Event]: ...

    def embeddings_local(self, target: Target, body: dict[str, Any]) -> dict[str, Any]: ...


def pack_of(target: Target) -> Pack:
    """The target's pack, as the request path sees it (the snapshot types it by what the config needs)."""
    return cast(Pack, target.pack)


FALLBACK_CLASSES = frozenset({
    "rate_limit", "server_error", "timeout", "connection", "context_length", "content_filter", "invalid_output",
})


def classify_status(status: int, code: str | None = None) -> str | None:
    """Fallback class for an upstream status, shared by every pack."""
    if status == 429:
        return "rate_limit"
    if code in ("context_length_exceeded", "context_length"):
        return "context_length"
    if code in ("content_filter", "content_policy_violation"):
        return "content_filter"
    if status in (408, 504):
        return "timeout"
    if status >= 500 or status in (401, 403):
        # A provider rejecting *our* credentials is an outage of that target, not the client's fault.
        return "server_error"
    return None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def bad_upstream_body(target: Target, what: str) -> UpstreamFailure:
    """A 200 whose body we cannot read is the provider's fault: a 502-class failure."""
    return UpstreamFailure(
        502,
        {"message": f"{target.id} returned {what}", "type": "upstream_error", "param": None, "code": "bad_upstream_response"},
        "server_error",
    )


def stream_cut(target: Target, what: str) -> StreamCut:
    return StreamCut(
        502,
        {"message": f"{target.id} sent {what}", "type": "upstream_error", "param": None, "code": "stream_interrupted"},
        "server_error",
    )


def require_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadRequest("'messages' must be a list", param="messages")
    return messages
