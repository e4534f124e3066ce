"""The `echo` pack: answers in-process, so the shipped config works with no keys.

It is also the cheapest possible target for tests and for trying routes: the answer
is `Echo: <last user text>`, streamed word by word, with token counts that add up,
and embeddings are deterministic vectors derived from the text.
"""

from __future__ import annotations

import hashlib
import math
import struct
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from gateway.config.snapshot import Target
from gateway.errors import BadRequest
from gateway.ids import random_hex
from gateway.providers.events import (
    COMPLETE,
    End,
    Event,
    EventStream,
    Finish,
    Start,
    TextDelta,
    Usage,
)
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
        text = "Echo: " + last_user_text(body["messages"])
        prompt = estimate_prompt_tokens(body)
        completion = estimate_text_tokens(text)
        return {
            "id": "chatcmpl-" + random_hex(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": target.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }

    async def chat_local_events(self, target: Target, body: dict[str, Any]) -> AsyncIterator[Event]:
        """The answer a word at a time, as a provider would stream it."""
        answer = self.chat_local(target, body)
        text = answer["choices"][0]["message"]["content"]
        yield Start(answer["id"], target.model, answer["created"])
        for i, word in enumerate(text.split(" ")):
            yield TextDelta(word if i == 0 else " " + word)
        yield Finish("stop")
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
