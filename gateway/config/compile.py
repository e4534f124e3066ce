"""Turn the two validated files into one frozen `Snapshot`, or every reason why not.

This is the only way a config enters the gateway: `gateway validate`, start-up and
every reload call `build_snapshot`, so what validate accepts is exactly what serves.
All problems are collected before failing, so an operator fixes a file in one pass.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
from pydantic import ValidationError

from gateway.config import model, presets
from gateway.config import snapshot as snap
from gateway.config.addresses import (
    Addresses,
    PatternRoute,
    ProviderRecipe,
    build_target,
    is_pattern,
    priced,
)
from gateway.config.issuers import compile_issuers, compile_plans
from gateway.config.load import (
    ConfigError,
    ConfigIssue,
    LoadedFile,
    PackError,
    PackNotFound,
    load_yaml,
)
from gateway.config.snapshot import CompilePack
from gateway.config.tenancy import bound_key, direct_globs, epoch


def build_snapshot(
    routes_path: str | os.PathLike[str],
    providers_path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    *,
    packs: CompilePack,
) -> snap.Snapshot:
    """Load, validate and compile; raise `ConfigError` listing every issue found.

    `packs` compiles a provider's `api:` into its pack. It is passed in rather than
    imported: packs are the providers layer's, which sits above this one.
    """
    routes_file = load_yaml(routes_path, env)
    providers_file = load_yaml(providers_path, env)
    statuses = presets.expand(providers_file, os.environ if env is None else env)
    issues = routes_file.issues + providers_file.issues
    providers = _validate(providers_file, model.ProvidersFile, issues)
    routes = _validate(routes_file, model.RoutesFile, issues)
    if providers is None or routes is None:
        _check_references(routes_file, providers_file, routes, providers, issues, packs)
        raise ConfigError(issues)
    compiler = _Compiler(routes_file, providers_file, routes, providers, issues, packs)
    result = compiler.compile()
    if issues:
        raise ConfigError(issues)
    return dataclasses.replace(result, presets=statuses)


def _validate(loaded: LoadedFile, shape: type[model.Strict], issues: list[ConfigIssue]) -> Any:
    if loaded.issues and loaded.data is None:
        return None
    if not isinstance(loaded.data, dict):
        issues.append(ConfigIssue(loaded.path, 1, 1, "the file must be a YAML mapping"))
        return None
    try:
        return shape.model_validate(loaded.data)
    except ValidationError as exc:
        for err in exc.errors():
            issues.append(loaded.issue(err["loc"], _describe(err)))
        return None


def _check_references(
    routes_file: LoadedFile,
    providers_file: LoadedFile,
    routes: model.RoutesFile | None,
    providers: model.ProvidersFile | None,
    issues: list[ConfigIssue],
    packs: CompilePack,
) -> None:
    """After schema errors, still compile the valid parts to find cross-file mistakes.

    One run of `gateway validate` should list every problem, not make the operator fix
    typos first and only then learn that a target names an unknown provider. Entries with
    a schema error are left out, and issues that merely follow from leaving them out
    (a route naming a dropped provider) are not reported.
    """
    dropped: set[str] = set()
    routes = routes or _valid_part(routes_file, model.RoutesFile, dropped)
    providers = providers or _valid_part(providers_file, model.ProvidersFile, dropped)
    if routes is None or providers is None:
        return
    found: list[ConfigIssue] = []
    try:
        _Compiler(routes_file, providers_file, routes, providers, found, packs).compile()
    except Exception:  # a best-effort pass over a config already known to be invalid
        return
    seen = set(issues)
    for issue in found:
        if issue not in seen and not any(f"'{name}'" in issue.message for name in dropped):
            issues.append(issue)


def _valid_part(loaded: LoadedFile, shape: type[model.Strict], dropped: set[str]) -> Any:
    """The file's data without the entries that failed validation, validated; None if that fails too."""
    if not isinstance(loaded.data, dict):
        return None
    data = copy.deepcopy(loaded.data)
    try:
        return shape.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [p for p in err["loc"] if not (isinstance(p, str) and p[:1].isupper())]
            if err["type"] == "extra_forbidden" and _pop_key(data, loc):
                continue  # an unknown key alone: the entry around it is still worth checking
            _drop(data, loc, dropped)
    try:
        return shape.model_validate(data)
    except ValidationError:
        return None


