"""A pack ready to serve: its templates compiled, its calls rendered per request.

One class serves every HTTP pack. Each part of a call is either a compiled template or
absent; absent means the part already speaks OpenAI, so nothing runs for it. The
`openai` pack is this class with no templates at all: the request body is the client's
with only `model` replaced, and answers and stream chunks are read as they come.

Template failures are sorted by who caused them: a request that cannot be translated
is the client's (400); an answer, event or error body the pack cannot read is the
provider's (502, which may fall back to the next target). Nothing becomes a 500.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from gateway.config.snapshot import RESPONSES_API, Target
from gateway.errors import BadRequest
from gateway.ids import random_hex
from gateway.providers.events import EventStream
from gateway.providers.packs._helpers import StreamState
from gateway.providers.packs._responses import chat_of_response, response_events
from gateway.providers.packs._streams import (
    OPENAI_STREAM,
    CompiledStream,
    Headers,
    openai_events,
    translated_events,
)
from gateway.providers.packs._templates import (
    RENDER_ERRORS,
    TextTemplate,
    ValueTemplate,
    scope,
)
from gateway.providers.packs._values import (
    answer_value,
    chat_of_text_completion,
    decode,
    failure_from_value,
    openai_failure,
    openai_shaped,
    reason,
    request_value,
)
from gateway.providers.packs.wire import (
    Signer,
    UpstreamFailure,
    UpstreamRequest,
    bad_upstream_body,
    classify_status,
    retry_after_seconds,
)
from gateway.providers.rate_limits import RESET_PREFIX, reset_duration


@dataclass(frozen=True, slots=True)
class CompiledCall:
    method: str
    url: TextTemplate
    query: Headers
    headers: Headers
    body: ValueTemplate | None
    answer: ValueTemplate | None
    stream: CompiledStream | None = None


@dataclass(frozen=True, slots=True)
class RateLimitMap:
    """A pack's `rate_limits`: (OpenAI header, the provider's header) pairs, and how resets read."""

    pairs: tuple[tuple[str, str], ...]
    reset_format: str  # duration | rfc3339 | seconds

    def read(self, headers: Mapping[str, str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for ours, theirs in self.pairs:
            value = headers.get(theirs)
            if not value:
                continue
            if ours.startswith(RESET_PREFIX) and self.reset_format != "duration":
                value = reset_duration(value, self.reset_format)
                if value is None:
                    continue  # unreadable: better left out than passed on wrong
            found[ours] = value
        return found


@dataclass(frozen=True, slots=True)
class Auth:
    style: str
    name: str | None


OPENAI_WIRE = "openai"  # the shape every pack reads requests in and templates write answers in
LEGACY_COMPLETIONS = "openai-completions"  # OpenAI's legacy text completions, which a `completions` call speaks


class TemplatePack:
    """The `Pack` every YAML pack with HTTP calls compiles to."""

    local = False

    def __init__(
        self,
        name: str,
        source: str,
        auth: Auth,
        headers: Headers,
        chat: CompiledCall | None,
        embeddings: CompiledCall | None,
        error: ValueTemplate | None,
        constants: Mapping[str, Any] | None = None,
        rate_limits: RateLimitMap | None = None,
        speaks: str | None = None,
        completions: CompiledCall | None = None,
        maps: frozenset[str] | None = None,
        responses: CompiledCall | None = None,
        signer: Signer | None = None,
        root: TextTemplate | None = None,
    ):
        self.name = name
        self.signer = signer  # AWS SigV4 or Google OAuth: the dispatcher signs each request with it
        self._root = root  # the endpoint root when a provider gives no base_url
        stream = chat.stream if chat is not None else None
        self.reads_bytes = stream is not None and stream.framing == "aws-eventstream"
        # The client APIs whose requests this provider takes as they are (see `native_request`).
        self.speaks = frozenset(
            ({speaks} if speaks else set()) | ({LEGACY_COMPLETIONS} if completions else set())
            | ({RESPONSES_API} if responses else set())
        )
        self.source = source
        self._auth = auth
        self._headers = headers
        self._chat = chat
        self._embeddings = embeddings
        self._error = error
        self._constants = constants or {}
        self._rate_limits = rate_limits
        self._completions = completions
        self._responses = responses
        self.maps = maps  # request fields the chat call carries; None: all (see gateway.mapping)
        self.serves_chat = chat is not None
        self.serves_embeddings = embeddings is not None
        self.user_file: str | None = None  # set for an operator's pack file (not a built-in)
        # Calls with no template at all (the openai pack) never build a template scope.
        self._plain = {id(c): _is_plain(c, headers) for c in (chat, embeddings, completions, responses) if c is not None}
        # Filled by `prepare` while the snapshot is built, only read after (by target object).
        self._prepared: dict[int, _Prepared] = {}

    def prepare(self, target: Target) -> None:
        """Render once, for this target, what every request to it would render the same:
        the URL (query and key included) and headers of each call whose templates read the
        target's config alone, which is every call of most packs."""
        prepared = _Prepared(target, self._scope(target))
        for call in (self._chat, self._embeddings):
            for stream in (False, True):
                if call is None:
                    continue
                url, query = _address(call, stream)
                parts = [url, *(t for _, t in query), *(t for _, t in self._headers + call.headers)]
                if not all(t.config_only for t in parts):
                    continue
                try:
                    address = self._render_address(call, target, stream, prepared.scope)
                except RENDER_ERRORS:
                    continue  # left to each request, which reports it as its own error
                prepared.calls[(id(call), stream)] = address
        self._prepared[id(target)] = prepared

    def root_url(self, params: Mapping[str, Any]) -> str | None:
        """The endpoint root a provider without base_url gets (Bedrock's and Vertex's read
        the region or location), rendered once when the snapshot is built."""
        if self._root is None:
            return None
        try:
            return self._root.render(scope({"params": params, "constants": self._constants}))
        except RENDER_ERRORS:
            return None

    def _prepared_for(self, target: Target) -> _Prepared | None:
        found = self._prepared.get(id(target))
        return found if found is not None and found.target is target else None

    def _scope(self, target: Target) -> dict[str, Any]:
        view = {
            "id": target.id, "provider": target.provider, "model": target.model, "base_url": target.base_url,
            "supports": sorted(target.supports) if target.supports is not None else None,
        }
        return scope({"target": view, "params": target.params, "constants": self._constants})

    # ------------------------------------------------------------------ requests

    def chat_request(self, target: Target, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        call = self._need(self._chat, target, "chat")
        return self._request(call, target, body, stream, {"body": body, "stream": stream})

    def native_request(self, target: Target, api: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        """A body already in the provider's own wire format, from a client of an API it
        `speaks` (an Anthropic client to the `anthropic` pack; a legacy completions client
        to a pack with a `completions` call): URL, auth and headers as usual, the body sent
        as it is with only `model` replaced. No body template runs, so nothing is lost."""
        if api == LEGACY_COMPLETIONS:
            call = self._need(self._completions, target, "completions")
        elif api == RESPONSES_API:
            call = self._need(self._responses, target, "responses")
        else:
            call = self._need(self._chat, target, "chat")
        return self._request(call, target, body, stream, {"body": body, "stream": stream}, native=True)

    def native_answer(self, target: Target, api: str, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        """The pipeline's reading (a chat completion) of an answer to a native request."""
        if api == RESPONSES_API:
            return chat_of_response(target, decode(target, raw))
        if api != LEGACY_COMPLETIONS:
            return self.chat_answer(target, body, raw)
        return chat_of_text_completion(openai_shaped(target, decode(target, raw), "choices"))

    def embeddings_request(self, target: Target, body: dict[str, Any]) -> UpstreamRequest:
        call = self._need(self._embeddings, target, "embeddings")
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)) else raw
        return self._request(call, target, body, False, {"body": body, "inputs": inputs, "stream": False})

    def _need(self, call: CompiledCall | None, target: Target, what: str) -> CompiledCall:
        if call is None:
            raise BadRequest(f"{target.id} does not serve {what} (its pack '{self.name}' has no {what} call)", param="model")
        return call

    def _request(
        self, call: CompiledCall, target: Target, body: dict[str, Any], stream: bool, extra: dict[str, Any],
        native: bool = False,
    ) -> UpstreamRequest:
        prepared = self._prepared_for(target)
        variables = None if self._plain[id(call)] else self._variables(target, extra, prepared)
        fixed = prepared.calls.get((id(call), stream)) if prepared is not None else None
        try:
            if fixed is not None:
                url, headers = fixed[0], dict(fixed[1])
            else:
                url, headers = self._render_address(call, target, stream, variables)
            if call.body is None or native:
                out = dict(body)
                out["model"] = target.model
            else:
                out = request_value(call.body.render_one(variables))
            payload = orjson.dumps(out)
        except BadRequest:
            raise
        except RENDER_ERRORS as exc:
            raise BadRequest(
                f"the request cannot be translated for {target.id}: {reason(exc)}", code="untranslatable_request"
            ) from None
        return UpstreamRequest(call.method, url, headers, payload)

    def _render_address(
        self, call: CompiledCall, target: Target, stream: bool, variables: dict[str, Any] | None
    ) -> tuple[str, dict[str, str]]:
        """The URL (query included) and headers a call is sent with, its key in place."""
        url_template, query = _address(call, stream)
        url = target.base_url + url_template.render(variables)
        params = [(name, t.render(variables)) for name, t in query]
        headers = {"content-type": "application/json"}
        for name, template in self._headers + call.headers:
            headers[name] = template.render(variables)
        key = target.api_key
        if key:
            style = self._auth.style
            if style == "bearer":
                headers["authorization"] = f"Bearer {key}"
            elif style == "header":
                headers[self._auth.name or "api-key"] = key
            elif style == "query":
                params.append((self._auth.name or "key", key))
            # sigv4 and google-oauth: the signer authenticates the request as it leaves
        headers.update(target.headers)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        return url, headers

    def _variables(self, target: Target, extra: dict[str, Any], prepared: _Prepared | None = None) -> dict[str, Any]:
        """What every template sees: the target (never its key), its params, the pack's constants."""
        prepared = prepared or self._prepared_for(target)
        return {**(prepared.scope if prepared is not None else self._scope(target)), **extra}

    # ------------------------------------------------------------------- answers

    def rate_limit_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The provider's rate-limit headers of one answer, under OpenAI's names."""
        return self._rate_limits.read(headers) if self._rate_limits is not None else {}

    def chat_answer(self, target: Target, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        call = self._need(self._chat, target, "chat")
        data = decode(target, raw)
        if call.answer is None:
            return openai_shaped(target, data, "choices")
        value = self._read(target, call.answer, {"answer": data, "body": body}, "an answer")
        if not isinstance(value, dict) or not isinstance(value.get("choices"), list):
            raise bad_upstream_body(target, "an answer the pack could not turn into choices")
        envelope = {"id": "chatcmpl-" + random_hex(), "object": "chat.completion", "created": int(time.time()), "model": target.model}
        return {**envelope, **{k: v for k, v in value.items() if v is not None or k not in envelope}}

    def embeddings_answer(self, target: Target, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        call = self._need(self._embeddings, target, "embeddings")
        data = decode(target, raw)
        if call.answer is None:
            return openai_shaped(target, data, "data")
        value = self._read(target, call.answer, {"answer": data, "body": body}, "an embeddings answer")
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise bad_upstream_body(target, "an embeddings answer the pack could not turn into data")
        return {"object": "list", "model": target.model, **value}

    def _read(self, target: Target, template: ValueTemplate, extra: dict[str, Any], what: str) -> Any:
        try:
            return answer_value(template.render_one(self._variables(target, extra)))
        except UpstreamFailure:
            raise
        except RENDER_ERRORS as exc:
            raise bad_upstream_body(target, f"{what} the pack could not read ({reason(exc)})") from None

    # ------------------------------------------------------------------- streams

    def chat_events(
        self, target: Target, body: dict[str, Any], lines: AsyncIterator[bytes], client_api: str, native: bool = False
    ) -> EventStream:
        """The upstream's stream as typed events; with the upstream's own bytes as frames
        when its wire format is `client_api`, the API the client speaks (`native`: the
        request went out in that API's own format)."""
        native = native and client_api in self.speaks
        if native and client_api == RESPONSES_API:
            return EventStream(response_events(target, lines), RESPONSES_API)
        legacy = native and client_api == LEGACY_COMPLETIONS
        call = self._need(self._completions if legacy else self._chat, target, "chat")
        spec = call.stream or OPENAI_STREAM
        if not spec.events and spec.framing == "sse":
            wire = client_api if native else OPENAI_WIRE
            frames = client_api == wire
            return EventStream(openai_events(target, spec, lines, frames), wire if frames else None)
        state = StreamState()
        # Usage is always asked of the templates: metering needs it; a writer drops it
        # for a client that did not ask.
        variables = self._variables(target, {"body": body, "state": state, "include_usage": True})
        return EventStream(translated_events(target, spec, variables, state, lines, native), client_api if native else None)

    def answer_wire(self, kind: str) -> str | None:
        """The wire format of an upstream answer read as it came (OpenAI's, when the call
        has no answer template), so its bytes can go to a client of that API unchanged."""
        call = self._chat if kind == "chat" else self._embeddings
        return OPENAI_WIRE if call is not None and call.answer is None else None

    # -------------------------------------------------------------------- errors

    def error(self, target: Target, status: int, raw: bytes, headers: Mapping[str, str]) -> UpstreamFailure:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        failure = None
        if self._error is not None:
            failure = self._templated_error(target, status, data, raw, headers)
        elif isinstance(data, dict):
            failure = openai_failure(data, status)
        if failure is None:
            failure = UpstreamFailure(
                status,
                {"message": f"{target.id} answered HTTP {status}", "type": "upstream_error", "param": None, "code": None},
                classify_status(status),
            )
        if failure.retry_after is None:
            failure.retry_after = retry_after_seconds(headers)
        return failure

    def _templated_error(
        self, target: Target, status: int, data: Any, raw: bytes, headers: Mapping[str, str]
    ) -> UpstreamFailure | None:
        variables = self._variables(target, {
            "status": status, "answer": data, "text": raw[:2000].decode("utf-8", "replace"),
            "headers": {k.lower(): v for k, v in headers.items()},
        })
        try:
            value = self._error.render_one(variables)  # type: ignore[union-attr]
        except RENDER_ERRORS:
            return None  # an error body the pack did not expect still fails cleanly below
        if not isinstance(value, dict):
            return None
        return failure_from_value(value, status)


# ---------------------------------------------------------------------- values

@dataclass(slots=True)
class _Prepared:
    """What `prepare` rendered for one target: its template scope, and per (call, streamed)
    the URL and headers as sent, when they read the target's config alone."""

    target: Target
    scope: dict[str, Any]
    calls: dict[tuple[int, bool], tuple[str, dict[str, str]]] = field(default_factory=dict)


def _address(call: CompiledCall, stream: bool) -> tuple[TextTemplate, Headers]:
    """The URL path template and query of a call, streamed or not."""
    if stream and call.stream is not None:
        return call.stream.url or call.url, call.query + call.stream.query
    return call.url, call.query


def _is_plain(call: CompiledCall, pack_headers: Headers) -> bool:
    texts = [call.url, *(t for _, t in call.query + call.headers + pack_headers)]
    if call.stream is not None:
        texts += [t for t in (call.stream.url,) if t is not None] + [t for _, t in call.stream.query]
    return call.body is None and all(t.template is None for t in texts)


