"""Which targets a request may go to, in the order they will be tried.

`plan_candidates` is the one function that decides; the server and `gateway explain`
both call it, so what an operator is shown is what the server does. It reads only the
snapshot, the request, and the process's circuit and latency state, and changes none
of them.

The steps, in order:
1. order the route's targets by its strategy (fallback, weighted, cheapest, fastest),
   then append `fallback: equivalents` members;
2. skip what cannot serve this request: above the tier cap (the key's `max_tier`, or the
   lower `x-gateway-max-tier` header), lacking a capability the request uses (tools,
   vision, json), too small a context window for the estimated prompt, or an open circuit.
"""

from __future__ import annotations

import random
from fnmatch import fnmatchcase
from typing import Protocol

from gateway.config.snapshot import Key, Route, RouteTarget, Snapshot, Target
from gateway.errors import BadRequest, Forbidden, ModelNotFound, NoTargetAvailable
from gateway.pipeline.mapping import param_of, unmapped
from gateway.pipeline.request import ModelRequest
from gateway.store.circuits import CircuitStore
from gateway.values import value

MAX_TIER_HEADER = "x-gateway-max-tier"
PROVIDER_HEADER = "x-gateway-provider"  # pins one provider among the route's targets
DEFAULT_OUTPUT_TOKENS = 256  # what `cheapest` prices when the request sets no output ceiling
EXPLORE = 0.1  # share of `fastest` requests sent first to a target that is not the fastest

# Skip reasons, as shown by `gateway explain` and in a 503's `error.skipped`.
TIER = "tier"
CAPABILITY = "capability"
CONTEXT_WINDOW = "context_window"
CIRCUIT = "circuit"
UNPRICED = "unpriced"


class Latencies(Protocol):
    def average(self, target_id: str) -> float | None: ...


@value
class Skipped:
    target: str
    reason: str  # tier | capability | context_window | circuit
    detail: str = ""
    param: str = ""  # for capability: the request field the target cannot honour

    def as_dict(self) -> dict[str, str]:
        return {"target": self.target, "reason": self.reason, "detail": self.detail}


@value
class Plan:
    route: Route
    candidates: tuple[Target, ...]
    skipped: tuple[Skipped, ...] = ()
    needs: frozenset[str] = frozenset()  # capabilities the request uses
    prompt_tokens: int = 0  # the estimate the context-window and cheapest checks used
    tier_cap: str | None = None
    denied: str | None = None  # set when the key's own tier cap leaves no target: a 403
    retry_after: float | None = None  # all blocked by open circuits: when the first probe may go


def find_route(snapshot: Snapshot, alias: str, kind: str) -> Route:
    route = snapshot.routes.get(alias)
    if route is None and snapshot.addresses is not None:
        # A pattern route (`claude-*`), or a `provider/model` named directly (the key decides
        # later, in identify.authorize, whether this caller may name it).
        route = snapshot.addresses.route(alias, kind)
    if route is None or route.kind != kind:
        what = "an embedding" if kind == "embedding" else "a chat"
        raise ModelNotFound(f"the model '{alias}' does not exist or is not {what} model", param="model")
    return route


def plan_candidates(
    snapshot: Snapshot,
    route: Route,
    request: ModelRequest,
    key: Key | None,
    circuits: CircuitStore,
    latency: Latencies,
    rng: random.Random | None = None,
) -> Plan:
    """The ordered candidates for this request and, for every other target, why not."""
    rng = rng or _RNG
    chat = route.kind == "chat"
    needs = request.needs
    prompt = request.prompt_tokens if chat else 0
    window_need = prompt + (request.output_tokens or 0)
    fields = request.fields if chat else frozenset()
    tiers = snapshot.tiers
    key_cap = key.max_tier if key is not None else None
    cap, cap_by = _tier_cap(tiers, key_cap, request.max_tier, key)
    ordered = order_targets(route, request, prompt, latency, rng) + route.fallback_targets
    if request.provider is not None:
        ordered = pinned(route, ordered, request.provider, key)

    candidates: list[Target] = []
    skipped: list[Skipped] = []
    open_for: list[float] = []
    for entry in ordered:
        target = entry.target
        reason = _above_cap(tiers, entry, cap, cap_by)
        if reason is None and key is not None and key.budget is not None and not target.price.known:
            # A budget must never count a model as free because nobody priced it.
            reason = Skipped(target.id, UNPRICED, "the model has no known price and the key has a budget")
        if reason is None:
            reason = (_lacks(target, needs) or _unmapped(target, fields) or _not_native(target, request)
                      or _too_long(target, window_need, prompt))
        if reason is None:
            view = circuits.view(target)
            if not view.usable:
                open_for.append(view.retry_in)
                reason = Skipped(target.id, CIRCUIT, f"circuit {view.state.replace('_', '-')}, next probe in {view.retry_in:.1f}s")
        if reason is None:
            candidates.append(target)
        else:
            skipped.append(reason)

    denied = None
    if key_cap is not None and all(_rank(tiers, e.tier) > _rank(tiers, key_cap) for e in ordered):
        denied = f"key '{key.name}' is capped at tier '{key_cap}' and every target of '{route.alias}' is above it"  # type: ignore[union-attr]
    return Plan(
        route=route,
        candidates=tuple(candidates),
        skipped=tuple(skipped),
        needs=needs,
        prompt_tokens=prompt,
        tier_cap=cap,
        denied=denied,
        retry_after=min(open_for) if open_for and not candidates else None,
    )


