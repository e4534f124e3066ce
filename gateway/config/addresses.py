"""Routes the config makes on demand: `provider/model` named directly, and pattern routes.

A client coming from LiteLLM writes `groq/llama-3.1-70b-versatile` and expects it to work
without a route; an operator with a fleet of model names writes one pattern route
(`"claude-*": {targets: ["anthropic/{match}"]}`). Neither can be compiled ahead of time,
since the model names are the client's. So the snapshot keeps a recipe per provider and
builds a `Target` and a `Route` the first time a name is asked for, then keeps them (the
snapshot is still never changed: the memo is a cache of pure functions of it).

A provider that lists `models:` serves only those; one that lists none (a preset's
default) serves any model name it is asked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from gateway.config import model, prices
from gateway.config import snapshot as snap

MATCH = "{match}"
_MEMO_LIMIT = 4096  # names kept per snapshot; past it, made per request (correct, just slower)


@dataclass(frozen=True, slots=True)
class ProviderRecipe:
    """Everything a target of one provider needs, except the model."""

    name: str
    pack: snap.Pack
    base_url: str
    api_key: str | None = field(repr=False)
    headers: Mapping[str, str]
    connect_timeout: float
    read_timeout: float
    limits: snap.Limits
    params: Mapping[str, Any]
    circuit: snap.CircuitPolicy
    catalogue: str | None  # the provider's id in the price catalogue
    open: bool  # lists no models: serves any model name
    responses: str | None = None  # the provider's `responses:` (native | translate)


def build_target(recipe: ProviderRecipe, model_name: str, spec: model.ModelSpec | None, kind: str | None = None) -> snap.Target:
    """One model at one provider; YAML's price wins, else the catalogue's, else unpriced.

    The catalogue is read only for what YAML leaves out: a config that gives every model's
    price and context window never loads it (several MiB of a process's memory)."""
    priced = spec is not None and (spec.input_per_1m is not None or spec.output_per_1m is not None)
    complete = spec is not None and priced and bool(spec.context_window)
    listed = None if complete else prices.listed(recipe.catalogue, model_name)
    if spec is not None and priced:
        price = snap.Price(spec.input_per_1m or 0.0, spec.output_per_1m or 0.0)
    elif listed is not None:
        price = snap.Price(listed.input_per_1m, listed.output_per_1m)
    elif recipe.pack.local:
        price = snap.Price()  # answered in-process (echo): free, and known to be
    else:
        price = snap.Price(known=False)
    pack = pack_for(recipe.pack, model_name)
    speaks = frozenset(getattr(pack, "speaks", ()))
    if recipe.responses == "translate":  # its server has no /v1/responses of its own
        speaks -= {snap.RESPONSES_API}
    window = spec.context_window if spec is not None and spec.context_window else None
    if window is None and listed is not None:
        window = listed.context_window
    return snap.Target(
        id=f"{recipe.name}/{model_name}",
        provider=recipe.name,
        model=model_name,
        kind=spec.type if spec is not None else (kind or "chat"),
        pack=pack,
        base_url=recipe.base_url,
        api_key=recipe.api_key,
        headers=recipe.headers,
        connect_timeout=recipe.connect_timeout,
        read_timeout=recipe.read_timeout,
        price=price,
        context_window=window,
        supports=frozenset(spec.supports) if spec is not None and spec.supports is not None else None,
        tier=spec.tier if spec is not None else None,
        limits=recipe.limits,
        params=recipe.params,
        circuit=recipe.circuit,
        speaks=speaks,
    )


def pack_for(pack: snap.Pack, model_name: str) -> snap.Pack:
    """The pack that serves this model: a pack with `by_model` names another per model."""
    choose = getattr(pack, "for_model", None)
    return choose(model_name) if choose is not None else pack


def priced(target: snap.Target, price: snap.Price | None) -> snap.Target:
    """The target with a route's price when it has none of its own."""
    if price is None or target.price.known:
        return target
    return dataclasses.replace(target, price=price)


def is_pattern(alias: str) -> bool:
    return any(c in alias for c in "*?[")


@dataclass(frozen=True, slots=True)
class PatternRoute:
    """A routes.yaml alias with glob characters; `{match}` in a target is the whole name sent."""

    pattern: str
    template: snap.Route  # everything but alias, targets and kind
    targets: tuple[tuple[str, float, str | None], ...]  # (provider/model with {match}, weight, tier)
    price: snap.Price | None


class Addresses:
    """Makes and remembers the targets and routes of names the config does not list."""

    def __init__(
        self,
        recipes: Mapping[str, ProviderRecipe],
        declared: Mapping[str, snap.Target],
        patterns: tuple[PatternRoute, ...],
        direct: snap.Route,
    ):
        self._recipes = recipes
        self._declared = declared
        self._patterns = patterns
        self._direct = direct  # the defaults a direct address is served with
        self._routes: dict[tuple[str, str], snap.Route | None] = {}
        self._targets: dict[str, snap.Target] = {}
        self.api_keys = tuple(sorted({r.api_key for r in recipes.values() if r.api_key}, key=len, reverse=True))

    @property
    def patterns(self) -> tuple[PatternRoute, ...]:
        return self._patterns

    def open_providers(self) -> list[tuple[str, str | None]]:
        """(provider, catalogue id) of every provider that serves any model name."""
        return [(r.name, r.catalogue) for r in self._recipes.values() if r.open]

    def target(self, ref: str, kind: str | None = None) -> snap.Target | None:
        """`provider/model`: a declared target, or one made for a provider that lists no models."""
        found = self._declared.get(ref) or self._targets.get(ref)
        if found is not None:
            return found if kind is None or found.kind == kind else None
        provider, _, model_name = ref.partition("/")
        recipe = self._recipes.get(provider)
        if recipe is None or not recipe.open or not model_name:
            return None
        wanted = kind or "chat"
        pack = pack_for(recipe.pack, model_name)
        if not getattr(pack, "serves_embeddings" if wanted == "embedding" else "serves_chat", True):
            return None
        made = build_target(recipe, model_name, None, wanted)
        if len(self._targets) < _MEMO_LIMIT:
            # Prepared once and kept; past the limit the pack renders per request instead.
            made.pack.prepare(made)
            self._targets[ref] = made
        return made

    def route(self, alias: str, kind: str) -> snap.Route | None:
        """The route for a name no route of routes.yaml has: a pattern's, else a direct address."""
        memo_key = (alias, kind)
        if memo_key in self._routes:
            return self._routes[memo_key]
        found = self._pattern_route(alias, kind)
        if found is None and "/" in alias:
            target = self.target(alias, kind)
            if target is not None:
                found = dataclasses.replace(
                    self._direct, alias=alias, targets=(snap.RouteTarget(target, 1.0, target.tier),), kind=kind,
                    direct=True,
                )
        if len(self._routes) < _MEMO_LIMIT:
            self._routes[memo_key] = found
        return found

    def _pattern_route(self, alias: str, kind: str) -> snap.Route | None:
        for pattern in self._patterns:
            if not fnmatchcase(alias, pattern.pattern):
                continue
            targets = []
            for ref, weight, tier in pattern.targets:
                target = self.target(ref.replace(MATCH, alias), kind)
                if target is not None:
                    target = priced(target, pattern.price)
                    targets.append(snap.RouteTarget(target, weight, tier or target.tier))
            if targets:
                return dataclasses.replace(pattern.template, alias=alias, targets=tuple(targets), kind=kind)
        return None
