"""What the request path needs from a pack, and how a provider's `api:` finds its pack.

The dispatcher never knows which provider it talks to: it asks the target's pack to
render the upstream request, makes the HTTP call itself, and asks the pack to read the
answer, each stream line, or the error. A pack that answers in-process (`local`, the
built-in `echo`) is asked for the answer directly and makes no HTTP call.

Stream readers yield OpenAI chunk dicts; the dispatcher serializes them once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gateway.config.load import ConfigIssue
from gateway.errors import BadRequest

if TYPE_CHECKING:
    from gateway.snapshot import Target


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


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


class Pack(Protocol):
    name: str
    local: bool

    def chat_request(self, target: Target, body: dict[str, Any], stream: bool) -> UpstreamRequest: ...

    def chat_answer(self, target: Target, body: dict[str, Any], raw: bytes) -> dict[str, Any]: ...

    def chat_stream(
        self, target: Target, body: dict[str, Any], lines: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]: ...

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

    def chat_local_stream(self, target: Target, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]: ...

    def embeddings_local(self, target: Target, body: dict[str, Any]) -> dict[str, Any]: ...


class PackNotFound(LookupError):
    pass


class PackError(Exception):
    """A pack file (or a provider's template override) that cannot be used.

    Carries every problem found as config issues at file:line:col, so `gateway validate`
    reports them with the rest of the config.
    """

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


FALLBACK_CLASSES = frozenset({
    "rate_limit", "server_error", "timeout", "connection", "context_length", "content_filter", "invalid_output",
})


def load_pack(
    api: str,
    base_dir: str,
    templates: Mapping[str, str] | None = None,
    where: Callable[[str], tuple[str, int, int]] | None = None,
) -> Pack:
    """The compiled pack a provider's `api:` names: a built-in name or a pack file path.

    A path is relative to the directory of providers.yaml. `templates` replaces single
    templates of the pack (a provider's `templates:`); `where` locates each override in
    providers.yaml for error messages. Every template is compiled here, once per snapshot.
    """
    from gateway.packs.loader import compile_pack, find_pack

    return compile_pack(find_pack(api, base_dir), templates or {}, where)


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


def require_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadRequest("'messages' must be a list", param="messages")
    return messages