def usable(plan: Plan) -> tuple[Target, ...]:
    """The candidates, or the error that says why there are none."""
    if plan.candidates:
        return plan.candidates
    alias = plan.route.alias
    if plan.denied:
        raise Forbidden(plan.denied, param="model", code="tier_not_allowed")
    if plan.skipped and all(s.reason == UNPRICED for s in plan.skipped):
        raise Forbidden(
            f"every target of '{alias}' is unpriced and this key has a budget: give the model a price in "
            "providers.yaml or the route a `price:`", param="model", code="unpriced_model",
        )
    if plan.skipped and all(s.reason == CONTEXT_WINDOW for s in plan.skipped):
        raise BadRequest(
            f"the prompt (about {plan.prompt_tokens} tokens) is too long for every model of '{alias}'",
            param="messages", code="context_length_exceeded",
        )
    if plan.skipped and all(s.reason in (CAPABILITY, CONTEXT_WINDOW) for s in plan.skipped):
        # Nothing is down: the request asks for something no target of the route can do.
        params = sorted({s.param for s in plan.skipped if s.reason == CAPABILITY and s.param})
        if params:
            why = "; ".join(f"{s.target}: {s.detail}" for s in plan.skipped)
            raise BadRequest(
                f"no target of '{alias}' can honour {', '.join(repr(p) for p in params)} ({why})",
                param=params[0], code="unsupported_parameter", extra={"skipped": [s.as_dict() for s in plan.skipped]},
            )
    reasons = ", ".join(sorted({s.reason.replace("_", " ") for s in plan.skipped}))
    headers = {"retry-after": str(max(1, round(plan.retry_after + 0.5)))} if plan.retry_after is not None else None
    raise NoTargetAvailable(
        f"no target of '{alias}' can take this request (skipped: {reasons})",
        headers=headers, extra={"skipped": [s.as_dict() for s in plan.skipped]},
    )


def pinned(route: Route, ordered: tuple[RouteTarget, ...], provider: str, key: Key | None) -> tuple[RouteTarget, ...]:
    """The targets of `provider` alone (the request's x-gateway-provider), when the key may
    choose providers: the same permission as naming `provider/model` directly."""
    provider = provider.strip()
    mine = tuple(e for e in ordered if e.target.provider == provider)
    if key is not None and not any(fnmatchcase(e.target.id, p) for e in mine or ordered for p in key.direct):
        raise Forbidden(f"key '{key.name}' may not choose a provider ({PROVIDER_HEADER})", param=PROVIDER_HEADER,
                        code="provider_not_allowed")
    if not mine:
        raise BadRequest(f"'{route.alias}' has no target at provider '{provider}'", param=PROVIDER_HEADER,
                         code="provider_not_in_route")
    if key is not None:
        mine = tuple(e for e in mine if any(fnmatchcase(e.target.id, p) for p in key.direct))
    return mine


# ------------------------------------------------------------------ strategies


def order_targets(
    route: Route, request: ModelRequest, prompt: int, latency: Latencies, rng: random.Random
) -> tuple[RouteTarget, ...]:
    """The route's targets in the order its strategy tries them."""
    targets = route.targets
    if len(targets) < 2 or route.strategy == "fallback":
        return targets
    if route.strategy == "weighted":
        return weighted_order(targets, rng)
    if route.strategy == "cheapest":
        output = (request.output_tokens or DEFAULT_OUTPUT_TOKENS) * request.choices
        return tuple(sorted(targets, key=lambda rt: rt.target.price.cost(prompt, output)))
    if route.strategy == "fastest":
        return fastest_order(targets, latency, rng)
    return targets


