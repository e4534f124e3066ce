"""The `echo` pack: answers in-process, so the shipped config works with no keys.

It is also the cheapest possible target for tests and for trying routes: the answer
is `Echo: <last user text>`, streamed word by word, with token counts that add up,
and embeddings are deterministic vectors derived from the text.

It keeps the request's promises as a real model would, so a client's own checks pass:
`n` answers, JSON that conforms to a `json_schema` response format (or an object for
`json_object`), and tool calls whose arguments conform to the tool's parameters (see
`_schema_example`): the tool a `tool_choice` forces, or, left to itself, a tool the user's
message mentions, until a tool's result comes back.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from gateway.config.snapshot import Target
from gateway.errors import BadRequest
from gateway.ids import random_hex, short_id
from gateway.providers.events import (
    COMPLETE,
    End,
    Event,
    EventStream,
    Finish,
    Start,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from gateway.providers.packs._schema_example import example_of
from gateway.providers.packs.wire import UpstreamFailure, UpstreamRequest
from gateway.providers.tokens import estimate_prompt_tokens, estimate_text_tokens


def last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
                )
    return ""


def embedding_for(text: str, dimensions: int) -> list[float]:
    """A unit vector that depends only on the text: equal inputs, equal vectors."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend(v / 2**31 - 1.0 for v in struct.unpack(">8I", digest))
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def answer_text(body: dict[str, Any], said: str) -> str:
    """`Echo: <text>`, or JSON when the request's `response_format` asks for it."""
    wanted = body.get("response_format")
    kind = wanted.get("type") if isinstance(wanted, dict) else None
    if kind == "json_schema":
        spec = wanted.get("json_schema") if isinstance(wanted, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return json_text(example_of(schema if isinstance(schema, dict) else {"type": "object"}, said))
    if kind == "json_object":
        return json_text({"echo": said})
    return "Echo: " + said


def called_tool(body: dict[str, Any]) -> tuple[str, Any] | None:
    """(name, parameters) of the function tool echo calls, or None to answer in words.

    A forcing `tool_choice` picks the tool it names (the first for `required`). Left to
    itself (`auto`, or none given), echo calls a tool the user's last message mentions (see
    `_mentions`), and answers in words once a tool's result has come back, so an agent's
    loop runs one tool round and ends, as it would with a model. A message that mentions
    no tool gets words: an agent offering echo its whole toolbox is not sent calls it did
    not ask for."""
    tools = [t.get("function") for t in body.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"]
    functions = [f for f in tools if isinstance(f, dict) and isinstance(f.get("name"), str)]
    choice = body.get("tool_choice")
    chosen: dict[str, Any] | None = None
    if not functions or choice == "none":
        return None
    if isinstance(choice, dict):
        named = choice.get("function") if isinstance(choice.get("function"), dict) else {}
        chosen = next((f for f in functions if f["name"] == named.get("name")), None)
    elif choice == "required":
        chosen = functions[0]
    elif choice in (None, "auto") and _users_turn(body.get("messages")):
        said = last_user_text(body["messages"])
        chosen = next((f for f in functions if _mentions(said, f["name"])), None)
    if chosen is None:
        return None
    return chosen["name"], chosen.get("parameters") or {"type": "object", "properties": {}}


def _users_turn(messages: Any) -> bool:
    """Whether the conversation's last message is the user's (not a tool's result)."""
    last = messages[-1] if isinstance(messages, list) and messages else None
    return isinstance(last, dict) and last.get("role") == "user"


def _mentions(text: str, name: str) -> bool:
    """Whether `text` names the tool: its whole name as a word, or a word of five letters or
    more from it (`get_weather` is mentioned by "weather", `WebFetch` by "fetch")."""
    words = set(re.findall(r"[a-z0-9]+", text.lower()))
    parts = re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name)
    return name.lower() in words or any(len(part) >= 5 and part.lower() in words for part in parts)


def json_text(value: Any) -> str:
    """Spaced like the JSON a model writes, so a stream's word-by-word deltas stay readable."""
    return json.dumps(value, ensure_ascii=False)


def copy_message(message: dict[str, Any]) -> dict[str, Any]:
    """Another choice's message: its own dicts, and its own tool call ids."""
    copied = dict(message)
    if message.get("tool_calls"):
        copied["tool_calls"] = [{**c, "id": short_id("call_"), "function": dict(c["function"])}
                                for c in message["tool_calls"]]
    return copied


def _pieces(text: str) -> list[str]:
    """The text split at its spaces, each piece but the first keeping the space before it."""
    words = text.split(" ")
    return [words[0], *(" " + w for w in words[1:])]


class EchoPack:
    """The built-in `echo` pack: answers in the process, so a fresh install works with no key."""

    name = "echo"
    local = True
    user_file = None
    serves_chat = True
    serves_embeddings = True
    speaks: frozenset[str] = frozenset()
    signer = None
    reads_bytes = False
    maps = None  # not filtered by what it carries (pipeline/mapping.py): it only echoes

    def chat_local(self, target: Target, body: dict[str, Any]) -> dict[str, Any]:
        said = last_user_text(body["messages"])
        call = called_tool(body)
        message: dict[str, Any]
        if call is not None:
            name, parameters = call
            example = example_of(parameters, said)
            arguments = json_text(example if isinstance(example, dict) else {})  # arguments are always an object
            message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
                {"id": short_id("call_"), "type": "function", "function": {"name": name, "arguments": arguments}}]}
            finish, written = "tool_calls", arguments
        else:
            written = answer_text(body, said)
            message = {"role": "assistant", "content": written, "refusal": None}
            finish = "stop"
        count = body.get("n") or 1
        prompt = estimate_prompt_tokens(body)
        completion = estimate_text_tokens(written) * count
        return {
            "id": "chatcmpl-" + random_hex(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": target.model,
            "choices": [
                {"index": i, "message": message if i == 0 else copy_message(message),
                 "logprobs": None, "finish_reason": finish}
                for i in range(count)
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }

    async def chat_local_events(self, target: Target, body: dict[str, Any]) -> AsyncIterator[Event]:
        """The answer a word at a time, as a provider would stream it."""
        answer = self.chat_local(target, body)
        yield Start(answer["id"], target.model, answer["created"])
        for choice in answer["choices"]:
            index, message = choice["index"], choice["message"]
            for call in message.get("tool_calls") or ():
                function = call["function"]
                yield ToolCallDelta(0, call["id"], function["name"], "", choice=index)
                for piece in _pieces(function["arguments"]):
                    yield ToolCallDelta(0, arguments=piece, choice=index)
            if message["content"] is not None:
                for piece in _pieces(message["content"]):
                    yield TextDelta(piece, choice=index)
            yield Finish(choice["finish_reason"], choice=index)
        yield Usage(answer["usage"])
        yield End(COMPLETE)

    def embeddings_local(self, target: Target, body: dict[str, Any]) -> dict[str, Any]:
        raw = body["input"]
        inputs = [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else list(raw)
        dimensions = body.get("dimensions") or 16
        if dimensions > 4096:
            raise BadRequest("'dimensions' must be at most 4096 for echo", param="dimensions")
        data = []
        tokens = 0
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(map(str, item))
            tokens += estimate_text_tokens(text)
            data.append({"object": "embedding", "index": index, "embedding": embedding_for(text, dimensions)})
        return {
            "object": "list",
            "data": data,
            "model": target.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    # A local pack is never asked for HTTP; these exist to satisfy the protocol honestly.
    def chat_request(self, target: Target, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        raise NotImplementedError("echo answers in-process")

    embeddings_request = chat_request  # type: ignore[assignment]

    def chat_answer(self, target: Target, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        raise NotImplementedError("echo answers in-process")

    embeddings_answer = chat_answer

    def native_request(self, target: Target, api: str, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        raise NotImplementedError("echo answers in-process")

    def native_answer(self, target: Target, api: str, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        raise NotImplementedError("echo answers in-process")

    def chat_events(
        self, target: Target, body: dict[str, Any], lines: AsyncIterator[bytes], client_api: str, native: bool = False
    ) -> EventStream:
        raise NotImplementedError("echo answers in-process")

    def answer_wire(self, kind: str) -> str | None:
        return None

    def error(self, target: Target, status: int, raw: bytes, headers: Mapping[str, str]) -> UpstreamFailure:
        raise NotImplementedError("echo answers in-process")

    def prepare(self, target: Target) -> None:
        pass  # nothing is rendered for an in-process answer

    def rate_limit_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {}  # no upstream, no provider limits
