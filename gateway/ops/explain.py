"""`gateway explain`: the plan the server would make for a request, and why.

The candidates and skip reasons come from `plan_candidates` and the final verdict from
`usable`, the very functions the request path calls, so the explanation cannot drift
from what the server does. Only the inputs differ: the circuit and latency state start
empty here, unless `--open` marks targets as down or `--live` copies them from a
running gateway's /metrics.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.config.snapshot import Key, Route, RouteTarget, Snapshot
from gateway.errors import GatewayError
from gateway.pipeline.identify import may_use
from gateway.pipeline.plan import Plan, plan_candidates, usable
from gateway.pipeline.request import (
    ModelRequest,
    answer_count,
    chat_request,
    embedding_request,
)
from gateway.pipeline.semantic import REASONS, refusal
from gateway.providers.tokens import requested_output_tokens
from gateway.store.circuits import MemoryCircuits
from gateway.store.latency import LatencyAverages


class ExplainError(Exception):
    """A mistake in the command line (unknown alias, key, target): exit status 1."""


@dataclass(frozen=True, slots=True)
class Explanation:
    snapshot: Snapshot
    route: Route
    plan: Plan | None
    key: Key | None
    body: dict[str, Any]
    latency: LatencyAverages
    error: GatewayError | None  # what the server would answer instead of calling a target
    endpoint: str = "chat"  # the client API the request came in by
    request: ModelRequest | None = None

    @property
    def status(self) -> int:
        return self.error.status if self.error is not None else 200


# How an API front-end reads a body into the pipeline's request: (body, tier cap) -> request.
# The command line passes the front-end's own reader, so a Responses or Messages body is
# planned exactly as the server would plan it.
Reader = Callable[[dict[str, Any], str | None], ModelRequest]


def default_body(route: Route, endpoint: str = "chat") -> dict[str, Any]:
    if route.kind == "embedding" or endpoint == "responses":
        return {"model": route.alias, "input": "Hello"}
    if endpoint == "messages":
        return {"model": route.alias, "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello"}]}
    return {"model": route.alias, "messages": [{"role": "user", "content": "Hello"}]}


def explain(
    snapshot: Snapshot,
    alias: str,
    body: dict[str, Any] | None = None,
    key_name: str | None = None,
    tier: str | None = None,
    open_targets: tuple[str, ...] = (),
    live_metrics: str | None = None,
    rng: random.Random | None = None,
    endpoint: str = "chat",
    reader: Reader | None = None,
    caller: Key | None = None,
) -> Explanation:
    """`caller`: plan as a token's caller (`gateway explain --token/--claims`) instead of a key."""
    route = snapshot.routes.get(alias)
    if route is None and snapshot.addresses is not None:  # a pattern route, or provider/model named directly
        route = snapshot.addresses.route(alias, "chat") or snapshot.addresses.route(alias, "embedding")
    if route is None:
        raise ExplainError(f"no route '{alias}' (routes: {', '.join(sorted(snapshot.routes))})")
    key = caller if caller is not None else _find_key(snapshot, key_name)
    body = {**(body if body is not None else default_body(route, endpoint)), "model": alias}
    circuits, latency = MemoryCircuits(), LatencyAverages()
    for target_id in open_targets:
        target = snapshot.targets.get(target_id)
        if target is None:
            raise ExplainError(f"--open: no target '{target_id}'")
        circuits.force_open(target)
    if live_metrics is not None:
        _seed_from_metrics(snapshot, live_metrics, circuits, latency)
    if not may_use(key, alias):
        who = f"key '{key_name}'" if caller is None else f"user '{caller.user}'"
        if key is not None and key.plan is not None:
            who += f" (plan '{key.plan.name}')"
        error = GatewayError(f"{who} may not use model '{alias}'", status=403, code="forbidden")
        return Explanation(snapshot, route, None, key, body, latency, error, endpoint)
    try:
        request = reader(body, tier) if reader is not None else _request(route, body, tier)
        plan = plan_candidates(snapshot, route, request, key, circuits, latency, rng)
    except GatewayError as exc:  # e.g. an unknown tier name, or a body the endpoint refuses
        return Explanation(snapshot, route, None, key, body, latency, exc, endpoint)
    error = None
    try:
        usable(plan)
    except GatewayError as exc:
        error = exc
    return Explanation(snapshot, route, plan, key, body, latency, error, endpoint, request)


