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

import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson

from gateway.api.openai.stream import DONE, error_frame
from gateway.api.sse import write
from gateway.errors import BadRequest
from gateway.ids import random_hex
from gateway.providers.events import (
    End,
    Event,
    EventStream,
    Finish,
    Start,
    TextDelta,
    Usage,
)
from gateway.providers.packs.template_pack import LEGACY_COMPLETIONS as API

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


def _completion_id(chat_id: Any) -> str:
    if isinstance(chat_id, str) and chat_id.startswith("chatcmpl-"):
        return "cmpl-" + chat_id.removeprefix("chatcmpl-")
    return chat_id if isinstance(chat_id, str) else "cmpl-" + random_hex()


def text_sse(stream: EventStream, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    """A stream's events as a text completion stream; a stream that already is one (the
    upstream spoke the legacy endpoint) goes out as its own frames."""
    return write(stream, API, TextWriter(model, include_usage))


class TextWriter:
    """Typed events as legacy text completion chunks."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.base: dict[str, Any] = {"id": "cmpl-" + random_hex(), "object": "text_completion",
                                     "created": int(time.time()), "model": model}
        self.include_usage = include_usage

    def event(self, event: Event) -> Iterable[bytes]:
        base = self.base
        if isinstance(event, Start):
            self.base = {**base, "id": _completion_id(event.id), "created": event.created or base["created"],
                         "model": event.model}
        elif isinstance(event, TextDelta) and event.field == "content":
            return (_frame(base, [{"text": event.text, "index": event.choice, "logprobs": None, "finish_reason": None}]),)
        elif isinstance(event, Finish):
            return (_frame(base, [{"text": "", "index": event.choice, "logprobs": None, "finish_reason": event.reason}]),)
        elif isinstance(event, Usage) and self.include_usage:
            return (b"data: " + orjson.dumps({**base, "choices": [], "usage": event.usage}) + b"\n\n",)
        return ()

    def end(self, end: End, native: bool) -> Iterable[bytes]:
        return (DONE if end.complete else error_frame(end),)


def _frame(base: dict[str, Any], choices: list[dict[str, Any]]) -> bytes:
    return b"data: " + orjson.dumps({**base, "choices": choices}) + b"\n\n"
