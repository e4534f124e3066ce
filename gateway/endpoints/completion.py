"""What every model endpoint does between reading the client's body and writing its answer.

Chat (OpenAI's and Anthropic's shape) and embeddings share it, so a route, its key's
access, limits, budget, cache and fallbacks behave the same whatever the endpoint:
check the body, find the route, plan the candidates, admit, answer from the cache or
dispatch, then settle what the answer used. The endpoint only reads the body before
and writes the `Completion` in its client's shape after.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway import account, cache
from gateway.admit import Admission, admit
from gateway.auth import authorize
from gateway.dispatch import NativeCall, Outcome, dispatch_chat, dispatch_embeddings
from gateway.endpoints.handler import Exchange
from gateway.payload import check_chat, check_embeddings, model_of
from gateway.plan import find_route, plan_candidates, usable
from gateway.runtime import Runtime
from gateway.snapshot import Key, Snapshot


@dataclass(frozen=True, slots=True)
class Kind:
    """How one kind of model request differs: its body check and its names in routes and the cache."""

    route_kind: str  # a route's `kind` in the snapshot
    cache_name: str  # the endpoint name that keeps its cache entries apart
    check: Callable[[dict[str, Any]], None]


CHAT = Kind("chat", "chat", check_chat)
COMPLETIONS = Kind("chat", "completions", check_chat)  # legacy /v1/completions, translated to chat: chat routes
EMBEDDING = Kind("embedding", "embeddings", check_embeddings)


@dataclass(slots=True)
class Completion:
    """An answered request, before it is written in any client's shape."""

    outcome: Outcome
    headers: dict[str, str]


async def complete(
    runtime: Runtime, snapshot: Snapshot, key: Key | None, body: dict[str, Any], exchange: Exchange,
    kind: Kind, max_tier: str | None = None, native: NativeCall | None = None,
) -> Completion:
    """Everything after identify and parse, for an OpenAI-shaped body of `kind`.

    `max_tier` is the request's x-gateway-max-tier header, if it sent one; `native` the
    client's own body for targets that speak its API (see `dispatch_chat`).
    """
    alias = model_of(body)
    kind.check(body)
    route = find_route(snapshot, alias, kind.route_kind)
    authorize(key, alias)
    exchange.route = alias
    exchange.key = key.name if key is not None else ""
    plan = plan_candidates(snapshot, route, body, key, runtime.circuits, runtime.latency, max_tier)
    narrow = getattr(native, "narrow", None)  # a native request some targets cannot take (legacy completions)
    if narrow is not None:
        plan = narrow(plan)
    candidates = usable(plan)
    admission = await admit(runtime.store, snapshot, key, route, body, candidates, runtime.tasks, plan.prompt_tokens)
    stream = kind.route_kind == "chat" and body.get("stream") is True
    cache_key = cache.cache_key(kind.cache_name, alias, body) if route.cache_ttl else None
    if cache_key is not None:
        exchange.cache = "miss"
        hit = await cache.lookup(runtime.store, alias, cache_key)
        if hit is not None and hit.target in snapshot.targets:  # a target since removed: a miss
            return await from_cache(exchange, snapshot, admission, hit, body, stream)
    try:
        if kind.route_kind == "chat":
            outcome = await dispatch_chat(runtime, route, candidates, body, stream, native, admission.take_target)
        else:
            outcome = await dispatch_embeddings(runtime, route, candidates, body, admission.take_target)
    except BaseException:
        await account.failed(admission)
        raise
    target = outcome.target
    assert target is not None
    exchange.target = target.id
    exchange.outcome = outcome
    if outcome.stream is not None:
        outcome.stream = account.metered(outcome.stream, admission, target, outcome, body, cache_key, route.cache_ttl)
    else:
        await account.answered(
            admission, target, outcome.answer or {}, body, kind.route_kind, cache_key, route.cache_ttl
        )
    return Completion(outcome, answer_headers(exchange, snapshot, outcome, admission))


def answer_headers(exchange: Exchange, snapshot: Snapshot, outcome: Outcome, admission: Admission) -> dict[str, str]:
    """The gateway's own headers, then rate limits: the key's and route's own when they have
    any (that is what the client is held to), else the answering provider's."""
    headers = gateway_headers(exchange, snapshot, outcome)
    headers.update(admission.headers or outcome.rate_limits or {})
    if exchange.cache:
        headers["x-gateway-cache"] = exchange.cache
    return headers


def gateway_headers(exchange: Exchange, snapshot: Snapshot, outcome: Outcome) -> dict[str, str]:
    overhead = time.perf_counter() - exchange.started - outcome.upstream_seconds
    return {
        "x-gateway-route": exchange.route,
        "x-gateway-target": exchange.target,
        "x-gateway-attempts": str(outcome.calls),
        "x-gateway-overhead-ms": f"{max(overhead, 0.0) * 1000:.2f}",
        "x-gateway-config": snapshot.version,
    }


def cache_header(exchange: Exchange) -> dict[str, str]:
    return {"x-gateway-cache": exchange.cache} if exchange.cache else {}


async def from_cache(
    exchange: Exchange, snapshot: Snapshot, admission: Admission, hit: cache.Cached, body: dict[str, Any], stream: bool
) -> Completion:
    """A cached answer, plain or replayed as a stream; it costs no tokens and no budget."""
    exchange.cache = "hit"
    exchange.target = hit.target
    await account.close(admission, None, 0, 0, hit=True)
    answer = orjson.loads(hit.answer)
    outcome = Outcome(target=snapshot.targets[hit.target])  # who answered it first (for its model name)
    if stream:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        outcome.stream = iterate(cache.replay(answer, include_usage))
    else:
        outcome.answer = answer
    headers = {
        "x-gateway-route": exchange.route,
        "x-gateway-target": hit.target,
        "x-gateway-attempts": "0",
        "x-gateway-overhead-ms": f"{(time.perf_counter() - exchange.started) * 1000:.2f}",
        "x-gateway-config": snapshot.version,
        **admission.headers,
        **cache_header(exchange),
    }
    return Completion(outcome, headers)


async def iterate(frames: Iterable[bytes]) -> AsyncIterator[bytes]:
    for frame in frames:
        yield frame