def _pop_key(data: Any, loc: list[Any]) -> bool:
    for part in loc[:-1]:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    if isinstance(data, dict) and loc and loc[-1] in data:
        del data[loc[-1]]
        return True
    return False


def _drop(data: dict[str, Any], loc: list[Any], dropped: set[str]) -> None:
    """Remove the smallest entry around `loc` whose removal keeps every other position right."""
    if not loc:
        return
    head, rest = loc[0], loc[1:]
    container = data.get(head)
    if head in ("routes", "equivalents", "providers") and rest and isinstance(container, dict):
        entry = container.get(rest[0])
        models = entry.get("models") if isinstance(entry, dict) else None
        if head == "providers" and len(rest) >= 3 and rest[1] == "models" and isinstance(models, dict):
            models.pop(rest[2], None)
            dropped.update({str(rest[2]), f"{rest[0]}/{rest[2]}"})
            return
        container.pop(rest[0], None)
        dropped.add(str(rest[0]))
    elif head == "defaults" and rest and isinstance(container, dict):
        container.pop(rest[0], None)
    else:
        data.pop(head, None)  # the keys list, tiers, an unknown top-level key


def _describe(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p[:1].isupper()))
    if err["type"] == "extra_forbidden":
        return f"unknown key '{err['loc'][-1]}' at {loc}"
    if err["type"] == "missing":
        return f"{loc}: required key is missing"
    if err["type"] == "string_pattern_mismatch":
        return f"{loc}: {_PATTERNS.get(err['ctx']['pattern'], 'has the wrong form')}; got {err['input']!r}"
    message = err["msg"].removeprefix("Value error, ")
    return f"{loc}: {message}" if loc else message


# What each name pattern of config/model.py means, as an operator writes it.
_PATTERNS = {
    r"^[a-z0-9][a-z0-9_-]*/.+$": "a target is written provider/model, e.g. openai/gpt-4o "
    "(the provider name in lowercase letters, digits, '-' or '_')",
    r"^[a-z0-9][a-z0-9_-]*$": "a name is lowercase letters, digits, '-' or '_', starting with a letter or digit",
    r"^[0-9a-f]{64}$": "a sha256 is 64 lowercase hex characters (gateway hash-key KEY prints it)",
}


