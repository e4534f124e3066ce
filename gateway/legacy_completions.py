"""OpenAI's legacy text completions (POST /v1/completions) on chat routes.

A completions request is served by the same request path as chat: it is translated
once into a chat body (the prompt as one user message) for routing, limits, cost, the
cache and every target that only chats; the answer comes back as `text_completion`
(`choices[].text`). A target whose pack declares the legacy endpoint (`completions:`
in the pack; the built-in `openai` pack does) is sent the client's own body instead,
with only `model` replaced, and its answer or stream goes back as it came.

What only the legacy endpoint can do (`suffix`, `echo: true`, `best_of`, integer
`logprobs`, several prompts or token prompts in one request) needs such a target: the
others are skipped for it, and without one the client gets a 400 naming the field.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import orjson

from gateway.dispatch import Outcome
from gateway.errors import BadRequest
from gateway.packs.engine import UpstreamFailure, bad_upstream_body
from gateway.packs.framing import sse_events
from gateway.plan import CAPABILITY, Plan, Skipped
from gateway.snapshot import Target
from gateway.upstream import Upstream, lines

DONE = b"data: [DONE]\n\n"

# Fields passed to chat targets under the same name and meaning.
_CHAT_FIELDS = (
    "max_tokens", "temperature", "top_p", "stop", "n", "stream", "stream_options", "user",
    "presence_penalty", "frequency_penalty", "seed", "logit_bias",
)
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "max_tokens": ((int,), "an integer"),
    "n": ((int,), "an integer"),
    "best_of": ((int,), "an integer"),
    "logprobs": ((int,), "an integer"),
    "temperature": ((int, float), "a number"),
    "top_p": ((int, float), "a number"),
    "stop": ((str, list), "a string or a list of strings"),
    "stream": ((bool,), "a boolean"),
    "echo": ((bool,), "a boolean"),
    "suffix": ((str,), "a string"),
    "stream_options": ((dict,), "an object"),
}


def check(body: dict[str, Any]) -> None:
    """The body's own shape; what a target can do with it is the plan's business."""
    prompt = body.get("prompt")
    if not _is_prompt(prompt):
        raise BadRequest(
            "'prompt' is required: a string, a list of strings, or token arrays", param="prompt", code="invalid_type"
        )
    for name, value in body.items():
        rule = _TYPES.get(name)
        if rule is None or value is None:
            continue
        kinds, what = rule
        if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
            raise BadRequest(f"'{name}' must be {what}", param=name, code="invalid_type")


def _is_prompt(prompt: Any) -> bool:
    if isinstance(prompt, str):
        return True
    if not isinstance(prompt, list) or not prompt:
        return False
    if all(isinstance(p, str) for p in prompt):
        return True
    if all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
        return True
    return all(isinstance(p, list) and p and all(isinstance(t, int) for t in p) for p in prompt)


def native_only(body: dict[str, Any]) -> list[str]:
    """The fields of this request that only a target serving the legacy endpoint can honour."""
    fields = []
    prompt = body.get("prompt")
    if isinstance(prompt, list) and not (len(prompt) == 1 and isinstance(prompt[0], str)):
        fields.append("prompt")  # several prompts, or tokens: no chat message says that
    if body.get("suffix"):
        fields.append("suffix")
    if body.get("echo") is True:
        fields.append("echo")
    best_of = body.get("best_of")
    if isinstance(best_of, int) and best_of > (body.get("n") or 1):
        fields.append("best_of")
    if body.get("logprobs") is not None:
        fields.append("logprobs")
    return fields


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat body chat-only targets get: the prompt as one user message."""
    prompt = body.get("prompt")
    text = prompt if isinstance(prompt, str) else prompt[0] if isinstance(prompt[0], str) else ""
    chat: dict[str, Any] = {"model": body.get("model"), "messages": [{"role": "user", "content": text}]}
    for name in _CHAT_FIELDS:
        if body.get(name) is not None:
            chat[name] = body[name]
    # Only targets serving the legacy endpoint can take such a request, and they get the
    # client's own body: here the fields only keep apart cache entries that differ in them.
    for name in native_only(body):
        chat[name] = body[name]
    return chat


# ------------------------------------------------------------------ answers in the legacy shape


def text_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """A chat completion as a text completion."""
    choices = []
    for choice in answer.get("choices") or ():
        message = choice.get("message") or {}
        choices.append({
            "text": message.get("content") or "", "index": choice.get("index", 0), "logprobs": None,
            "finish_reason": choice.get("finish_reason") or "stop",
        })
    out = {
        "id": _completion_id(answer.get("id")), "object": "text_completion",
        "created": answer.get("created") or int(time.time()), "model": answer.get("model", ""), "choices": choices,
    }
    if answer.get("usage") is not None:
        out["usage"] = answer["usage"]
    return out


def chat_answer(completion: dict[str, Any]) -> dict[str, Any]:
    """A text completion as a chat completion: what the cache and accounting keep."""
    choices = [
        {"index": c.get("index", 0), "message": {"role": "assistant", "content": c.get("text") or ""},
         "finish_reason": c.get("finish_reason") or "stop"}
        for c in completion.get("choices") or () if isinstance(c, dict)
    ]
    out = {"id": completion.get("id"), "object": "chat.completion", "created": completion.get("created"),
           "model": completion.get("model"), "choices": choices}
    if isinstance(completion.get("usage"), dict):
        out["usage"] = completion["usage"]
    return out


def _completion_id(chat_id: Any) -> str:
    if isinstance(chat_id, str) and chat_id.startswith("chatcmpl-"):
        return "cmpl-" + chat_id.removeprefix("chatcmpl-")
    return chat_id if isinstance(chat_id, str) else f"cmpl-{os.urandom(16).hex()}"


