"""The exact-match response cache of routes that set `cache: {ttl}`.

An entry belongs to a caller. Its key is a hash of:
- the key format version (`KEY_FORMAT`): entries written under an older format are
  never found, so a change of what goes into a key cannot serve an entry made without it;
- the owner, by the route's `cache.scope`: the calling key (`key`, the default), the
  key's tenant (`tenant`; a key with no tenant is its own), or nobody in particular
  (`route`: every caller of the route shares, for public prompts only);
- the request's effective tier cap (the key's `max_tier` or a lower
  `x-gateway-max-tier`), so a capped caller never shares entries with a wider one;
- the endpoint, the alias and the request body without the fields that do not change
  the answer (`stream`, `user`, ...), serialized with sorted keys.

An entry also names the target that wrote it; the caller must be allowed that target
now (see `completion.may_serve`), or the entry is a miss.

A plain answer and a streamed answer fill the same entry, and either can serve both: a
streamed request is answered from a cached answer replayed as the events of a stream. Only complete
answers are stored: errors and streams that broke off or were abandoned never are.

The cache fails open: a store that cannot answer is a miss.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from gateway.config.snapshot import Key
from gateway.observe import metrics
from gateway.providers.events import (
    COMPLETE,
    End,
    Event,
    Finish,
    Start,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from gateway.store import Store, StoreUnavailable
from gateway.values import value

# Fields that change how or for whom an answer is delivered, never what it says.
IGNORED = frozenset({"stream", "stream_options", "user", "metadata", "store", "prompt_cache_key", "safety_identifier"})
SEPARATOR = b"\n"  # between the answering target's id and the answer's JSON
KEY_FORMAT = "c2"  # bump when what goes into a key changes; "c1" keys had no owner and no tier

# What the request's own `cache-control` header may ask for, as HTTP caches read it.
LOOKUP_AND_STORE = (True, True)
STORE_ONLY = (False, True)  # no-cache (or max-age=0): answer fresh, keep the fresh answer
NEITHER = (False, False)  # no-store: neither read nor write the cache


@value
class Cached:
    target: str
    answer: bytes  # the OpenAI answer as JSON, ready to send


@value
class Keep:
    """Where a complete answer is stored: the exact entry, and with `cache.semantic` the
    semantic one too (a store that knows the question's vector and partition)."""

    key: str
    ttl: float
    semantic: Callable[[str, bytes, float], Awaitable[None]] | None = None


def owner(scope: str, key: Key | None) -> str:
    """Who an entry belongs to under the route's scope; on an open gateway every caller is one."""
    if scope == "route":
        return "route"
    if key is None:
        return "open"
    if scope == "tenant" and key.tenant:
        return "tenant:" + key.tenant
    return "key:" + key.name


def cache_key(endpoint: str, alias: str, body: dict[str, Any], owner: str, tier_cap: str | None) -> str:
    normalized = {k: v for k, v in body.items() if k not in IGNORED}
    normalized["model"] = alias
    normalized["\x00endpoint"] = endpoint
    normalized["\x00owner"] = owner
    normalized["\x00tier"] = tier_cap
    return KEY_FORMAT + ":" + hashlib.sha256(orjson.dumps(normalized, option=orjson.OPT_SORT_KEYS)).hexdigest()


def request_control(header: str | None) -> tuple[bool, bool]:
    """(look up, store) for a request's `cache-control` header: no-store wins over no-cache."""
    if not header:
        return LOOKUP_AND_STORE
    directives = {part.strip().lower() for part in header.split(",")}
    if "no-store" in directives:
        return NEITHER
    if "no-cache" in directives or "max-age=0" in directives:
        return STORE_ONLY
    return LOOKUP_AND_STORE


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


async def keep(store: Store, where: Keep, target: str, answer: bytes) -> None:
    """Store a complete answer everywhere `where` says."""
    await save(store, where.key, target, answer, where.ttl)
    if where.semantic is not None:
        await where.semantic(target, answer, where.ttl)


async def replay(answer: dict[str, Any], model: str) -> AsyncIterator[Event]:
    """A complete chat answer as the events of a stream that says the same."""
    created = answer.get("created")
    yield Start(str(answer.get("id") or "chatcmpl-cached"), str(answer.get("model") or model),
                created if isinstance(created, int) else 0)
    for choice in answer.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        for name in ("content", "refusal", "reasoning_content"):
            if message.get(name):
                yield TextDelta(message[name], index, name)
        for position, call in enumerate(message.get("tool_calls") or ()):
            function = call.get("function") or {}
            yield ToolCallDelta(position, call.get("id"), function.get("name"), function.get("arguments") or "", index)
        yield Finish(choice.get("finish_reason") or "stop", index)
    if answer.get("usage") is not None:
        yield Usage(answer["usage"])
    yield End(COMPLETE)


class Assembler:
    """Rebuilds the complete answer from a stream's events, to cache a streamed miss."""

    def __init__(self, model: str) -> None:
        self.start = Start("chatcmpl-cached", model, 0)
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None

    def _choice(self, index: int) -> dict[str, Any]:
        choice = self.choices.get(index)
        if choice is None:
            choice = self.choices[index] = {"text": {}, "tools": {}, "finish": None}
        return choice

    def add(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._choice(event.choice)["text"].setdefault(event.field, []).append(event.text)
        elif isinstance(event, ToolCallDelta):
            slot = self._choice(event.choice)["tools"].setdefault(event.index, {"id": None, "name": "", "arguments": []})
            slot["id"] = event.id or slot["id"]
            slot["name"] += event.name or ""
            slot["arguments"].append(event.arguments)
        elif isinstance(event, Finish):
            self._choice(event.choice)["finish"] = event.reason
        elif isinstance(event, Usage):
            self.usage = event.usage
        elif isinstance(event, Start):
            self.start = event

    def answer(self) -> dict[str, Any]:
        choices = []
        for index in sorted(self.choices):
            choice = self.choices[index]
            message: dict[str, Any] = {"role": "assistant", "content": "".join(choice["text"].get("content", ())) or None}
            for name in ("refusal", "reasoning_content"):
                if choice["text"].get(name):
                    message[name] = "".join(choice["text"][name])
            if choice["tools"]:
                message["tool_calls"] = [
                    {"id": t["id"], "type": "function", "function": {"name": t["name"], "arguments": "".join(t["arguments"])}}
                    for _, t in sorted(choice["tools"].items())
                ]
            choices.append({"index": index, "message": message, "finish_reason": choice["finish"] or "stop"})
        start = self.start
        answer = {"id": start.id, "object": "chat.completion", "created": start.created, "model": start.model,
                  "choices": choices}
        if self.usage is not None:
            answer["usage"] = self.usage
        return answer
