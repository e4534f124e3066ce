"""The pipeline: what every model request goes through between its API front-end
reading it and writing the answer.

Chat and embeddings, from any client API, share it, so a route, its key's access,
limits, budget, cache and fallbacks behave the same whatever the endpoint: find the
route, check the caller may use it, plan the candidates, admit, answer from the cache
or dispatch, then settle what the answer used. The front-end reads the client's body
into a `ModelRequest` before and writes the `Completion` in its client's shape after;
nothing here names an API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.config.snapshot import Key, Route, Snapshot
from gateway.errors import ClientGone, GatewayError
from gateway.observe import telemetry
from gateway.observe.exchange import Exchange
from gateway.pipeline import account, cache, semantic
from gateway.pipeline.admit import Admission, admit, estimate_tokens
from gateway.pipeline.dispatch import Answer, Outcome, dispatch
from gateway.pipeline.identify import authorize
from gateway.pipeline.plan import CIRCUIT, Plan, find_route, plan_candidates, usable
from gateway.pipeline.request import (
    EMBEDDING,
    ModelRequest,
    embedding_request,
    end_user,
)
from gateway.pipeline.runtime import Runtime
from gateway.providers.events import End, Event, EventStream

COST_HEADER = "x-gateway-cost-usd"
SIMILARITY_HEADER = "x-gateway-cache-similarity"
SEMANTIC_HIT = "semantic-hit"  # x-gateway-cache of an answer to a question asked in other words


@dataclass(slots=True)
class Completion:
    """An answered request, before it is written in any client's shape."""

    outcome: Outcome
    headers: dict[str, str]

    @property
    def model(self) -> str:
        """The upstream model name of the target that answered."""
        target = self.outcome.target
        return target.model if target is not None else ""


def complete(
    runtime: Runtime, snapshot: Snapshot, key: Key | None, request: ModelRequest, exchange: Exchange
) -> Awaitable[Completion]:
    """Everything after the front-end has identified the caller and read the request. A plain
    function returning `serve`'s coroutine: a coroutine layer of its own would only be passed through."""
    alias = request.alias
    route = find_route(snapshot, alias, request.kind)
    authorize(key, alias, route)
    return serve(runtime, snapshot, key, route, request, exchange)


async def serve(
    runtime: Runtime, snapshot: Snapshot, key: Key | None, route: Route, request: ModelRequest, exchange: Exchange
) -> Completion:
    """A request to a route the caller may use: plan, admit, the cache or the candidates, account."""
    alias = request.alias
    exchange.route = alias
    # A token's caller is counted under its issuer's name; its end user has a field of its own.
    exchange.key = (key.id if key.source == "jwt" else key.name) if key is not None else ""
    exchange.tenant = key.tenant or "" if key is not None else ""
    # A token's subject is its user; an app's key names its users in the request, if at all.
    user = key.user if key is not None and key.user is not None else end_user(request)
    exchange.user = user or ""
    exchange.plan = key.plan.name if key is not None and key.plan is not None else ""
    plan = plan_candidates(snapshot, route, request, key, runtime.circuits, runtime.latency)
    candidates = usable(plan)
    admission = await admit(runtime.store, snapshot, key, route, request, candidates, runtime.tasks, user)
    exchange.admitted = True
    exchange.usage_name = admission.key_name
    keep: account.Keep = None
    if route.cache_ttl:
        look, store = cache.request_control(request.cache_control)
        exchange.cache = "miss" if store else "bypass"
        if store:
            owner = cache.owner(route.cache_scope, key)
            # The client's own body when it has one: fields only a native target reads
            # (reasoning settings, Anthropic's thinking) must not share an entry.
            body = request.native_body if request.native_body is not None else request.body
            keep = cache.Keep(cache.cache_key(request.kind, alias, body, owner, plan.tier_cap), route.cache_ttl)
        if look and keep is not None:
            hit = await cache.lookup(runtime.store, alias, keep.key)
            if hit is not None and may_serve(plan, hit.target):
                return await from_cache(exchange, snapshot, admission, hit, request)
        if route.semantic is not None and keep is not None:
            recall = await semantic.recall(runtime.semantic, route, request, owner, plan.tier_cap, look,
                                           _embedder(runtime, snapshot, key, exchange))
            found = recall.found
            if found is not None and found.answer is not None and may_serve(plan, found.target):
                hit = cache.Cached(found.target, found.answer)
                return await from_cache(exchange, snapshot, admission, hit, request, found.similarity)
            keep = cache.Keep(keep.key, keep.ttl, recall.store)
    try:
        outcome = await dispatch(runtime, route, candidates, request, exchange, admission.take_target)
    except BaseException:
        account.failed(admission, exchange)
        raise
    target = outcome.target
    assert target is not None
    exchange.target = target.id
    if outcome.stream is not None:
        outcome.stream = account.metered(outcome.stream, admission, target, request, exchange, keep)
    else:
        assert outcome.answer is not None
        account.answered(admission, target, outcome.answer, request, exchange, keep)
    return Completion(outcome, answer_headers(exchange, snapshot, outcome, admission, request, route))