async def text_frames(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A chat stream's frames as a text completion stream's; errors and [DONE] pass as they are."""
    async for frame in frames:
        if not frame.startswith(b"data: {"):
            yield frame
            continue
        chunk = orjson.loads(frame[6:])
        if "error" in chunk:
            yield frame
            continue
        choices = []
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            finish = choice.get("finish_reason")
            if not text and finish is None:
                continue  # the role-only opening chunk, tool-call pieces: nothing a text completion says
            choices.append({"text": text or "", "index": choice.get("index", 0), "logprobs": None, "finish_reason": finish})
        out: dict[str, Any] = {
            "id": _completion_id(chunk.get("id")), "object": "text_completion",
            "created": chunk.get("created") or int(time.time()), "model": chunk.get("model", ""), "choices": choices,
        }
        if chunk.get("usage"):
            out["usage"] = chunk["usage"]
        elif not choices:
            continue
        yield b"data: " + orjson.dumps(out) + b"\n\n"


# ------------------------------------------------------------------ targets that speak it


def speaks_completions(target: Target) -> bool:
    return not target.pack.local and bool(getattr(target.pack, "serves_completions", False))


@dataclass(frozen=True, slots=True)
class NativeCompletions:
    """A legacy completions request as the targets that serve the endpoint get it (dispatch's `NativeCall`)."""

    body: dict[str, Any]  # the client's own body
    stream: bool
    needs_native: tuple[str, ...]  # fields only such targets can honour

    @classmethod
    def of(cls, body: dict[str, Any]) -> NativeCompletions:
        return cls(body, body.get("stream") is True, tuple(native_only(body)))

    def speaks(self, target: Target) -> bool:
        return speaks_completions(target)

    def narrow(self, plan: Plan) -> Plan:
        """The plan without the targets that cannot honour the fields only the legacy endpoint has."""
        if not self.needs_native:
            return plan
        keep, skipped = [], list(plan.skipped)
        fields = ", ".join(self.needs_native)
        for target in plan.candidates:
            if self.speaks(target):
                keep.append(target)
            else:
                skipped.append(Skipped(
                    target.id, CAPABILITY,
                    f"the request uses {fields}, which needs a pack serving the legacy completions endpoint",
                    self.needs_native[0],
                ))
        return replace(plan, candidates=tuple(keep), skipped=tuple(skipped))

    async def call(self, upstream: Upstream, target: Target, outcome: Outcome) -> None:
        request = target.pack.completions_request(target, self.body, self.stream)  # type: ignore[attr-defined]
        response = await upstream.send(request, target.connect_timeout, target.read_timeout)
        if not self.stream or response.status >= 300:
            try:
                raw = await response.read()
            finally:
                response.release()
            if response.status >= 300:
                raise target.pack.error(target, response.status, raw, response.headers)
            outcome.rate_limits = target.pack.rate_limit_headers(response.headers)
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise bad_upstream_body(target, "a body that is not JSON") from None
            if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
                raise bad_upstream_body(target, "a completion without choices")
            outcome.answer = chat_answer(data)
            outcome.usage = outcome.answer.get("usage")
            outcome.native_answer = raw
            return
        outcome.rate_limits = target.pack.rate_limit_headers(response.headers)
        events = sse_events(lines(response))
        try:
            first = await anext(events)
            _failure_in(target, first[1])  # refused after the 200 but before any content: still replaceable
        except StopAsyncIteration:
            response.release()
            raise bad_upstream_body(target, "an empty stream") from None
        except BaseException:
            response.release()
            raise
        outcome.native_stream = True
        outcome.stream = _relay(target, first[1], events, response, outcome)


def _failure_in(target: Target, payload: bytes) -> None:
    if not payload.startswith(b"{"):
        return
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise bad_upstream_body(target, "a stream event that is not JSON") from None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = data["error"]
        raise UpstreamFailure(502, {"message": str(error.get("message", "")), "type": error.get("type") or "upstream_error",
                                    "param": None, "code": error.get("code")}, "server_error")


async def _relay(
    target: Target, first: bytes, events: AsyncIterator[tuple[str | None, bytes]],
    response: aiohttp.ClientResponse, outcome: Outcome,
) -> AsyncIterator[bytes]:
    """The provider's frames as they come (usage and text read on the way); a stream that
    ends without [DONE] or breaks off ends with an error event, never quietly."""
    payload = first
    try:
        while True:
            if payload.strip() == b"[DONE]":
                yield DONE
                return
            _read(payload, outcome)
            yield b"data: " + payload + b"\n\n"
            try:
                _, payload = await anext(events)
            except StopAsyncIteration:
                break
        yield _error_event(f"the stream from {target.id} ended before [DONE]")
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        kind = "timeout" if isinstance(exc, TimeoutError) else "connection"
        yield _error_event(f"the stream from {target.id} broke off ({kind})")
    finally:
        response.release()


def _read(payload: bytes, outcome: Outcome) -> None:
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return
    if not isinstance(chunk, dict):
        return
    if isinstance(chunk.get("usage"), dict):
        outcome.usage = chunk["usage"]
    for choice in chunk.get("choices") or ():
        text = choice.get("text") if isinstance(choice, dict) else None
        if isinstance(text, str):
            outcome.stream_chars += len(text)


def _error_event(message: str) -> bytes:
    body = {"error": {"message": message, "type": "upstream_error", "param": None, "code": "stream_interrupted"}}
    return b"data: " + orjson.dumps(body) + b"\n\n"
