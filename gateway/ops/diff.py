"""What a config change will do, for the people who review it.

A text diff of routes.yaml shows lines; a reviewer needs consequences: which aliases
appear or disappear, which model now answers first, which limit, price or key changed,
and whether anything is *risky* enough to need a second approval. Both configs are
compiled with `build_snapshot` first, exactly as the gateway would load them, so
defaults, equivalents classes and `${VAR}` substitutions are already resolved and the
diff compares what would serve, not how it is spelled.

Secrets never appear: keys by name only, provider credentials and header values only
as "changed".
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from gateway.config.snapshot import Key, Limits, Plan, Route, Snapshot, Target, Tenant

MARKER = "<!-- gateway-config-diff -->"  # lets a CI job find and update its own PR comment
LIMIT_NAMES = ("rpm", "tpm", "concurrency", "max_tokens")


@dataclass(frozen=True, slots=True)
class Change:
    """One reviewable difference. `area` is alias, key, target, provider or config."""

    area: str
    name: str
    text: str
    risky: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"area": self.area, "name": self.name, "change": self.text, "risky": self.risky}


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    old_version: str
    new_version: str
    changes: tuple[Change, ...]
    summaries: dict[str, str] = field(default_factory=dict)  # alias -> what its clients will see

    @property
    def risky(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.risky)

    def as_dict(self) -> dict[str, Any]:
        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "changed": bool(self.changes),
            "risky": bool(self.risky),
            "aliases": self.summaries,
            "changes": [c.as_dict() for c in self.changes],
        }


def diff_snapshots(old: Snapshot, new: Snapshot) -> ConfigDiff:
    """Every difference that matters between two compiled configs."""
    out = _Collector()
    _diff_routes(old, new, out)
    _diff_keys(old, new, out)
    _diff_tenants(old, new, out)
    _diff_plans(old, new, out)
    _diff_issuers(old, new, out)
    _diff_providers(old, new, out)
    _diff_globals(old, new, out)
    _diff_pack_files(old, new, out)
    return ConfigDiff(old.version, new.version, tuple(out.changes), out.summaries)


class _Collector:
    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.summaries: dict[str, str] = {}
        self._client_notes: dict[str, list[str]] = {}

    def add(self, area: str, name: str, text: str, risky: bool = False) -> None:
        self.changes.append(Change(area, name, text, risky))

    def client(self, alias: str, note: str) -> None:
        self._client_notes.setdefault(alias, []).append(note)
        self.summaries[alias] = "; ".join(self._client_notes[alias])


# ---------------------------------------------------------------------- routes


def _diff_routes(old: Snapshot, new: Snapshot, out: _Collector) -> None:
    for alias in sorted(set(old.routes) - set(new.routes)):
        out.add("alias", alias, f"alias `{alias}` removed", risky=True)
        out.client(alias, "removed: requests for it get 404 model_not_found")
    for alias in sorted(set(new.routes) - set(old.routes)):
        route = new.routes[alias]
        out.add("alias", alias, f"alias `{alias}` added ({route.kind}, {route.strategy}: {_ids(route)})")
        out.client(alias, f"new {route.kind} model, answered by {_first(route)}" + _then(route))
        if route.cache_ttl and route.cache_scope == "route":
            out.add("alias", alias, f"`{alias}` cache scope route: {SCOPE_SHARING['route']}", risky=True)
        if route.cache_ttl and route.semantic is not None:
            out.add("alias", alias, f"`{alias}` semantic cache on (embed `{route.semantic.embed}`, threshold "
                    f"{route.semantic.threshold:g})")
    for alias in sorted(set(old.routes) & set(new.routes)):
        _diff_route(old.routes[alias], new.routes[alias], out)


def _diff_route(a: Route, b: Route, out: _Collector) -> None:
    alias = a.alias
    if a.kind != b.kind:
        out.add("alias", alias, f"`{alias}` is now a {b.kind} model (was {a.kind})", risky=True)
        out.client(alias, f"now a {b.kind} model: {a.kind} requests get 404")
    _diff_targets(a, b, out)
    if a.strategy != b.strategy:
        out.add("alias", alias, f"`{alias}` strategy {a.strategy} → {b.strategy}")
        out.client(alias, f"targets chosen by {b.strategy} (was {a.strategy})")
    if a.retry != b.retry:
        out.add("alias", alias, f"`{alias}` retry {_retry(a)} → {_retry(b)}")
        if a.retry.attempts != b.retry.attempts:
            out.client(alias, f"{b.retry.attempts} tries per target (was {a.retry.attempts})")
    if a.fallback_on != b.fallback_on:
        gained, lost = sorted(b.fallback_on - a.fallback_on), sorted(a.fallback_on - b.fallback_on)
        parts = ([f"now falls back on {', '.join(gained)}"] if gained else []) + (
            [f"no longer falls back on {', '.join(lost)}"] if lost else [])
        out.add("alias", alias, f"`{alias}` " + "; ".join(parts))
        if lost:
            out.client(alias, f"{', '.join(lost)} errors reach clients instead of falling back")
    if a.timeout != b.timeout:
        out.add("alias", alias, f"`{alias}` timeout {a.timeout:g}s → {b.timeout:g}s")
        if b.timeout < a.timeout:
            out.client(alias, f"gives up after {b.timeout:g}s (was {a.timeout:g}s): slow answers become 504")
    for text, note in _limit_changes(a.limits, b.limits):
        out.add("alias", alias, f"`{alias}` {text}")
        if note:
            out.client(alias, note)
    if a.cache_ttl != b.cache_ttl:
        out.add("alias", alias, f"`{alias}` cache {_ttl(a.cache_ttl)} → {_ttl(b.cache_ttl)}")
        out.client(alias, "answers are cached for " + _ttl(b.cache_ttl) if b.cache_ttl else "answers are no longer cached")
    _diff_cache_scope(a, b, out)
    _diff_semantic(a, b, out)
    if a.validate_output != b.validate_output:
        out.add("alias", alias, f"`{alias}` validate_output {str(a.validate_output).lower()} → {str(b.validate_output).lower()}")
        out.client(alias, "json_schema answers are checked against the schema" if b.validate_output
                   else "json_schema answers are no longer checked against the schema")
    if (a.equivalent, a.fallback_equivalents) != (b.equivalent, b.fallback_equivalents):
        out.add("alias", alias, f"`{alias}` equivalents {_equiv(a)} → {_equiv(b)}")
    _diff_route_prices(a, b, out)


def _diff_semantic(a: Route, b: Route, out: _Collector) -> None:
    """The semantic cache answers one question with another's answer: turning it on, lowering
    its threshold, admitting hotter requests or comparing less of the conversation can serve
    an answer to a question it was not written for, so each is risky."""
    old, new, alias = a.semantic if a.cache_ttl else None, b.semantic if b.cache_ttl else None, b.alias
    if old == new:
        return
    if new is None:
        out.add("alias", alias, f"`{alias}` semantic cache off")
        out.client(alias, "questions asked in other words are no longer answered from the cache")
        return
    if old is None:
        out.add("alias", alias, f"`{alias}` semantic cache on (embed `{new.embed}`, threshold {new.threshold:g}, "
                f"compare {new.compare})", risky=True)
        out.client(alias, f"questions asked in other words (similarity ≥ {new.threshold:g}) are answered from the cache")
        return
    changes = []
    for name in ("embed", "threshold", "compare", "max_entries", "max_temperature", "timeout"):
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            changes.append(f"{name} {_show(before)} → {_show(after)}")
    risky = (new.threshold < old.threshold or new.max_temperature > old.max_temperature
             or (old.compare, new.compare) == ("messages", "last_user_message"))
    out.add("alias", alias, f"`{alias}` semantic cache " + "; ".join(changes), risky=risky)
    if new.threshold != old.threshold:
        out.client(alias, f"questions asked in other words are answered from the cache at similarity ≥ {new.threshold:g}")


def _show(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _diff_cache_scope(a: Route, b: Route, out: _Collector) -> None:
    """A wider scope lets callers read answers written for others: risky, so it needs a second look."""
    old = a.cache_scope if a.cache_ttl else None
    new = b.cache_scope if b.cache_ttl else None
    if new is None or old == new:
        return
    widened = SCOPE_WIDTH[new] > SCOPE_WIDTH.get(old or "key", 0)
    out.add("alias", alias := b.alias, f"`{alias}` cache scope {old or 'key'} → {new}: {SCOPE_SHARING[new]}", risky=widened)
    if new != "key":
        out.client(alias, SCOPE_SHARING[new])


SCOPE_WIDTH = {"key": 0, "tenant": 1, "route": 2}
SCOPE_SHARING = {
    "key": "each key reads only its own cached answers",
    "tenant": "cached answers are shared by every key of a tenant",
    "route": "cached answers are shared by every caller of the route",
}


def _diff_targets(a: Route, b: Route, out: _Collector) -> None:
    alias = a.alias
    old_ids, new_ids = [rt.target.id for rt in a.targets], [rt.target.id for rt in b.targets]
    added = [t for t in new_ids if t not in old_ids]
    removed = [t for t in old_ids if t not in new_ids]
    for target in added:
        out.add("alias", alias, f"`{alias}` target added: {target}")
    for target in removed:
        out.add("alias", alias, f"`{alias}` target removed: {target}")
    kept_old = [t for t in old_ids if t in new_ids]
    kept_new = [t for t in new_ids if t in old_ids]
    if kept_old != kept_new:
        out.add("alias", alias, f"`{alias}` targets reordered: {', '.join(kept_old)} → {', '.join(kept_new)}")
    if old_ids and new_ids and old_ids[0] != new_ids[0] and b.strategy == "fallback":
        out.client(alias, f"answered first by {new_ids[0]} (was {old_ids[0]})")
    elif added or removed:
        if added:
            out.client(alias, f"may now be answered by {', '.join(added)}")
        if removed:
            out.client(alias, f"no longer answered by {', '.join(removed)}")
    old_by_id = {rt.target.id: rt for rt in a.targets}
    for rt in b.targets:
        before = old_by_id.get(rt.target.id)
        if before is None:
            continue
        if before.weight != rt.weight:
            out.add("alias", alias, f"`{alias}` weight of {rt.target.id} {before.weight:g} → {rt.weight:g}")
            if b.strategy == "weighted":
                out.client(alias, f"share of {rt.target.id} {_share(a, rt.target.id)} → {_share(b, rt.target.id)}")
        if before.tier != rt.tier:
            out.add("alias", alias, f"`{alias}` tier of {rt.target.id} {before.tier or '-'} → {rt.tier or '-'}")
    old_extra = [rt.target.id for rt in a.fallback_targets]
    new_extra = [rt.target.id for rt in b.fallback_targets]
    if old_extra != new_extra:
        out.add("alias", alias, f"`{alias}` equivalents fallback {', '.join(old_extra) or '-'} → {', '.join(new_extra) or '-'}")


def _diff_route_prices(a: Route, b: Route, out: _Collector) -> None:
    """A price change reaches the clients of every alias whose first target it is."""
    first_a, first_b = a.targets[0].target, b.targets[0].target
    if first_a.id == first_b.id and first_a.price != first_b.price:
        out.client(
            a.alias,
            f"first target costs ${_money(first_b.price.input_per_1m)}/${_money(first_b.price.output_per_1m)} per 1M "
            f"tokens in/out (was ${_money(first_a.price.input_per_1m)}/${_money(first_a.price.output_per_1m)})",
        )


# ---------------------------------------------------------------------- keys


def _diff_keys(old: Snapshot, new: Snapshot, out: _Collector) -> None:
    old_keys = {k.name: k for k in old.keys.values()}
    new_keys = {k.name: k for k in new.keys.values()}
    if old_keys and not new_keys:
        out.add("key", "*", "every key removed: the gateway becomes OPEN to anyone who can reach it", risky=True)
    elif new_keys and not old_keys:
        out.add("key", "*", "keys introduced: the gateway stops being open, calls without a key get 401", risky=True)
    for name in sorted(set(old_keys) - set(new_keys)):
        out.add("key", name, f"key `{name}` removed: its clients get 401", risky=bool(new_keys))
    for name in sorted(set(new_keys) - set(old_keys)):
        # A new credential widens access, unless the gateway was open to everyone before.
        out.add("key", name, f"key `{name}` added, may use {_access(new_keys[name])}", risky=bool(old_keys))
    for name in sorted(set(old_keys) & set(new_keys)):
        _diff_key(old_keys[name], new_keys[name], new, out)


def _diff_key(a: Key, b: Key, new: Snapshot, out: _Collector) -> None:
    name = a.name
    if a.digest != b.digest:
        out.add("key", name, f"key `{name}`: secret rotated (the old secret stops working)")
    if a.routes != b.routes:
        wider = _widened(a.routes, b.routes, new.routes)
        out.add("key", name, f"key `{name}` may use {_access(b)} (was {_access(a)})", risky=bool(wider))
    if a.direct != b.direct and not (b.routes is None and a.routes is not None):  # else implied by "every route"
        # Naming provider/model directly reaches models no route lists: more access is risky.
        shown = ", ".join(f"`{p}`" for p in b.direct) or "nothing"
        out.add("key", name, f"key `{name}` may name directly {shown} (was {', '.join(a.direct) or 'nothing'})",
                risky=bool(set(b.direct) - set(a.direct)))
    for text, _ in _limit_changes(a.limits, b.limits):
        out.add("key", name, f"key `{name}` {text}", risky=_loosened(a.limits, b.limits))
    if a.budget != b.budget:
        looser = b.budget is None or (a.budget is not None and (b.budget.usd > a.budget.usd or
                                                                 (a.budget.per, b.budget.per) == ("day", "month")))
        out.add("key", name, f"key `{name}` budget {_budget(a)} → {_budget(b)}", risky=looser)
    if a.max_tier != b.max_tier:
        out.add("key", name, f"key `{name}` max tier {a.max_tier or 'none'} → {b.max_tier or 'none'}",
                risky=_tier_raised(a.max_tier, b.max_tier, new.tiers))
    if a.tenant != b.tenant:
        # Another tenant means other shared limits, budget and cached answers (`scope: tenant`).
        out.add("key", name, f"key `{name}` tenant {a.tenant or 'none'} → {b.tenant or 'none'}", risky=True)
    if a.expires_at != b.expires_at:
        later = b.expires_at is None or (a.expires_at is not None and b.expires_at > a.expires_at)
        out.add("key", name, f"key `{name}` expires {_when(a.expires_at)} → {_when(b.expires_at)}", risky=later)


# ---------------------------------------------------------------------- tenants


def _diff_tenants(old: Snapshot, new: Snapshot, out: _Collector) -> None:
    """A tenant binds all its keys: widening what it grants widens every one of them."""
    _diff_grants("tenant", old.tenants, new.tenants, new, out, holders="keys", per="",
                 removed=": its keys must name another tenant",
                 added=lambda name: f", its keys may use {_access(new.tenants[name])}")


def _diff_plans(old: Snapshot, new: Snapshot, out: _Collector) -> None:
    """A plan binds every end user on it: widening it widens each of them."""
    _diff_grants("plan", old.plans, new.plans, new, out, holders="users", per=" per user",
                 removed=": tokens naming it are refused", added=lambda name: "")


def _diff_grants(
    kind: str, before: Mapping[str, Any], after: Mapping[str, Any], new: Snapshot, out: _Collector, *,
    holders: str, per: str, removed: str, added: Callable[[str], str],
) -> None:
    """What tenants or plans (both grant routes, limits and a tier to whoever they bind) now
    grant: removed, added, and each change to one kept, flagged risky when it widens."""
    for name in sorted(set(before) - set(after)):
        out.add(kind, name, f"{kind} `{name}` removed{removed}")
    for name in sorted(set(after) - set(before)):
        out.add(kind, name, f"{kind} `{name}` added{added(name)}")
    for name in sorted(set(before) & set(after)):
        a, b = before[name], after[name]
        if a.routes != b.routes:
            wider = _widened(a.routes, b.routes, new.routes)
            out.add(kind, name, f"{kind} `{name}` {holders} may use {_access(b)} (was {_access(a)})", risky=bool(wider))
        for text, _ in _limit_changes(a.limits, b.limits):
            out.add(kind, name, f"{kind} `{name}` {text}{per}", risky=_loosened(a.limits, b.limits))
        was, now = getattr(a, "budget", None), getattr(b, "budget", None)
        if was != now:
            looser = now is None or (was is not None and (now.usd > was.usd or (was.per, now.per) == ("day", "month")))
            out.add(kind, name, f"{kind} `{name}` budget {_budget(a)} → {_budget(b)}", risky=looser)
        if a.max_tier != b.max_tier:
            out.add(kind, name, f"{kind} `{name}` max tier {a.max_tier or 'none'} → {b.max_tier or 'none'}",
                    risky=_tier_raised(a.max_tier, b.max_tier, new.tiers))


def _diff_issuers(old: Snapshot, new: Snapshot, out: _Collector) -> None:
    """Trusting another identity provider, algorithm or audience lets new callers in: risky."""
    before, after = {i.name: i for i in old.issuers}, {i.name: i for i in new.issuers}
    for name in sorted(set(before) - set(after)):
        out.add("auth", name, f"JWT issuer `{name}` removed: its tokens are refused")
    for name in sorted(set(after) - set(before)):
        out.add("auth", name, f"JWT issuer `{name}` ({after[name].issuer}) trusted", risky=True)
    for name in sorted(set(before) & set(after)):
        a, b = before[name], after[name]
        for attribute, label in (("issuer", "iss"), ("audiences", "audience"), ("algorithms", "algorithms"),
                             ("jwks_url", "jwks_url"), ("discovery_url", "discovery_url"),
                             ("default_tenant", "default tenant"), ("default_plan", "default plan"),
                             ("claims", "claims")):
            was, now = getattr(a, attribute), getattr(b, attribute)
            if was != now:
                out.add("auth", name, f"JWT issuer `{name}` {label} changed", risky=True)
        if (a.secret is None) != (b.secret is None) or (a.secret and a.secret != b.secret):
            out.add("auth", name, f"JWT issuer `{name}` secret changed (tokens signed with the old one are refused)")


def _when(seconds: float | None) -> str:
    return "never" if seconds is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _widened(old: tuple[str, ...] | None, new: tuple[str, ...] | None, aliases: Iterable[str]) -> list[str]:
    """Aliases (or new patterns) the key reaches now and did not before."""
    if new is None:
        return ["all routes"] if old is not None else []
    if old is None:
        return []
    reach = [a for a in aliases if _allowed(new, a) and not _allowed(old, a)]
    return reach + [p for p in new if p not in old and not any(fnmatchcase(p, q) for q in old)]


def _allowed(patterns: tuple[str, ...], alias: str) -> bool:
    return any(fnmatchcase(alias, p) for p in patterns)


def _tier_raised(old: str | None, new: str | None, tiers: tuple[str, ...]) -> bool:
    if new is None:
        return old is not None
    if old is None:
        return False
    rank = {tier: i for i, tier in enumerate(tiers)}
    return rank.get(new, math.inf) > rank.get(old, math.inf)


# ---------------------------------------------------------------------- providers and targets


def _diff_providers(old: Snapshot, new: Snapshot, out: _Collector) -> None:
    old_p, new_p = _providers(old), _providers(new)
    for name in sorted(set(old_p) - set(new_p)):
        out.add("provider", name, f"provider `{name}` removed")
    for name in sorted(set(new_p) - set(old_p)):
        t = new_p[name]
        out.add("provider", name, f"provider `{name}` added ({t.pack.name} at {_host(t.base_url)})")
    for name in sorted(set(old_p) & set(new_p)):
        a, b = old_p[name], new_p[name]
        if a.base_url != b.base_url:
            out.add("provider", name, f"provider `{name}` base_url {_host(a.base_url)} → {_host(b.base_url)}: "
                    "prompts go to a different place", risky=True)
        if a.pack.name != b.pack.name:
            out.add("provider", name, f"provider `{name}` api {a.pack.name} → {b.pack.name}")
        if a.api_key != b.api_key:
            out.add("provider", name, f"provider `{name}` credential changed")
        if dict(a.headers) != dict(b.headers):
            out.add("provider", name, f"provider `{name}` headers changed: {_names_changed(a.headers, b.headers)}")
        if (a.connect_timeout, a.read_timeout) != (b.connect_timeout, b.read_timeout):
            out.add("provider", name, f"provider `{name}` timeouts {a.connect_timeout:g}/{a.read_timeout:g}s → "
                    f"{b.connect_timeout:g}/{b.read_timeout:g}s (connect/read)")
        for text, _ in _limit_changes(a.limits, b.limits):
            out.add("provider", name, f"provider `{name}` {text}")
    for target_id in sorted(set(old.targets) - set(new.targets)):
        if old.targets[target_id].provider in new_p:
            out.add("target", target_id, f"model `{target_id}` removed")
    for target_id in sorted(set(new.targets) - set(old.targets)):
        if new.targets[target_id].provider in old_p:
            out.add("target", target_id, f"model `{target_id}` added ({_price(new.targets[target_id])})")
    for target_id in sorted(set(old.targets) & set(new.targets)):
        _diff_target(old.targets[target_id], new.targets[target_id], out)


def _diff_target(a: Target, b: Target, out: _Collector) -> None:
    if a.price != b.price:
        out.add("target", a.id, f"price of `{a.id}` {_price(a)} → {_price(b)}")
    if a.context_window != b.context_window:
        out.add("target", a.id, f"context window of `{a.id}` {a.context_window or 'unset'} → {b.context_window or 'unset'}")
    if a.supports != b.supports:
        out.add("target", a.id, f"`{a.id}` supports {_supports(a)} → {_supports(b)}")
    if a.tier != b.tier:
        out.add("target", a.id, f"tier of `{a.id}` {a.tier or '-'} → {b.tier or '-'}")
    if a.kind != b.kind:
        out.add("target", a.id, f"`{a.id}` is now {b.kind} (was {a.kind})")
    circuit_a, circuit_b = getattr(a, "circuit", None), getattr(b, "circuit", None)
    if circuit_a != circuit_b and circuit_a is not None and circuit_b is not None:
        out.add("target", a.id, f"circuit of `{a.id}` opens after {circuit_a.failures} failures for "
                f"{circuit_a.cooldown:g}s → after {circuit_b.failures} for {circuit_b.cooldown:g}s")


def _providers(snapshot: Snapshot) -> dict[str, Target]:
    """One target per provider stands for the provider's shared settings."""
    out: dict[str, Target] = {}
    for target in snapshot.targets.values():
        out.setdefault(target.provider, target)
    return out


