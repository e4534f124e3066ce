"""The semantic cache: a question asked in other words is answered from the cache.

A route with `cache.semantic` consults it after an exact miss. What makes it safe:

- only a request that would get about the same answer twice takes part: no tools, a
  `temperature` at most `max_temperature` (none sent counts as 1, the providers'
  default), one answer (`n` 1), no image or other non-text part; anything else is never
  looked up nor stored (`refusal` says why, and `gateway explain` shows it);
- a question is compared only with questions of its own *partition*: a hash of the
  caller's scope (`cache.scope`, as for the exact cache), the alias, the client API,
  the system prompt (exactly), every other setting of the body (max_tokens,
  response_format, stop, ...), the effective tier cap and the embeddings route. So an
  entry never crosses a scope, a system prompt or a tier, however similar the words;
- an entry is served only at or above the route's `threshold` of cosine similarity.

The question's text (the last user message, or the whole conversation with
`compare: messages`) is embedded by the route's embeddings route, through the gateway's
own pipeline and as the same caller, so that call has its limits, cost, log line and
ledger row like any embeddings request. It is bounded by `timeout`: an embedding that
fails or is late is a plain miss, counted, never a failed request.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from gateway.config.snapshot import Route, Semantic
from gateway.observe import metrics
from gateway.pipeline.cache import IGNORED
from gateway.pipeline.request import ModelRequest
from gateway.store.semantic import Found, SemanticEntries
from gateway.values import value

if TYPE_CHECKING:
    import numpy as np

PARTITION_FORMAT = "s1"  # bump when what goes into a partition changes
DEFAULT_TEMPERATURE = 1.0  # what OpenAI and Anthropic use when a request sends none
SYSTEM_ROLES = frozenset({"system", "developer"})
# Body fields that hold the conversation itself (compared by meaning), in each client API.
CONVERSATION = frozenset({"messages", "system", "input", "instructions"})

# Turns text into a vector through the named embeddings route, as the request's caller.
Embed = Callable[[str, str], Awaitable[Any]]
# Stores an answer under the question's vector: (target, answer JSON, ttl).
Store = Callable[[str, bytes, float], Awaitable[None]]


@value
class Question:
    """What the semantic cache compares (`text`) and within what (`partition`)."""

    text: str
    partition: str


@value
class Recall:
    """A semantic lookup's result: the entry to serve, if any, and how to store the fresh answer."""

    found: Found | None = None  # the nearest entry; its `answer` is set when it may be served
    store: Store | None = None


NOTHING = Recall()


def refusal(settings: Semantic, request: ModelRequest) -> str | None:
    """Why this request is never looked up nor stored (a metric label), or None when it may be."""
    body = request.body
    native = request.native_body or {}
    if "tools" in request.needs or body.get("tools") or body.get("functions") or native.get("tools"):
        return "tools"
    temperature = body.get("temperature")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool):
        temperature = DEFAULT_TEMPERATURE
    if temperature > settings.max_temperature:
        return "temperature"
    if request.choices > 1:
        return "choices"
    if "vision" in request.needs:
        return "images"
    if question_text(settings.compare, body.get("messages") or []) is None:
        return "no_question"
    return None


REASONS = {
    "tools": "the request carries tools",
    "temperature": "its temperature is above the route's max_temperature (none sent counts as 1)",
    "choices": "it asks for more than one answer (n > 1)",
    "images": "it carries an image",
    "no_question": "it does not end with a user message of plain text (with compare: messages, every turn must be)",
}


def _text(content: Any) -> str | None:
    """A message's content as plain text; None when it holds anything but text."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            return None
        texts.append(part["text"])
    return "\n".join(texts)


def question_text(compare: str, messages: list[Any]) -> str | None:
    """The text to embed: the last message when it is the user's, or every turn after the
    system prompt (`compare: messages`); None when the request does not end with a user
    question in plain text."""
    turns = [m for m in messages if isinstance(m, dict) and m.get("role") not in SYSTEM_ROLES]
    if not turns or turns[-1].get("role") != "user":
        return None
    last = _text(turns[-1].get("content"))
    if not last or not last.strip():
        return None
    if compare == "last_user_message":
        return last
    lines = []
    for turn in turns:
        text = _text(turn.get("content"))
        if text is None:
            return None
        lines.append(f"{turn.get('role')}: {text}")
    return "\n".join(lines)


def question(
    settings: Semantic, route: Route, request: ModelRequest, owner: str, tier_cap: str | None
) -> Question:
    """The request's question and its partition (see the module's docstring)."""
    body = request.body
    messages = body.get("messages") or []
    system = [m for m in messages if isinstance(m, dict) and m.get("role") in SYSTEM_ROLES]
    source = request.native_body if request.native_body is not None else body
    rest = {k: v for k, v in source.items() if k not in IGNORED and k not in CONVERSATION and k != "model"}
    rest.pop("temperature", None)  # any temperature under the ceiling gives about the same answer
    partition = {
        "format": PARTITION_FORMAT, "owner": owner, "alias": route.alias, "api": request.api, "kind": request.kind,
        "system": system, "settings": rest, "tier": tier_cap, "embed": settings.embed, "compare": settings.compare,
    }
    digest = hashlib.sha256(orjson.dumps(partition, option=orjson.OPT_SORT_KEYS)).hexdigest()
    text = question_text(settings.compare, messages)
    assert text is not None  # refusal() said it is there
    return Question(text, digest)


def vector_of(answer: dict[str, Any]) -> np.ndarray:
    """The first embedding of an embeddings answer (OpenAI's shape), as a unit vector."""
    data = answer.get("data")
    embedding = data[0].get("embedding") if isinstance(data, list) and data and isinstance(data[0], dict) else None
    if not isinstance(embedding, list) or not embedding:
        raise ValueError("the embeddings answer has no vector")
    # numpy loads with the first vector, not with the gateway
    from gateway.store.vectors import unit

    vector = unit(embedding)
    if vector is None:
        raise ValueError("the embedding has no direction")
    return vector


async def recall(
    entries: SemanticEntries, route: Route, request: ModelRequest, owner: str, tier_cap: str | None, look: bool,
    embed: Embed,
) -> Recall:
    """Embed the request's question, find its nearest cached neighbour (when `look`) and
    say how to store the fresh answer; NOTHING when the request takes no part or the
    embedding fails."""
    settings = route.semantic
    assert settings is not None
    reason = refusal(settings, request)
    if reason is not None:
        metrics.semantic_bypassed(route.alias, reason)
        return NOTHING
    asked = question(settings, route, request, owner, tier_cap)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(settings.timeout):
            vector = vector_of(await embed(settings.embed, asked.text))
    except TimeoutError:
        metrics.semantic_embedding_failed(route.alias, "timeout")
        return NOTHING
    except Exception:  # the embeddings route refused, failed or answered nonsense: a plain miss
        metrics.semantic_embedding_failed(route.alias, "error")
        return NOTHING
    metrics.semantic_embedded(route.alias, time.perf_counter() - started)
    found = None
    if look:
        found = await entries.find(route.alias, settings.max_entries, asked.partition, vector, settings.threshold)
        hit = found is not None and found.answer is not None
        metrics.semantic_lookup(route.alias, hit, found.similarity if found is not None else None)

    async def store(target: str, answer: bytes, ttl: float) -> None:
        await entries.add(route.alias, settings.max_entries, asked.partition, vector, target, answer, ttl)

    return Recall(found, store)
