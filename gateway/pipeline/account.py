"""Accounting: what an answer used, what it cost, and settling the admission with it.

Real usage comes from the answer (`usage`), for streams from their `Usage` event; when
an upstream sends none, tokens are estimated: the prompt from the request's own
estimate, the completion from the characters the stream's text events carried. Cost is
the answering target's price from providers.yaml. Settling replaces the admission's
estimates with these figures, frees its concurrency slots and adds to the usage totals.

A stream is accounted by `metered`, which reads the same events every other consumer
reads: it is settled when the stream ends, however it ends, and stored in the cache
only when its `End` says complete.

On Redis, the settle round trip runs after the answer has gone out, so the client never
waits for it; the estimates it replaces were high, so until it lands limits are only
stricter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from gateway.config.snapshot import Target
from gateway.observe import metrics
from gateway.observe.exchange import Exchange
from gateway.pipeline import cache
from gateway.pipeline.admit import Admission, settlement
from gateway.pipeline.dispatch import Answer
from gateway.pipeline.request import CHAT, ModelRequest
from gateway.providers.events import End, Event, EventStream, TextDelta, ToolCallDelta
from gateway.providers.events import Usage as UsageEvent
from gateway.providers.tokens import CHARS_PER_TOKEN
from gateway.store import StoreUnavailable, Usage

# Where an answer is stored when it completes, or None on a route that does not cache.
Keep = cache.Keep | None


def usage_tokens(
    usage: Any, prompt_estimate: Callable[[], int], completion_estimate: Callable[[], int]
) -> tuple[int, int]:
    """(prompt, completion) tokens from an OpenAI `usage` object, estimates where it is silent.

    The estimates are functions, called only when needed: nearly every answer carries usage.
    """
    if not isinstance(usage, dict):
        return prompt_estimate(), completion_estimate()
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    return (
        prompt if isinstance(prompt, int) else prompt_estimate(),
        completion if isinstance(completion, int) else (0 if "prompt_tokens" in usage else completion_estimate()),
    )


def answer_text_tokens(answer: dict[str, Any]) -> int:
    chars = 0
    for choice in answer.get("choices") or ():
        message = (choice.get("message") or {}) if isinstance(choice, dict) else {}
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        for call in message.get("tool_calls") or ():
            chars += len(str(call.get("function", ""))) if isinstance(call, dict) else 0
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def close(
    admission: Admission, exchange: Exchange, target: Target | None, prompt: int, completion: int, *, hit: bool = False
) -> None:
    """Record usage and settle the admission with what was really used. A plain function:
    what needs I/O (Redis) is handed to a task, so nothing here is awaited."""
    cost = target.price.cost(prompt, completion) if target is not None and not hit else 0.0
    exchange.charged = (prompt, completion, cost)
    if target is not None and not hit and not target.price.known:
        exchange.unpriced = True
        metrics.unpriced_served(exchange.route, target.id)
    admission.store.record(Usage(
        admission.windows, admission.key_name, admission.route,
        prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost,
        cache_hits=1 if hit else 0, errors=1 if target is None and not hit else 0,
    ))
    settled = settlement(admission, target, prompt + completion, cost)
    if settled is None:
        return
    # What needs no I/O (the memory store; what this replica's leases hold) is settled now,
    # which is cheaper than a task; only the rest waits for Redis, after the answer.
    rest = admission.store.settle_here(settled)
    if rest is not None:
        admission.spawn(_settle_quietly(admission, rest))


async def _settle_quietly(admission: Admission, settled: Any) -> None:
    try:
        await admission.store.settle(settled)
    except StoreUnavailable:
        pass  # leases expire on their own; buckets refill; the reservation stays counted


def failed(admission: Admission, exchange: Exchange) -> None:
    """No answer: nothing was used, everything taken is given back."""
    close(admission, exchange, None, 0, 0)


def reported(exchange: Exchange, target: Target, usage: Any) -> None:
    """What the provider reported, for the request's log line, metrics and span."""
    if not isinstance(usage, dict):
        return
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    exchange.prompt_tokens = prompt if isinstance(prompt, int) and prompt >= 0 else None
    exchange.completion_tokens = completion if isinstance(completion, int) and completion >= 0 else None
    exchange.cost_usd = target.price.cost(exchange.prompt_tokens or 0, exchange.completion_tokens or 0)
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    exchange.cached_tokens = cached if isinstance(cached, int) else 0


def answered(
    admission: Admission, target: Target, answer: Answer, request: ModelRequest, exchange: Exchange, keep: Keep
) -> None:
    """A plain answer: settle it and, when the route caches, store it."""
    body = answer.body
    usage = answer.usage
    prompt, completion = usage_tokens(
        usage, lambda: request.prompt_tokens, lambda: answer_text_tokens(body) if request.kind == CHAT else 0
    )
    reported(exchange, target, usage)
    close(admission, exchange, target, prompt, completion)
    if keep is not None:
        admission.spawn(cache.keep(admission.store, keep, target.id, orjson.dumps(body)))


def metered(
    stream: EventStream, admission: Admission, target: Target, request: ModelRequest, exchange: Exchange, keep: Keep
) -> EventStream:
    """The stream, accounted (and cached, when `keep` and complete) once it ends."""
    return EventStream(_metered(stream.events, admission, target, request, exchange, keep), stream.wire)


async def _metered(
    events: AsyncIterator[Event], admission: Admission, target: Target, request: ModelRequest, exchange: Exchange,
    keep: Keep,
) -> AsyncIterator[Event]:
    assembler = cache.Assembler(target.model) if keep is not None else None
    usage: dict[str, Any] | None = None
    chars = 0
    end: End | None = None
    try:
        async for event in events:
            if isinstance(event, (TextDelta, ToolCallDelta)):
                chars += len(event.text) if isinstance(event, TextDelta) else len(event.name or "") + len(event.arguments)
            elif isinstance(event, UsageEvent):
                usage = event.usage
            elif isinstance(event, End):
                end = event
            if assembler is not None:
                assembler.add(event)
            yield event
    finally:
        await _account(events, admission, target, request, exchange, usage, chars)
        exchange.stream_end = "disconnected" if end is None else "done" if end.complete else "error"
        if keep is not None and assembler is not None and end is not None and end.complete:
            admission.spawn(cache.keep(admission.store, keep, target.id, orjson.dumps(assembler.answer())))


async def _account(
    events: AsyncIterator[Event], admission: Admission, target: Target, request: ModelRequest, exchange: Exchange,
    usage: dict[str, Any] | None, chars: int,
) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()  # the upstream connection goes back at once, even when the client left early
    prompt, completion = usage_tokens(
        usage, lambda: request.prompt_tokens, lambda: (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN
    )
    reported(exchange, target, usage)
    close(admission, exchange, target, prompt, completion)
