"""Accounting: what an answer used, what it cost, and settling the admission with it.

Real usage comes from the answer (`usage`), for streams from the final chunk that
carries it; when an upstream sends none, tokens are estimated from the text. Cost is
the answering target's price from providers.yaml. Settling replaces the admission's
estimates with these figures, frees its concurrency slots and adds to the usage totals.

On Redis, the settle round trip runs after the answer has gone out, so the client never
waits for it; the estimates it replaces were high, so until it lands limits are only
stricter. A cached streamed miss is assembled here, as the frames pass, and stored only
when the stream ended with `[DONE]`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from gateway import cache
from gateway.admit import Admission, settlement
from gateway.snapshot import Target
from gateway.store import Usage
from gateway.tokens import CHARS_PER_TOKEN, estimate_input_tokens, estimate_prompt_tokens

DONE = b"data: [DONE]\n\n"


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


def prompt_estimate(body: dict[str, Any], kind: str) -> int:
    return estimate_input_tokens(body.get("input")) if kind == "embedding" else estimate_prompt_tokens(body)


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


async def close(
    admission: Admission, target: Target | None, prompt: int, completion: int, *, hit: bool = False
) -> None:
    """Record usage and settle the admission with what was really used."""
    cost = target.price.cost(prompt, completion) if target is not None and not hit else 0.0
    admission.used = (prompt, completion, cost)
    admission.store.record(Usage(
        admission.windows, admission.key_name, admission.route,
        prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost,
        cache_hits=1 if hit else 0, errors=1 if target is None and not hit else 0,
    ))
    settled = settlement(admission, target, prompt + completion, cost)
    if settled is None:
        return
    if admission.store.kind == "memory":
        await admission.store.settle(settled)  # no I/O: cheaper than a task
    else:
        admission.spawn(_settle_quietly(admission, settled))


async def _settle_quietly(admission: Admission, settled: Any) -> None:
    from gateway.store import StoreUnavailable

    try:
        await admission.store.settle(settled)
    except StoreUnavailable:
        pass  # leases expire on their own; buckets refill; the reservation stays counted


async def failed(admission: Admission) -> None:
    """No answer: nothing was used, everything taken is given back."""
    await close(admission, None, 0, 0)


async def answered(
    admission: Admission, target: Target, answer: dict[str, Any], body: dict[str, Any], kind: str,
    cache_key: str | None, ttl: float | None,
) -> None:
    """A plain answer: settle it and, when the route caches, store it."""
    prompt, completion = usage_tokens(
        answer.get("usage"), lambda: prompt_estimate(body, kind),
        lambda: answer_text_tokens(answer) if kind == "chat" else 0,
    )
    await close(admission, target, prompt, completion)
    if cache_key is not None and ttl is not None:
        admission.spawn(cache.save(admission.store, cache_key, target.id, orjson.dumps(answer), ttl))


async def metered(
    frames: AsyncIterator[bytes], admission: Admission, target: Target, outcome: Any, body: dict[str, Any],
    cache_key: str | None, ttl: float | None,
) -> AsyncIterator[bytes]:
    """Pass a stream through; when it ends (or the client leaves), account for it and maybe cache it.

    Frames are read back only to cache the answer; the completion estimate for an upstream
    that reports no usage comes from the characters `dispatch` counted as it wrote them.
    """
    assembler = cache.Assembler() if cache_key is not None else None
    complete = False
    frames_seen = 0
    try:
        async for frame in frames:
            frames_seen += 1
            if frame == DONE:
                complete = True
            elif assembler is not None and frame.startswith(b"data: {"):
                chunk = orjson.loads(frame[6:])
                if "error" in chunk:
                    cache_key = None  # a stream that ends in an error is never cached
                else:
                    assembler.add(chunk)
            yield frame
    finally:
        chars = getattr(outcome, "stream_chars", 0) or (assembler.text_length() if assembler is not None else 0)
        estimate = (
            (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN if chars
            else max(0, frames_seen - 3)  # a native stream without usage: about one token per content chunk
        )
        prompt, completion = usage_tokens(outcome.usage, lambda: prompt_estimate(body, "chat"), lambda: estimate)
        await close(admission, target, prompt, completion)
        if complete and cache_key is not None and ttl is not None and assembler is not None:
            admission.spawn(cache.save(admission.store, cache_key, target.id, orjson.dumps(assembler.answer()), ttl))