def _request(route: Route, body: dict[str, Any], tier: str | None) -> ModelRequest:
    """The request as a client's API front-end would build it (the body is in the pipeline's shape)."""
    build = embedding_request if route.kind == "embedding" else chat_request
    return build("openai", {**body, "model": route.alias}, max_tier=tier)


def _find_key(snapshot: Snapshot, name: str | None) -> Key | None:
    if name is None:
        return None
    for key in snapshot.keys.values():
        if key.name == name:
            return key
    names = ", ".join(sorted(k.name for k in snapshot.keys.values())) or "none configured"
    raise ExplainError(f"no key named '{name}' (keys: {names})")


def _seed_from_metrics(snapshot: Snapshot, text: str, circuits: MemoryCircuits, latency: LatencyAverages) -> None:
    """Copy circuit states and latency averages from a gateway's Prometheus exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            target = snapshot.targets.get(sample.labels.get("target", ""))
            if target is None:
                continue
            if sample.name == "gateway_circuit_state" and sample.value >= 2:
                circuits.force_open(target)
            elif sample.name == "gateway_target_latency_seconds":
                latency.observe(target.id, sample.value)


# ------------------------------------------------------------------ rendering


def _entries(route: Route) -> dict[str, tuple[RouteTarget, bool]]:
    out = {rt.target.id: (rt, False) for rt in route.targets}
    out.update({rt.target.id: (rt, True) for rt in route.fallback_targets})
    return out


def _candidate_facts(x: Explanation, rt: RouteTarget, extension: bool) -> dict[str, Any]:
    target = rt.target
    prompt = x.plan.prompt_tokens if x.plan else 0
    facts: dict[str, Any] = {"target": target.id, "tier": rt.tier}
    # Seconds one call to it may take to start answering before the next one is tried.
    facts["attempt_timeout"] = x.route.attempt_timeouts.get(target.id)
    if x.route.kind == "chat":
        output = requested_output_tokens(x.body) * answer_count(x.body)
        facts["estimated_cost_usd"] = round(target.price.cost(prompt, output), 8)
    request = x.request
    if request is not None and request.native_body is not None:
        facts["body"] = "as sent" if request.api in target.speaks else "translated"
    if extension:
        facts["from"] = "fallback: equivalents"
    elif x.route.strategy == "weighted":
        total = sum(e.weight for e in x.route.targets) or 1.0
        facts["weight"] = rt.weight
        facts["first_pick_share"] = round(rt.weight / total, 4)
    if x.route.strategy == "fastest":
        facts["latency_seconds"] = x.latency.average(target.id)
    return facts


def as_dict(x: Explanation) -> dict[str, Any]:
    route = x.route
    entries = _entries(route)
    out: dict[str, Any] = {
        "route": route.alias,
        "endpoint": x.endpoint,
        "config": x.snapshot.version,
        "strategy": route.strategy,
        "retry_attempts": route.retry.attempts,
        "fallback_on": sorted(route.fallback_on),
        "timeout": route.timeout,
        "key": x.key.name if x.key else None,
        "status": x.status,
    }
    if x.key is not None and (x.key.plan is not None or x.key.user is not None or x.key.grants is not None):
        out["caller"] = caller_facts(x.snapshot, x.key)
    if x.plan is not None:
        out["prompt_tokens"] = x.plan.prompt_tokens
        out["needs"] = sorted(x.plan.needs)
        out["tier_cap"] = x.plan.tier_cap
        out["candidates"] = [_candidate_facts(x, *entries[t.id]) for t in x.plan.candidates]
        out["skipped"] = [s.as_dict() for s in x.plan.skipped]
    cache = cache_facts(x)
    if cache is not None:
        out["cache"] = cache
    if x.error is not None:
        out["error"] = x.error.body()["error"]
    return out


def caller_facts(snapshot: Snapshot, key: Key) -> dict[str, Any]:
    """Who the caller is and what binds it: plan, tenant, limits and the routes it may use."""
    plan, grants = key.plan, key.grants
    return {
        "user": key.user,
        "plan": plan.name if plan is not None else None,
        "plan_limits": _limits(plan.limits) if plan is not None else None,
        "plan_counts": "per user" if key.per_user else "for the key" if plan is not None else None,
        "tenant": key.tenant,
        "tenant_limits": _limits(grants.limits) if grants is not None else None,
        "tenant_budget": f"${grants.budget.usd:g} per {grants.budget.per}" if grants and grants.budget else None,
        "key_limits": _limits(key.limits),
        "max_tier": key.max_tier,
        "routes": sorted(alias for alias in snapshot.routes if may_use(key, alias)),
    }


def _limits(limits: Any) -> dict[str, int]:
    return {name: getattr(limits, name) for name in ("rpm", "tpm", "concurrency") if getattr(limits, name) is not None}


def cache_facts(x: Explanation) -> dict[str, Any] | None:
    """How the route's cache treats this request: the exact lookup, and whether the semantic
    cache would look it up (the same `refusal` the request path asks) or why not."""
    route = x.route
    if not route.cache_ttl:
        return None
    facts: dict[str, Any] = {"ttl": route.cache_ttl, "scope": route.cache_scope}
    settings = route.semantic
    if settings is None:
        return facts
    semantic: dict[str, Any] = {"embed": settings.embed, "threshold": settings.threshold, "compare": settings.compare}
    reason = refusal(settings, x.request) if x.request is not None else "no_question"
    semantic["looked_up"] = reason is None
    if reason is not None:
        semantic["reason"] = REASONS[reason]
    facts["semantic"] = semantic
    return facts


def render_text(x: Explanation) -> str:
    data = as_dict(x)
    route = x.route
    lines = [
        f"route '{route.alias}' for {x.endpoint} (config {data['config']}): strategy {route.strategy}, "
        f"{route.retry.attempts} tries per target, fallback on {', '.join(data['fallback_on']) or 'nothing'}, "
        f"deadline {route.timeout:g}s",
    ]
    caller = data.get("caller")
    if caller is not None:
        lines.append("caller: " + ", ".join(
            f"{name} {_show(value) if not isinstance(value, (dict, list)) else json.dumps(value)}"
            for name, value in caller.items() if value not in (None, {}, [])))
    if route.strategy == "weighted":
        lines.append("  (weighted: the order below is one random draw; first_pick_share is each target's chance to go first)")
    if route.strategy == "fastest":
        lines.append("  (fastest: ordered by measured latency; 10% of requests try another target first)")
    if x.plan is not None:
        needs = ", ".join(data["needs"]) or "nothing special"
        cap = data["tier_cap"] or "none"
        lines.append(f"request: about {data['prompt_tokens']} prompt tokens; uses {needs}; tier cap {cap}")
        lines.append("plan:")
        if not data["candidates"]:
            lines.append("  (no candidate)")
        for i, facts in enumerate(data["candidates"], 1):
            extras = [f"{k} {_show(v)}" for k, v in facts.items() if k != "target"]
            lines.append(f"  {i}. {facts['target']}  " + "  ".join(extras))
        if data["skipped"]:
            lines.append("skipped:")
            for s in data["skipped"]:
                lines.append(f"  - {s['target']}: {s['reason']}: {s['detail']}")
    cache = data.get("cache")
    if cache is not None:
        line = f"cache: exact, ttl {cache['ttl']:g}s, scope {cache['scope']}"
        semantic = cache.get("semantic")
        if semantic is not None:
            line += (f"; semantic (embed '{semantic['embed']}', threshold {semantic['threshold']:g}, "
                     f"compare {semantic['compare']}): ")
            line += ("looked up after an exact miss" if semantic["looked_up"]
                     else f"not looked up nor stored: {semantic['reason']}")
        lines.append(line)
    if x.error is not None:
        error = data["error"]
        lines.append(f"result: HTTP {x.status} {error['code']}: {error['message']}")
    else:
        lines.append(f"result: the request goes to {x.plan.candidates[0].id}")  # type: ignore[union-attr]
    return "\n".join(lines)


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def read_body(path: str) -> dict[str, Any]:
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExplainError(f"--request {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(body, dict):
        raise ExplainError(f"--request {path}: must be a JSON object (a chat or embeddings request body)")
    return body