# ---------------------------------------------------------------------- the rest


def _diff_globals(old: Snapshot, new: Snapshot, out: _Collector) -> None:
    if old.tiers != new.tiers:
        out.add("config", "tiers", f"tiers {', '.join(old.tiers)} → {', '.join(new.tiers)}")
    for name in sorted(set(old.equivalents) | set(new.equivalents)):
        a, b = old.equivalents.get(name), new.equivalents.get(name)
        if a != b:
            out.add("config", f"equivalents.{name}", f"equivalents `{name}`: {', '.join(a or ()) or '-'} → {', '.join(b or ()) or '-'}")
    if old.max_body_bytes != new.max_body_bytes:
        out.add("config", "max_body_bytes", f"max request body {old.max_body_bytes} → {new.max_body_bytes} bytes")


def _diff_pack_files(old: Snapshot, new: Snapshot, out: _Collector) -> None:
    old_packs = {Path(p).name: p for p in old.sources[2:]}
    new_packs = {Path(p).name: p for p in new.sources[2:]}
    for name in sorted(set(old_packs) & set(new_packs)):
        if _read(old_packs[name]) != _read(new_packs[name]):
            out.add("config", name, f"pack file `{name}` changed")


def _read(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def _limit_changes(a: Limits, b: Limits) -> list[tuple[str, str | None]]:
    """(reviewer text, client note or None) for each limit that changed."""
    out = []
    for name in LIMIT_NAMES:
        before, after = getattr(a, name, None), getattr(b, name, None)
        if before == after:
            continue
        text = f"{name} limit {before if before is not None else 'none'} → {after if after is not None else 'none'}"
        tighter = after is not None and (before is None or after < before)
        note = None
        if tighter:
            note = (f"max_tokens above {after} gets 400" if name == "max_tokens"
                    else f"{name} limit {after} (was {before if before is not None else 'none'}): more 429s possible")
        out.append((text, note))
    return out


def _loosened(a: Limits, b: Limits) -> bool:
    for name in LIMIT_NAMES:
        before, after = getattr(a, name, None), getattr(b, name, None)
        if before is not None and (after is None or after > before):
            return True
    return False


def _ids(route: Route) -> str:
    return ", ".join(rt.target.id for rt in route.targets)


def _first(route: Route) -> str:
    return route.targets[0].target.id


def _then(route: Route) -> str:
    rest = [rt.target.id for rt in route.targets[1:]]
    return f" (then {', '.join(rest)})" if rest else ""


def _share(route: Route, target_id: str) -> str:
    total = sum(rt.weight for rt in route.targets) or 1
    weight = sum(rt.weight for rt in route.targets if rt.target.id == target_id)
    return f"{100 * weight / total:.0f}%"


def _retry(route: Route) -> str:
    r = route.retry
    return f"{r.attempts} tries, backoff {r.backoff:g}s (max {r.max_backoff:g}s)"


def _ttl(ttl: float | None) -> str:
    return f"{ttl:g}s" if ttl else "off"


def _equiv(route: Route) -> str:
    text = route.equivalent or "-"
    return text + (" + fallback: equivalents" if route.fallback_equivalents else "")


def _access(key: Key | Tenant | Plan) -> str:
    return "every route" if key.routes is None else ", ".join(f"`{p}`" for p in key.routes) or "no route"


def _budget(key: Key | Tenant) -> str:
    return f"${_money(key.budget.usd)}/{key.budget.per}" if key.budget else "none"


def _money(value: float) -> str:
    return f"{value:.2f}" if value >= 0.01 or value == 0 else f"{value:g}"


def _price(target: Target) -> str:
    p = target.price
    if not p.known:
        return "unpriced"
    return f"${_money(p.input_per_1m)} in / ${_money(p.output_per_1m)} out per 1M tokens"


def _supports(target: Target) -> str:
    return "everything" if target.supports is None else ", ".join(sorted(target.supports)) or "nothing"


def _host(url: str) -> str:
    """Scheme, host and path only: a URL can carry credentials."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else (url.split("?")[0] or "(none)")


def _names_changed(a: Any, b: Any) -> str:
    names = sorted(set(a) ^ set(b) | {n for n in set(a) & set(b) if a[n] != b[n]})
    return ", ".join(names)


# ---------------------------------------------------------------------- rendering


def render_text(diff: ConfigDiff) -> str:
    lines = [f"config {diff.old_version} → {diff.new_version}"]
    if not diff.changes:
        return lines[0] + "\nno change in routes, keys, providers or prices\n"
    if diff.risky:
        lines.append("")
        lines.append(f"RISKY ({len(diff.risky)}):")
        lines += [f"  ! {c.text}" for c in diff.risky]
    if diff.summaries:
        lines.append("")
        lines.append("what clients will see:")
        lines += [f"  {alias}: {summary}" for alias, summary in sorted(diff.summaries.items())]
    lines.append("")
    lines.append(f"all changes ({len(diff.changes)}):")
    lines += [f"  {'!' if c.risky else '-'} {c.text}" for c in diff.changes]
    return "\n".join(lines) + "\n"


_SECTIONS = (("alias", "Routes"), ("key", "Keys"), ("tenant", "Tenants"), ("provider", "Providers"), ("target", "Models and prices"),
             ("config", "Other"))


def render_markdown(diff: ConfigDiff) -> str:
    """A pull-request comment: risks first, then one line per alias, then every change."""
    head = f"{MARKER}\n### Gateway config: `{diff.old_version}` → `{diff.new_version}`\n"
    if not diff.changes:
        return head + "\nNo change in routes, keys, providers or prices.\n"
    parts = [head]
    if diff.risky:
        parts.append(f"\n> [!WARNING]\n> **{len(diff.risky)} risky change(s): a second approval is required.**\n")
        parts += [f"> - {c.text}\n" for c in diff.risky]
    else:
        parts.append("\nNo risky change.\n")
    if diff.summaries:
        parts.append("\n| alias | what clients will see |\n|---|---|\n")
        parts += [f"| `{alias}` | {_cell(summary)} |\n" for alias, summary in sorted(diff.summaries.items())]
    parts.append(f"\n<details><summary>All changes ({len(diff.changes)})</summary>\n")
    for area, title in _SECTIONS:
        changes = [c for c in diff.changes if c.area == area]
        if changes:
            parts.append(f"\n**{title}**\n\n")
            parts += [f"- {'⚠️ ' if c.risky else ''}{c.text}\n" for c in changes]
    parts.append("\n</details>\n")
    return "".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
