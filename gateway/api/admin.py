"""POST /admin/reload and GET /admin/config: reload on demand, and see what is serving.

Both need the admin key (`GATEWAY_ADMIN_KEY`). What they show is built from the running
snapshot with every secret left out: provider keys and header values appear only as
"[redacted]", client keys only by name, never by digest.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.endpoint import Exchange, endpoint, json_response
from gateway.config import reload
from gateway.config.snapshot import Issuer, Key, Limits, Route, Snapshot, Target
from gateway.errors import GatewayError
from gateway.observe.redact import MASK
from gateway.pipeline.identify import ADMIN_KEY_ENV, require_admin
from gateway.pipeline.runtime import Runtime


@endpoint("admin")
async def reload_config(request: Request, exchange: Exchange) -> Response:
    """Reload now; 200 with the serving version, or 422 listing every issue of a refused config."""
    require_admin(request.headers, os.environ.get(ADMIN_KEY_ENV))
    runtime: Runtime = request.app.state.runtime
    if runtime.reloader is None:
        raise GatewayError("the gateway is still starting", status=503, type="service_unavailable", code="not_ready")
    attempt = await runtime.reloader.reload("admin")
    workers = reload.notify_workers()
    if attempt.result == "refused":
        raise GatewayError(
            f"config refused with {len(attempt.issues)} error(s); still serving {attempt.version}",
            status=422, type="invalid_request_error", code="config_refused",
            extra={"errors": [issue.as_dict() for issue in attempt.issues], "version": attempt.version},
        )
    body = {**attempt.as_dict(), "all_workers": workers}
    del body["errors"]
    return json_response(body, headers={"x-gateway-config": attempt.version})


@endpoint("admin")
async def show_config(request: Request, exchange: Exchange) -> Response:
    """The running config and the reload history of this process, secrets redacted."""
    require_admin(request.headers, os.environ.get(ADMIN_KEY_ENV))
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    reloader = runtime.reloader
    body: dict[str, Any] = {
        "version": snapshot.version,
        "loaded_at": snapshot.loaded_at,
        "loaded_at_iso": _iso(snapshot.loaded_at),
        "sources": list(snapshot.sources),
        "pid": os.getpid(),
        "watching": bool(reloader and reloader.watch_enabled),
        "last_refused": _attempt(reloader.last_refused) if reloader else None,
        "reloads": [_attempt(a) for a in reloader.history] if reloader else [],
        "config": describe(snapshot),
    }
    return json_response(body, headers={"x-gateway-config": snapshot.version})


def describe(snapshot: Snapshot) -> dict[str, Any]:
    """A reviewable picture of the compiled config; nothing in it is a secret."""
    providers: dict[str, dict[str, Any]] = {}
    for target in snapshot.targets.values():
        provider = providers.setdefault(target.provider, _provider(target))
        provider["models"][target.model] = {
            "type": target.kind,
            "input_per_1m": target.price.input_per_1m,
            "output_per_1m": target.price.output_per_1m,
            "priced": target.price.known,
            "context_window": target.context_window,
            "supports": sorted(target.supports) if target.supports is not None else None,
            "tier": target.tier,
        }
    return {
        "routes": {alias: _route(route) for alias, route in snapshot.routes.items()},
        "providers": providers,
        "keys": [_key(key) for key in sorted(snapshot.keys.values(), key=lambda k: k.name)],
        "open": snapshot.open,
        "tiers": list(snapshot.tiers),
        "equivalents": {name: list(members) for name, members in snapshot.equivalents.items()},
        "tenants": {name: {"id": t.id, "source": t.source, "routes": list(t.routes) if t.routes is not None else None,
                           "limits": _limits(t.limits), "budget": asdict(t.budget) if t.budget else None,
                           "max_tier": t.max_tier, "plan": t.plan.name if t.plan else None}
                    for name, t in sorted(snapshot.tenants.items())},
        "plans": {name: {"limits": _limits(p.limits), "max_tier": p.max_tier,
                         "routes": list(p.routes) if p.routes is not None else None}
                  for name, p in sorted(snapshot.plans.items())},
        "auth": {"jwt": [_issuer(issuer) for issuer in snapshot.issuers]},
    }


def _issuer(issuer: Issuer) -> dict[str, Any]:
    """An issuer as reviewed: where its keys come from, never its shared secret."""
    return {
        "name": issuer.name, "issuer": issuer.issuer, "audience": list(issuer.audiences),
        "algorithms": list(issuer.algorithms), "jwks_url": issuer.jwks_url, "discovery_url": issuer.discovery_url,
        "secret": MASK if issuer.secret else None, "default_tenant": issuer.default_tenant,
        "default_plan": issuer.default_plan, "claims": asdict(issuer.claims),
    }


def _provider(target: Target) -> dict[str, Any]:
    return {
        "api": target.pack.name,
        "base_url": _without_userinfo(target.base_url) or None,
        "api_key": MASK if target.api_key else None,
        "headers": {name: MASK for name in target.headers},
        "timeout": {"connect": target.connect_timeout, "read": target.read_timeout},
        "limits": _limits(target.limits),
        "models": {},
    }


def _route(route: Route) -> dict[str, Any]:
    return {
        "kind": route.kind,
        "strategy": route.strategy,
        "targets": [{"target": rt.target.id, "weight": rt.weight, "tier": rt.tier} for rt in route.targets],
        "equivalent": route.equivalent,
        "fallback_equivalents": route.fallback_equivalents,
        "retry": asdict(route.retry),
        "fallback_on": sorted(route.fallback_on),
        "timeout": route.timeout,
        "limits": _limits(route.limits),
        "cache_ttl": route.cache_ttl,
        "cache_scope": route.cache_scope if route.cache_ttl else None,
        "cache_semantic": asdict(route.semantic) if route.cache_ttl and route.semantic is not None else None,
    }


def _key(key: Key) -> dict[str, Any]:
    return {
        "name": key.name,
        "routes": list(key.routes) if key.routes is not None else None,
        "limits": _limits(key.limits),
        "budget": asdict(key.budget) if key.budget else None,
        "max_tier": key.max_tier,
        "plan": key.plan.name if key.plan is not None else None,
        "per_user": key.per_user,
    }


def _limits(limits: Limits) -> dict[str, int] | None:
    values = {name: value for name, value in asdict(limits).items() if value is not None}
    return values or None


def _attempt(attempt: reload.ReloadAttempt | None) -> dict[str, Any] | None:
    if attempt is None:
        return None
    return {**attempt.as_dict(), "at_iso": _iso(attempt.at)}


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _without_userinfo(url: str) -> str:
    """`https://user:secret@host/v1?key=k` shows as `https://host/v1?[redacted]`."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=netloc, query=MASK if parts.query else ""))
