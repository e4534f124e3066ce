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
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from jinja2 import StrictUndefined, Undefined

from gateway.errors import BadRequest
from gateway.packs.engine import (
    FALLBACK_CLASSES,
    UpstreamFailure,
    UpstreamRequest,
    bad_upstream_body,
    classify_status,
    retry_after_seconds,
)
from gateway.packs.framing import FRAMINGS
from gateway.packs.helpers import StreamState
from gateway.packs.templates import RENDER_ERRORS, TextTemplate, ValueTemplate, scope
from gateway.snapshot import Target

Headers = tuple[tuple[str, TextTemplate], ...]


@dataclass(frozen=True, slots=True)
class CompiledStream:
    url: TextTemplate | None
    query: Headers
    framing: str
    done: bytes | None
    skip_empty_chunks: bool
    events: Mapping[str, ValueTemplate]
    end: ValueTemplate | None


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
class Auth:
    style: str
    name: str | None


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
    ):
        self.name = name
        self.source = source
        self._auth = auth
        self._headers = headers
        self._chat = chat
        self._embeddings = embeddings
        self._error = error
        self._constants = constants or {}
        self.serves_chat = chat is not None
        self.serves_embeddings = embeddings is not None
        self.user_file: str | None = None  # set for an operator's pack file (not a built-in)
        # Calls with no template at all (the openai pack) never build a template scope.
        self._plain = {id(c): _is_plain(c, headers) for c in (chat, embeddings) if c is not None}

    # ------------------------------------------------------------------ requests

    def chat_request(self, target: Target, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        call = self._need(self._chat, target, "chat")
        return self._request(call, target, body, stream, {"body": body, "stream": stream})

    def native_chat_request(self, target: Target, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        """A chat body already in this pack's own wire format (an Anthropic client to the
        `anthropic` pack): URL, auth and headers as usual, the body sent as it is with only
        `model` replaced. No body template runs, so nothing the client said is lost."""
        call = self._need(self._chat, target, "chat")
        return self._request(call, target, body, stream, {"body": body, "stream": stream}, native=True)

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
        variables = None if self._plain[id(call)] else self._variables(target, extra)
        url_template, query = call.url, call.query
        if stream and call.stream is not None:
            url_template = call.stream.url or url_template
            query = query + call.stream.query
        try:
            url = target.base_url + url_template.render(variables)
            params = [(name, t.render(variables)) for name, t in query]
            headers = {"content-type": "application/json"}
            for name, template in self._headers + call.headers:
                headers[name] = template.render(variables)
            if call.body is None or native:
                out = dict(body)
                out["model"] = target.model
            else:
                out = _request_value(call.body.render_one(variables))
            payload = orjson.dumps(out)
        except BadRequest:
            raise
        except RENDER_ERRORS as exc:
            raise BadRequest(
                f"the request cannot be translated for {target.id}: {_reason(exc)}", code="untranslatable_request"
            ) from None
        key = target.api_key
        if key:
            style = self._auth.style
            if style == "bearer":
                headers["authorization"] = f"Bearer {key}"
            elif style == "header":
                headers[self._auth.name or "api-key"] = key
            elif style == "query":
                params.append((self._auth.name or "key", key))
        headers.update(target.headers)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        return UpstreamRequest(call.method, url, headers, payload)

    def _variables(self, target: Target, extra: dict[str, Any]) -> dict[str, Any]:
        """What every template sees: the target (never its key), its params, the pack's constants."""
        view = {"id": target.id, "provider": target.provider, "model": target.model, "base_url": target.base_url}
        return scope({"target": view, "params": target.params, "constants": self._constants, **extra})

    # ------------------------------------------------------------------- answers

    def chat_answer(self, target: Target, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        call = self._need(self._chat, target, "chat")
        data = _decode(target, raw)
        if call.answer is None:
            return _openai_shaped(target, data, "choices")
        value = self._read(target, call.answer, {"answer": data, "body": body}, "an answer")
        if not isinstance(value, dict) or not isinstance(value.get("choices"), list):
            raise bad_upstream_body(target, "an answer the pack could not turn into choices")
        envelope = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()), "model": target.model}
        return {**envelope, **{k: v for k, v in value.items() if v is not None or k not in envelope}}

    def embeddings_answer(self, target: Target, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        call = self._need(self._embeddings, target, "embeddings")
        data = _decode(target, raw)
        if call.answer is None:
            return _openai_shaped(target, data, "data")
        value = self._read(target, call.answer, {"answer": data, "body": body}, "an embeddings answer")
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise bad_upstream_body(target, "an embeddings answer the pack could not turn into data")
        return {"object": "list", "model": target.model, **value}

    def _read(self, target: Target, template: ValueTemplate, extra: dict[str, Any], what: str) -> Any:
        try:
            return _answer_value(template.render_one(self._variables(target, extra)))
        except UpstreamFailure:
            raise
        except RENDER_ERRORS as exc:
            raise bad_upstream_body(target, f"{what} the pack could not read ({_reason(exc)})") from None

    # ------------------------------------------------------------------- streams

    def chat_stream(
        self, target: Target, body: dict[str, Any], lines: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        call = self._need(self._chat, target, "chat")
        spec = call.stream or _OPENAI_STREAM
        if not spec.events and spec.framing == "sse":
            return _openai_chunks(target, spec, lines)
        return self._translated_chunks(target, spec, body, lines)

    async def _translated_chunks(
        self, target: Target, spec: CompiledStream, body: dict[str, Any], lines: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        state = StreamState()
        variables = self._variables(target, {"body": body, "state": state, "include_usage": include_usage})
        envelope = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()), "model": target.model}
        complete = False
        async for name, payload in FRAMINGS[spec.framing](lines):
            if spec.done is not None and payload.strip() == spec.done:
                complete = True
                break
            event = _decode_event(target, payload)
            if not spec.events:
                yield _openai_chunk(target, event)
                continue
            template = spec.events.get(name) if name is not None else None
            if template is None:
                template = spec.events.get("default")
                if template is None:
                    continue  # an event the pack has nothing to say about (ping, citations, ...)
            variables["event"] = event
            variables["event_name"] = name
            for value in self._event_values(target, template, variables):
                yield {**envelope, **value}
        else:
            if spec.end is not None:
                variables["event"] = None
                variables["event_name"] = None
                for value in self._event_values(target, spec.end, variables):
                    yield {**envelope, **value}
        if not complete and not state.finished and (spec.done is not None or spec.events):
            raise bad_upstream_body(target, "a stream that ended before its last event")

    def _event_values(self, target: Target, template: ValueTemplate, variables: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            values = [_answer_value(v) for v in template.render(variables)]
        except UpstreamFailure:
            raise
        except RENDER_ERRORS as exc:
            raise bad_upstream_body(target, f"a stream event the pack could not read ({_reason(exc)})") from None
        out = []
        for value in values:
            if value is None or value == "":
                continue
            if not isinstance(value, dict):
                raise bad_upstream_body(target, "a stream event the pack turned into something other than a chunk")
            if "error" in value:
                raise _openai_failure(value, int(value.get("status") or 502))
            out.append(value)
        return out

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
            failure = _openai_failure(data, status)
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
        return _failure_from_value(value, status)


# ---------------------------------------------------------------------- values

def _is_plain(call: CompiledCall, pack_headers: Headers) -> bool:
    texts = [call.url, *(t for _, t in call.query + call.headers + pack_headers)]
    if call.stream is not None:
        texts += [t for t in (call.stream.url,) if t is not None] + [t for _, t in call.stream.query]
    return call.body is None and all(t.template is None for t in texts)


_OPENAI_STREAM = CompiledStream(None, (), "sse", b"[DONE]", False, {}, None)


async def _openai_chunks(target: Target, spec: CompiledStream, lines: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """An OpenAI-shaped SSE stream, read line by line: the pass-through hot path."""
    async for line in lines:
        if not line.startswith(b"data:"):
            continue  # blank separators, `event:` lines and `: keep-alive` comments
        payload = line[5:].strip()
        if payload == spec.done:
            return
        event = _decode_event(target, payload)
        if spec.skip_empty_chunks and _empty_chunk(event):
            continue
        yield _openai_chunk(target, event)
    if spec.done is not None:
        raise bad_upstream_body(target, f"a stream that ended without {spec.done.decode()}")


def _empty_chunk(event: Any) -> bool:
    """A chunk that says nothing: no choice with a delta or a finish, no usage, no error
    (Azure's content-filter annotations before and after the answer)."""
    if not isinstance(event, dict) or event.get("usage") or "error" in event:
        return False
    return all(not c.get("delta") and c.get("finish_reason") is None for c in event.get("choices") or () if isinstance(c, dict))


def _openai_chunk(target: Target, event: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise bad_upstream_body(target, "a stream event that is not a JSON object")
    if "error" in event:
        raise _openai_failure(event, 502)
    return event


_UNDEFINED = (Undefined, StrictUndefined)
_CONTAINERS = (dict, list)


def _request_value(value: Any) -> Any:
    """A rendered request body: absent (undefined) and null fields are left out.

    Written for speed (type identity, no recursion into leaves): it walks every rendered
    body once, and message texts and images are leaves it never looks into.
    """
    kind = type(value)
    if kind is dict:
        out = {}
        for key, item in value.items():
            if item is None or type(item) in _UNDEFINED:
                continue
            out[key] = _request_value(item) if type(item) in _CONTAINERS else item
        return out
    if kind is list:
        return [_request_value(item) if type(item) in _CONTAINERS else item for item in value if type(item) not in _UNDEFINED]
    return value


def _answer_value(value: Any) -> Any:
    """A rendered answer: an undefined field means the upstream left out something required."""
    kind = type(value)
    if kind is dict:
        for item in value.values():
            if type(item) in _CONTAINERS or type(item) in _UNDEFINED:
                _answer_value(item)
    elif kind is list:
        for item in value:
            if type(item) in _CONTAINERS or type(item) in _UNDEFINED:
                _answer_value(item)
    elif kind in _UNDEFINED:
        value._fail_with_undefined_error()
    return value


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _decode(target: Target, raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_upstream_body(target, "a body that is not JSON") from None


def _decode_event(target: Target, payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise bad_upstream_body(target, "a stream event that is not JSON") from None


def _openai_shaped(target: Target, data: Any, required: str) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get(required), list):
        raise bad_upstream_body(target, f"an answer without '{required}'")
    return data


def _openai_failure(data: dict[str, Any], status: int) -> UpstreamFailure:
    """Read OpenAI's `{"error": {...}}` (or the unwrapped form some servers send)."""
    error = data.get("error", data)
    if not isinstance(error, dict):
        error = {"message": str(error)}
    return _failure_from_value(error, status)


def _failure_from_value(value: dict[str, Any], status: int) -> UpstreamFailure:
    status = int(value.get("status") or status)
    code = value.get("code")
    code = str(code) if code is not None else None
    clean = {
        "message": str(value.get("message") or f"upstream answered HTTP {status}"),
        "type": str(value.get("type") or "upstream_error"),
        "param": value.get("param"),
        "code": code,
    }
    fallback = value.get("class", classify_status(status, code)) if "class" in value else classify_status(status, code)
    if fallback is not None and fallback not in FALLBACK_CLASSES:
        fallback = classify_status(status, code)
    retry_after = value.get("retry_after")
    return UpstreamFailure(status, clean, fallback, float(retry_after) if isinstance(retry_after, (int, float)) else None)