def weighted_order(targets: tuple[RouteTarget, ...], rng: random.Random) -> tuple[RouteTarget, ...]:
    """A random order in which each target comes first with probability weight / total.

    Each target draws u**(1/weight) and the order is by draw, highest first (weighted
    sampling without replacement): the first pick follows the weights exactly and the
    rest of the chain is the fallback. A weight of 0 makes a target a backup only.
    """
    def draw(rt: RouteTarget) -> float:
        return rng.random() ** (1.0 / rt.weight) if rt.weight > 0 else -1.0

    return tuple(sorted(targets, key=draw, reverse=True))


def fastest_order(targets: tuple[RouteTarget, ...], latency: Latencies, rng: random.Random) -> tuple[RouteTarget, ...]:
    """Lowest moving average first; unmeasured targets before all (so they get measured).

    With probability EXPLORE another target goes first, so a target that was slow and has
    recovered gets a fresh measurement instead of being ranked on old news forever.
    """
    def average(rt: RouteTarget) -> float:
        value = latency.average(rt.target.id)
        return -1.0 if value is None else value

    ordered = sorted(targets, key=average)
    if rng.random() < EXPLORE:
        ordered.insert(0, ordered.pop(rng.randrange(1, len(ordered))))
    return tuple(ordered)


# ------------------------------------------------------------------ what the request needs


def _lacks(target: Target, needs: frozenset[str]) -> Skipped | None:
    if not needs or target.supports is None:
        return None
    missing = sorted(needs - target.supports)
    if not missing:
        return None
    return Skipped(
        target.id, CAPABILITY, f"the request uses {', '.join(missing)}, which the model does not support",
        _CAPABILITY_PARAMS.get(missing[0], missing[0]),
    )


_CAPABILITY_PARAMS = {"json": "response_format", "vision": "messages", "tools": "tools"}


def _unmapped(target: Target, fields: frozenset[str]) -> Skipped | None:
    missing = unmapped(target, fields)
    if not missing:
        return None
    return Skipped(
        target.id, CAPABILITY,
        f"its pack '{target.pack.name}' does not carry {', '.join(missing)} to the provider", param_of(missing[0]),
    )


def _not_native(target: Target, request: ModelRequest) -> Skipped | None:
    """A request using fields only its own API can carry needs a target whose pack speaks that API."""
    if not request.native_only or request.api in target.speaks:
        return None
    return Skipped(
        target.id, CAPABILITY,
        f"the request uses {', '.join(request.native_only)}, which only a target taking the client's own body can honour",
        request.native_only[0],
    )


def _too_long(target: Target, need: int, prompt: int) -> Skipped | None:
    if target.context_window is None or need <= target.context_window:
        return None
    asked = f" + {need - prompt} requested output" if need > prompt else ""
    return Skipped(
        target.id, CONTEXT_WINDOW,
        f"about {prompt} prompt tokens{asked} exceed its context window of {target.context_window}",
    )


# ------------------------------------------------------------------ tiers


def _rank(tiers: tuple[str, ...], tier: str | None) -> int:
    """Position in `tiers` (cheapest first); a target without a tier passes every cap."""
    return tiers.index(tier) if tier in tiers else -1


def _tier_cap(
    tiers: tuple[str, ...], key_cap: str | None, header: str | None, key: Key | None
) -> tuple[str | None, str]:
    """The lower of the key's cap and the request's header: a header can only lower it."""
    if header is not None:
        header = header.strip()
        if header not in tiers:
            raise BadRequest(
                f"{MAX_TIER_HEADER} must be one of: {', '.join(tiers)}", param=MAX_TIER_HEADER, code="invalid_tier"
            )
        if key_cap is None or _rank(tiers, header) < _rank(tiers, key_cap):
            return header, f"the request's {MAX_TIER_HEADER}"
    if key_cap is not None:
        return key_cap, f"key '{key.name}'"  # type: ignore[union-attr]
    return None, ""


def _above_cap(tiers: tuple[str, ...], entry: RouteTarget, cap: str | None, cap_by: str) -> Skipped | None:
    if cap is None or _rank(tiers, entry.tier) <= _rank(tiers, cap):
        return None
    return Skipped(entry.target.id, TIER, f"tier '{entry.tier}' is above the cap '{cap}' set by {cap_by}")


_RNG = random.Random()