def may_serve(plan: Plan, target_id: str) -> bool:
    """Whether the caller may be answered by `target_id` now: it is one of its candidates,
    or skipped only for an open circuit (health, not permission). A target since removed
    from the route, or above the caller's tier cap, is a miss."""
    if any(t.id == target_id for t in plan.candidates):
        return True
    return any(s.target == target_id and s.reason == CIRCUIT for s in plan.skipped)


def answer_headers(
    exchange: Exchange, snapshot: Snapshot, outcome: Outcome, admission: Admission, request: ModelRequest, route: Route
) -> dict[str, str]:
    """The gateway's own headers, then rate limits: the key's and route's own when they have
    any (that is what the client is held to), else the answering provider's."""
    headers = gateway_headers(exchange, snapshot)
    headers.update(admission.headers or outcome.rate_limits or {})
    if exchange.cache:
        headers["x-gateway-cache"] = exchange.cache
    headers[COST_HEADER] = _cost(exchange, outcome, request, route)
    return headers


def _cost(exchange: Exchange, outcome: Outcome, request: ModelRequest, route: Route) -> str:
    """What the answer cost; a stream's headers leave before its usage, so it gets the
    estimate (its ledger row and log line keep the real cost)."""
    if exchange.charged is not None:
        return f"{exchange.charged[2]:.8f}"
    assert outcome.target is not None
    prompt, output = estimate_tokens(request, route)
    return f"{outcome.target.price.cost(prompt, output):.8f}"


def gateway_headers(exchange: Exchange, snapshot: Snapshot) -> dict[str, str]:
    return {
        "x-gateway-route": exchange.route,
        "x-gateway-target": exchange.target,
        "x-gateway-provider": exchange.target.split("/", 1)[0],
        "x-gateway-attempts": str(exchange.attempts),
        "x-gateway-overhead-ms": f"{exchange.overhead(time.perf_counter()) * 1000:.2f}",
        "x-gateway-config": snapshot.version,
    }


async def from_cache(
    exchange: Exchange, snapshot: Snapshot, admission: Admission, hit: cache.Cached, request: ModelRequest,
    similarity: float | None = None,
) -> Completion:
    """A cached answer, plain or replayed as a stream; it costs no tokens and no budget.
    With a `similarity`, it answers a question asked in other words (the semantic cache)."""
    exchange.cache = "hit" if similarity is None else SEMANTIC_HIT
    exchange.target = hit.target
    account.close(admission, exchange, None, 0, 0, hit=True)
    body = orjson.loads(hit.answer)
    target = snapshot.find_target(hit.target)  # who answered it first (for its model name)
    assert target is not None  # may_serve found it among the plan's targets
    outcome = Outcome(target=target)
    if request.stream:
        outcome.stream = EventStream(_replayed(cache.replay(body, target.model), exchange))
    else:
        outcome.answer = Answer(body)
    headers = {**gateway_headers(exchange, snapshot), **admission.headers, "x-gateway-cache": exchange.cache,
               COST_HEADER: "0"}
    if similarity is not None:
        headers[SIMILARITY_HEADER] = f"{similarity:.4f}".rstrip("0").rstrip(".")
    return Completion(outcome, headers)


def _embedder(runtime: Runtime, snapshot: Snapshot, key: Key | None, parent: Exchange) -> semantic.Embed:
    """How the semantic cache embeds a question: a request to the embeddings route through
    this same pipeline, as the same caller (its limits, budget, cost and ledger apply as to
    any embeddings request), recorded as a request of its own. Its time counts as upstream
    time of the chat request, so the chat's overhead header stays the gateway's own."""

    async def embed(alias: str, text: str) -> Any:
        exchange = Exchange(parent.request_id[:120] + "-embed", time.perf_counter(), "embeddings")
        exchange.config, exchange.per_key_metrics = parent.config, parent.per_key_metrics
        exchange.traffic, exchange.ledger = parent.traffic, parent.ledger
        tokens = telemetry.begin(exchange, {})
        status = 499  # cancelled: the timeout, or the client leaving
        try:
            route = find_route(snapshot, alias, EMBEDDING)
            request = embedding_request("openai", {"model": alias, "input": text})
            done = await serve(runtime, snapshot, key, route, request, exchange)
            status = 200
            assert done.outcome.answer is not None
            return done.outcome.answer.body
        except GatewayError as exc:
            exchange.error, status = exc, exc.status
            raise
        except asyncio.CancelledError:
            # Cut short: the semantic cache's timeout (its chat request goes on without it) or the client.
            exchange.error = ClientGone("the chat request stopped waiting for this embedding")
            raise
        except Exception:
            status = 500
            exchange.error = GatewayError("the embedding for the semantic cache failed")
            raise
        finally:
            telemetry.leave(tokens)
            telemetry.finish(exchange, status)
            parent.upstream_seconds += time.perf_counter() - exchange.started

    return embed


async def _replayed(events: AsyncIterator[Event], exchange: Exchange) -> AsyncIterator[Event]:
    """A cached stream, telling the request's record that it reached its end."""
    async for event in events:
        if isinstance(event, End):
            exchange.stream_end = "done"
        yield event
