"""The exact-match response cache of routes that set `cache: {ttl}`.

The key is a hash of the endpoint, the alias and the request body without the fields
that do not change the answer (`stream`, `user`, ...), serialized with sorted keys so
the same request always gives the same key. A plain answer and a streamed answer fill
the same entry, and either can serve both: a streamed request is answered from a cached
answer as a stream of chunks. Only complete answers are stored: errors and streams that
broke off or were abandoned never are.

The cache fails open: a store that cannot answer is a miss.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from gateway import metrics
from gateway.store import Store, StoreUnavailable

# Fields that change how or for whom an answer is delivered, never what it says.
IGNORED = frozenset({"stream", "stream_options", "user", "metadata", "store", "prompt_cache_key", "safety_identifier"})
SEPARATOR = b"\n"  # between the answering target's id and the answer's JSON


@dataclass(frozen=True, slots=True)
class Cached:
    target: str
    answer: bytes  # the OpenAI answer as JSON, ready to send


def cache_key(endpoint: str, alias: str, body: dict[str, Any]) -> str:
    normalized = {k: v for k, v in body.items() if k not in IGNORED}
    normalized["model"] = alias
    normalized["\x00endpoint"] = endpoint
    return hashlib.sha256(orjson.dumps(normalized, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def lookup(store: Store, route: str, key: str) -> Cached | None:
    try:
        raw = await store.cache_get(key)
    except StoreUnavailable:
        raw = None
    metrics.cache_lookup(route, raw is not None)
    if raw is None:
        return None
    target, _, answer = raw.partition(SEPARATOR)
    return Cached(target.decode(), answer)


async def save(store: Store, key: str, target: str, answer: bytes, ttl: float) -> None:
    try:
        await store.cache_put(key, target.encode() + SEPARATOR + answer, ttl)
    except StoreUnavailable:
        pass


def replay(answer: dict[str, Any], include_usage: bool) -> Iterator[bytes]:
    """A complete chat answer as the SSE frames of a stream that says the same."""
    base = {
        "id": answer.get("id", "chatcmpl-cached"),
        "object": "chat.completion.chunk",
        "created": answer.get("created", 0),
        "model": answer.get("model", ""),
    }
    for choice in answer.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": message.get("role", "assistant"), "content": message.get("content")}
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        if message.get("refusal"):
            delta["refusal"] = message["refusal"]
        yield _frame({**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        finish = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason") or "stop"}
        yield _frame({**base, "choices": [finish]})
    if include_usage and answer.get("usage") is not None:
        yield _frame({**base, "choices": [], "usage": answer["usage"]})
    yield b"data: [DONE]\n\n"


def _frame(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class Assembler:
    """Rebuilds the complete answer from a stream's chunks, to cache a streamed miss."""

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        if not self.head:
            self.head = {k: chunk.get(k) for k in ("id", "created", "model", "system_fingerprint") if k in chunk}
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for part in chunk.get("choices") or ():
            choice = self.choices.setdefault(
                part.get("index", 0), {"role": "assistant", "content": [], "tools": {}, "finish": None}
            )
            delta = part.get("delta") or {}
            if delta.get("role"):
                choice["role"] = delta["role"]
            if delta.get("content"):
                choice["content"].append(delta["content"])
            elif part.get("text"):  # a legacy text completion chunk (a native /v1/completions stream)
                choice["content"].append(part["text"])
            for call in delta.get("tool_calls") or ():
                slot = choice["tools"].setdefault(call.get("index", 0), {"id": None, "name": "", "arguments": []})
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"].append(function.get("arguments") or "")
            if part.get("finish_reason"):
                choice["finish"] = part["finish_reason"]

    def answer(self) -> dict[str, Any]:
        choices = []
        for index in sorted(self.choices):
            choice = self.choices[index]
            message: dict[str, Any] = {"role": choice["role"], "content": "".join(choice["content"]) or None}
            if choice["tools"]:
                message["tool_calls"] = [
                    {"id": t["id"], "type": "function", "function": {"name": t["name"], "arguments": "".join(t["arguments"])}}
                    for _, t in sorted(choice["tools"].items())
                ]
            choices.append({"index": index, "message": message, "finish_reason": choice["finish"] or "stop"})
        answer = {"object": "chat.completion", **self.head, "choices": choices}
        if self.usage is not None:
            answer["usage"] = self.usage
        return answer

    def text_length(self) -> int:
        """Characters of content and tool arguments so far (to estimate tokens when no usage came)."""
        total = 0
        for choice in self.choices.values():
            total += sum(len(piece) for piece in choice["content"])
            for tool in choice["tools"].values():
                total += len(tool["name"]) + sum(len(a) for a in tool["arguments"])
        return total