class _Compiler:
    """Resolves names across both files; records issues at the line that names them."""

    def __init__(
        self,
        routes_file: LoadedFile,
        providers_file: LoadedFile,
        routes: model.RoutesFile,
        providers: model.ProvidersFile,
        issues: list[ConfigIssue],
        compile_pack: CompilePack,
    ):
        self.compile_pack = compile_pack
        self.rf, self.pf = routes_file, providers_file
        self.routes, self.providers = routes, providers
        self.issues = issues
        self.targets: dict[str, snap.Target] = {}
        self.recipes: dict[str, ProviderRecipe] = {}
        self.pack_files: list[str] = []  # operators' pack files: part of the config, watched like it

    def compile(self) -> snap.Snapshot:
        self._compile_targets()
        tiers = tuple(self.routes.tiers)
        equivalents = self._compile_equivalents()
        routes = {
            alias: self._compile_route(alias, spec, equivalents)
            for alias, spec in self.routes.routes.items() if not is_pattern(alias)
        }
        self.plans = compile_plans(self.routes.plans, tiers, self.rf.issue, self.issues)
        self._check_semantic(routes)
        self.tenants = self._compile_tenants(tiers)
        keys = self._compile_keys(tiers)
        issuers = compile_issuers(self.routes.auth.jwt, self.plans, self.tenants, self.rf.issue, self.issues)
        addresses = self._addresses()
        return snap.Snapshot(
            version=self._version(),
            routes=MappingProxyType({k: v for k, v in routes.items() if v is not None}),
            targets=MappingProxyType(self.targets),
            keys=MappingProxyType(keys),
            tiers=tiers,
            equivalents=MappingProxyType(equivalents),
            max_body_bytes=self.routes.defaults.max_body_bytes,
            sources=(self.rf.path, self.pf.path, *self.pack_files),
            loaded_at=time.time(),
            store=_store_settings(self.routes.store),
            database=snap.DatabaseSettings(**self.routes.database.model_dump()),
            per_key_metrics=self.routes.metrics.per_key_labels,
            tenants=MappingProxyType(self.tenants),
            key_limits=_limits(self.routes.defaults.key_limits),
            responses=snap.ResponsesSettings(**self.routes.responses.model_dump()),
            addresses=addresses,
            plans=MappingProxyType(self.plans),
            issuers=issuers,
            per_user_metrics=self.routes.metrics.per_user_labels,
        )

    def _compile_targets(self) -> None:
        base_dir = str(Path(self.pf.path).parent)
        for name, provider in self.providers.providers.items():
            try:
                pack = self.compile_pack(provider.api, base_dir, provider.templates, self._template_position(name))
            except PackNotFound as exc:
                self.issues.append(self.pf.issue(("providers", name, "api"), str(exc)))
                continue
            except PackError as exc:
                self.issues.extend(exc.issues)
                continue
            if getattr(pack, "user_file", None) and pack.user_file not in self.pack_files:
                self.pack_files.append(pack.user_file)
            params = _params(provider)
            root = getattr(pack, "root_url", None)
            base_url = provider.base_url or (root(params) if root is not None else None)
            if not pack.local and not base_url:
                hint = " (or the region/location its pack builds one from)" if root is not None else ""
                self.issues.append(self.pf.issue(("providers", name), f"provider '{name}' needs a base_url{hint}"))
                continue
            breaker = provider.circuit or self.routes.defaults.circuit
            recipe = self.recipes[name] = ProviderRecipe(
                name=name,
                pack=pack,
                base_url=(base_url or "").rstrip("/"),
                api_key=provider.api_key,
                headers=MappingProxyType(dict(provider.headers)),
                connect_timeout=provider.timeout.connect,
                read_timeout=provider.timeout.read,
                limits=_limits(provider.limits),
                params=MappingProxyType(params),
                circuit=snap.CircuitPolicy(breaker.failures, breaker.cooldown),
                catalogue=presets.catalogue_id(provider.preset, provider.api),
                open=not provider.models,
                responses=provider.responses,
            )
            self._speaks(name, provider, pack)  # reports a `responses: native` its pack cannot serve
            for model_name, spec in provider.models.items():
                target_id = f"{name}/{model_name}"
                if not getattr(pack, f"serves_{'embeddings' if spec.type == 'embedding' else 'chat'}", True):
                    where = ("providers", name, "models", model_name)
                    self.issues.append(self.pf.issue(where, f"pack '{pack.name}' has no {spec.type} call for model '{model_name}'"))
                target = self.targets[target_id] = build_target(recipe, model_name, spec)
                target.pack.prepare(target)

    def _speaks(self, name: str, provider: model.Provider, pack: snap.Pack) -> frozenset[str]:
        """The client APIs a provider's targets take as they are: its pack's, less the
        Responses API when the provider says its server lacks it (`responses: translate`)."""
        speaks = frozenset(getattr(pack, "speaks", ()))
        if provider.responses == "translate":
            return speaks - {snap.RESPONSES_API}
        if provider.responses == "native" and snap.RESPONSES_API not in speaks:
            self.issues.append(self.pf.issue(
                ("providers", name, "responses"), f"pack '{pack.name}' has no responses call: use `responses: translate`"))
        return speaks

    def _template_position(self, provider: str) -> Callable[[str], tuple[str, int, int]]:
        """Where a provider's `templates:` override sits, so its errors point into providers.yaml."""
        return lambda template: (self.pf.path, *self.pf.where(("providers", provider, "templates", template)))

    def _known_target(self, ref: str, where: tuple[Any, ...]) -> snap.Target | None:
        target = self.targets.get(ref)
        if target is not None:
            return target
        provider_name, model_name = ref.split("/", 1)
        recipe = self.recipes.get(provider_name)
        if recipe is not None and recipe.open:  # lists no models: any name is one of them
            target = self.targets[ref] = build_target(recipe, model_name, None)
            target.pack.prepare(target)
            return target
        provider = self.providers.providers.get(provider_name)
        if provider is None:
            self.issues.append(self.rf.issue(where, f"unknown provider '{provider_name}' in target '{ref}'"))
        elif provider.models and model_name not in provider.models:
            self.issues.append(self.rf.issue(where, f"provider '{provider_name}' has no model '{model_name}'"))
        # else: the provider itself failed to compile, and that was reported at its own line
        return None

    def _compile_equivalents(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for name, members in self.routes.equivalents.items():
            for i, ref in enumerate(members):
                self._known_target(ref, ("equivalents", name, i))
            out[name] = tuple(members)
        return out

    def _compile_route(
        self, alias: str, spec: model.Route, equivalents: dict[str, tuple[str, ...]]
    ) -> snap.Route | None:
        defaults = self.routes.defaults
        where = ("routes", alias)
        if spec.equivalent is not None:
            if spec.equivalent not in equivalents:
                self.issues.append(self.rf.issue(where + ("equivalent",), f"unknown equivalents class '{spec.equivalent}'"))
                return None
            entries = [(model.RouteTarget(target=ref), where + ("equivalent",)) for ref in equivalents[spec.equivalent]]
        else:
            entries = [(t, where + ("targets", i)) for i, t in enumerate(spec.targets or ())]
        targets: list[snap.RouteTarget] = []
        for entry, loc in entries:
            target = self._known_target(entry.target, loc)
            if target is None:
                continue
            target = self._priced(target, spec.price)
            tier = entry.tier or target.tier
            if tier is not None and tier not in self.routes.tiers:
                self.issues.append(self.rf.issue(loc, f"unknown tier '{tier}' (tiers: {', '.join(self.routes.tiers)})"))
            targets.append(snap.RouteTarget(target, entry.weight, tier))
        if not targets:
            return None
        kinds = {t.target.kind for t in targets}
        if len(kinds) > 1:
            self.issues.append(self.rf.issue(where, f"route '{alias}' mixes chat and embedding models"))
        retry = spec.retry or defaults.retry
        fallback_targets = self._equivalent_fallbacks(alias, spec, targets, equivalents) if spec.fallback else ()
        return snap.Route(
            alias=alias,
            targets=tuple(targets),
            strategy=spec.strategy or defaults.strategy,
            retry=snap.Retry(retry.attempts, retry.backoff, retry.max_backoff),
            fallback_on=frozenset(spec.fallback_on if spec.fallback_on is not None else defaults.fallback_on),
            timeout=spec.timeout or defaults.timeout,
            limits=_limits(spec.limits),
            cache_ttl=spec.cache.ttl if spec.cache else None,
            equivalent=spec.equivalent,
            fallback_equivalents=spec.fallback == "equivalents",
            kind=targets[0].target.kind,
            fallback_targets=fallback_targets,
            cache_scope=spec.cache.scope if spec.cache else "key",
            validate_output=spec.validate_output,
            semantic=_semantic(spec.cache),
            attempt_timeouts=_attempt_timeouts(entries, fallback_targets, spec.timeout or defaults.timeout,
                                               defaults.attempt_timeout),
            expose_upstream_errors=defaults.expose_upstream_errors,
        )

    def _check_semantic(self, routes: Mapping[str, snap.Route | None]) -> None:
        """`cache.semantic.embed` names an embeddings route of this file, on a chat route.

        An embeddings route has no chat answers to cache, so the embedding call can never
        itself wait on a semantic lookup: no cycle is possible."""
        for alias, spec in self.routes.routes.items():
            semantic = spec.cache.semantic if spec.cache else None
            if semantic is None:
                continue
            where = ("routes", alias, "cache", "semantic", "embed")
            compiled = routes.get(alias)
            if compiled is not None and compiled.kind != "chat":
                self.issues.append(self.rf.issue(
                    ("routes", alias, "cache", "semantic"), f"route '{alias}' serves embeddings: only chat routes "
                    "have a semantic cache"))
                continue
            embed = routes.get(semantic.embed)
            if semantic.embed not in self.routes.routes or is_pattern(semantic.embed):
                self.issues.append(self.rf.issue(where, f"unknown embeddings route '{semantic.embed}' "
                                                 f"(cache.semantic.embed of '{alias}')"))
            elif embed is not None and embed.kind != "embedding":
                self.issues.append(self.rf.issue(where, f"route '{semantic.embed}' is a chat route: "
                                                 "cache.semantic.embed needs an embeddings route"))

    def _equivalent_fallbacks(
        self, alias: str, spec: model.Route, targets: list[snap.RouteTarget], equivalents: dict[str, tuple[str, ...]]
    ) -> tuple[snap.RouteTarget, ...]:
        """`fallback: equivalents`: the members of the last target's class not already in the chain."""
        last = targets[-1].target.id
        classes = [name for name, members in equivalents.items() if last in members]
        if not classes:
            self.issues.append(self.rf.issue(
                ("routes", alias, "fallback"), f"'fallback: equivalents' but '{last}' is in no equivalents class"
            ))
            return ()
        chain = {t.target.id for t in targets}
        extra: list[snap.RouteTarget] = []
        for ref in equivalents[classes[0]]:
            target = self.targets.get(ref)
            if target is None or ref in chain or target.kind != targets[0].target.kind:
                continue
            tier = target.tier if target.tier in self.routes.tiers else None
            extra.append(snap.RouteTarget(target, 0.0, tier))
            chain.add(ref)
        return tuple(extra)

    def _compile_keys(self, tiers: tuple[str, ...]) -> dict[str, snap.Key]:
        keys: dict[str, snap.Key] = {}
        names: set[str] = set()
        for i, spec in enumerate(self.routes.keys or ()):
            where = ("keys", i)
            if spec.name in names:
                self.issues.append(self.rf.issue(where + ("name",), f"duplicate key name '{spec.name}'"))
            names.add(spec.name)
            if spec.max_tier is not None and spec.max_tier not in tiers:
                self.issues.append(self.rf.issue(where + ("max_tier",), f"unknown tier '{spec.max_tier}'"))
            digest = spec.sha256 or hashlib.sha256(spec.key.encode()).hexdigest()  # type: ignore[union-attr]
            if digest in keys:
                self.issues.append(self.rf.issue(where, f"key '{spec.name}' has the same secret as '{keys[digest].name}'"))
            tenant = self.tenants.get(spec.tenant) if spec.tenant is not None else None
            if spec.tenant is not None and tenant is None:
                self.issues.append(self.rf.issue(where + ("tenant",), f"unknown tenant '{spec.tenant}'"))
            keys[digest] = bound_key(
                name=spec.name,
                digest=digest,
                routes=tuple(spec.routes) if spec.routes is not None else None,
                limits=_limits(spec.limits),
                budget=snap.Budget(spec.budget.usd, spec.budget.per) if spec.budget else None,
                max_tier=spec.max_tier,
                tenant=tenant,
                tiers=tiers,
                default_limits=_limits(self.routes.defaults.key_limits),
                expires_at=epoch(spec.expires_at),
                direct=direct_globs(spec.direct, spec.routes),
                plan=self._plan(spec.plan, where + ("plan",)),
                per_user=spec.per_user,
            )
            if spec.per_user and spec.plan is None:
                self.issues.append(self.rf.issue(where + ("per_user",), "per_user needs a 'plan' whose limits to count"))
        return keys

    def _plan(self, name: str | None, where: tuple[Any, ...]) -> snap.Plan | None:
        if name is None:
            return None
        plan = self.plans.get(name)
        if plan is None:
            self.issues.append(self.rf.issue(where, f"unknown plan '{name}'"))
        return plan

    def _compile_tenants(self, tiers: tuple[str, ...]) -> dict[str, snap.Tenant]:
        tenants: dict[str, snap.Tenant] = {}
        for name, spec in self.routes.tenants.items():
            if spec.max_tier is not None and spec.max_tier not in tiers:
                self.issues.append(self.rf.issue(("tenants", name, "max_tier"), f"unknown tier '{spec.max_tier}'"))
            tenants[name] = snap.Tenant(
                name=name,
                routes=tuple(spec.routes) if spec.routes is not None else None,
                limits=_limits(spec.limits),
                budget=snap.Budget(spec.budget.usd, spec.budget.per) if spec.budget else None,
                max_tier=spec.max_tier,
                id=name,
                plan=self._plan(spec.plan, ("tenants", name, "plan")),
            )
        return tenants

    def _priced(self, target: snap.Target, price: model.Price | None) -> snap.Target:
        """A route's price for a target that has none (the copy is prepared like any target)."""
        if price is None or target.price.known:
            return target
        copy_ = priced(target, snap.Price(price.input_per_1m, price.output_per_1m))
        copy_.pack.prepare(copy_)
        return copy_

    def _addresses(self) -> Addresses:
        """Pattern routes and direct `provider/model` addresses, made when first asked for."""
        patterns = []
        for alias, spec in self.routes.routes.items():
            if not is_pattern(alias):
                continue
            if spec.targets is None:
                self.issues.append(self.rf.issue(("routes", alias), f"pattern route '{alias}' needs 'targets'"))
                continue
            refs = []
            for i, entry in enumerate(spec.targets):
                provider = entry.target.split("/", 1)[0]
                if provider not in self.providers.providers:
                    where = ("routes", alias, "targets", i)
                    self.issues.append(self.rf.issue(where, f"unknown provider '{provider}' in target '{entry.target}'"))
                refs.append((entry.target, entry.weight, entry.tier))
            template = self._route_template(alias, spec)
            price = snap.Price(spec.price.input_per_1m, spec.price.output_per_1m) if spec.price else None
            patterns.append(PatternRoute(alias, template, tuple(refs), price))
        direct = self._route_template("", model.Route(targets=["direct/any"]))
        return Addresses(MappingProxyType(self.recipes), MappingProxyType(self.targets), tuple(patterns), direct)

    def _route_template(self, alias: str, spec: model.Route) -> snap.Route:
        defaults = self.routes.defaults
        retry = spec.retry or defaults.retry
        return snap.Route(
            alias=alias,
            targets=(),
            strategy=spec.strategy or defaults.strategy,
            retry=snap.Retry(retry.attempts, retry.backoff, retry.max_backoff),
            fallback_on=frozenset(spec.fallback_on if spec.fallback_on is not None else defaults.fallback_on),
            timeout=spec.timeout or defaults.timeout,
            limits=_limits(spec.limits),
            cache_ttl=spec.cache.ttl if spec.cache else None,
            equivalent=None,
            fallback_equivalents=False,
            kind="chat",
            cache_scope=spec.cache.scope if spec.cache else "key",
            validate_output=spec.validate_output,
            semantic=_semantic(spec.cache),
        )

    def _version(self) -> str:
        """Same config, same version: a hash of both validated files (secrets included, so rotation shows)."""
        canonical = orjson.dumps(
            [self.routes.model_dump(mode="json"), self.providers.model_dump(mode="json")],
            option=orjson.OPT_SORT_KEYS,
        )
        digest = hashlib.sha256(canonical)
        for path in self.pack_files:  # an edited pack file is a new config too
            digest.update(Path(path).read_bytes())
        return digest.hexdigest()[:12]


_BUILTIN_PACK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # the rule packs.loader.find_pack applies


def pack_path(api: str, base_dir: str) -> str | None:
    """The file a provider's `api:` names (relative to providers.yaml), or None for a built-in pack."""
    if _BUILTIN_PACK_NAME.match(api):
        return None
    return api if Path(api).is_absolute() else str(Path(base_dir) / api)
def _attempt_timeouts(
    entries: list[tuple[model.RouteTarget, tuple[Any, ...]]], fallbacks: tuple[snap.RouteTarget, ...],
    deadline: float, default: float | None,
) -> Mapping[str, float]:
    """Seconds each target of a route gets to start answering: its own `timeout`, else
    `defaults.attempt_timeout`, else an equal share of the route's deadline."""
    share = deadline / max(1, len(entries) + len(fallbacks))
    out = {target.id: default or share for target in (t.target for t in fallbacks)}
    for entry, _ in entries:
        out.setdefault(entry.target, entry.timeout or default or share)
    return MappingProxyType(out)


def _semantic(cache: model.Cache | None) -> snap.Semantic | None:
    spec = cache.semantic if cache is not None else None
    if spec is None:
        return None
    return snap.Semantic(spec.embed, spec.threshold, spec.compare, spec.max_entries, spec.max_temperature,
                         spec.timeout)


def _store_settings(spec: model.Store) -> snap.StoreSettings:
    return snap.StoreSettings(
        timeout=spec.timeout,
        retry_interval=spec.retry_interval,
        prefix=spec.prefix,
        limits_fail_open=spec.on_outage.limits == "open",
        budgets_fail_open=spec.on_outage.budgets == "open",
        lease=spec.lease,
        quota_lease=spec.quota_lease,
        cache_max_bytes=spec.cache_max_bytes,
        cache_max_entry_bytes=spec.cache_max_entry_bytes,
    )


def _params(provider: model.Provider) -> dict[str, Any]:
    """The values a pack reads: `params:`, plus the cloud settings given as their own fields."""
    out = dict(provider.params)
    for name in ("region", "project", "location", "credentials"):
        value = getattr(provider, name)
        if value is not None:
            out.setdefault(name, value)
    # The clouds' own variables, as their SDKs read them, when the provider names none.
    for name, variables in (("region", ("AWS_REGION", "AWS_DEFAULT_REGION")), ("project", ("GOOGLE_CLOUD_PROJECT",))):
        found = next((os.environ[v] for v in variables if os.environ.get(v)), None)
        if name not in out and found:
            out[name] = found
    return out


def _limits(spec: model.Limits | None) -> snap.Limits:
    if spec is None:
        return snap.Limits()
    return snap.Limits(spec.rpm, spec.tpm, spec.concurrency, getattr(spec, "max_tokens", None))
