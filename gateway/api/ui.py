"""The operator's page (`/ui`) and the admin JSON it reads that no other endpoint gives.

`GET /ui` serves a static page shipped in the package (`gateway/api/static/`): plain HTML, CSS
and JavaScript, no build step, nothing fetched from another host. The page itself holds
no data and needs no key; everything it shows comes from admin endpoints that need the
admin key (`GATEWAY_ADMIN_KEY`), which the page sends as a bearer token:

- `GET /admin/routes`: each alias with its strategy and targets in order, and per target
  its circuit state, moving-average latency, and over the recent window its calls,
  error rate and share of the route's answers;
- `GET /admin/traffic`: requests per second, latency percentiles, errors and fallbacks,
  in total and per route, with one point per time slot for charts;
- `GET /admin/config` (config reloads) and `GET /admin/usage` (spend) are served elsewhere.

Nothing here is a secret: routes, targets and key names come from the config; provider
keys, client keys and their digests never appear.
"""

from __future__ import annotations

import os
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.endpoint import Exchange, endpoint, json_response
from gateway.config.snapshot import RESPONSES_API, Route, RouteTarget
from gateway.errors import BadRequest, NotFound
from gateway.pipeline.identify import ADMIN_KEY_ENV, require_admin
from gateway.pipeline.runtime import Runtime

# The page's own files, read once: name -> (body, content type).
ASSET_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
}
_ASSETS: dict[str, bytes] = {}

# The page runs only its own files: no inline script, nothing from another origin, no framing.
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def _asset(name: str) -> bytes:
    body = _ASSETS.get(name)
    if body is None:
        body = _ASSETS[name] = resources.files("gateway.api").joinpath("static", name).read_bytes()
    return body


@endpoint("ui")
async def page(request: Request, exchange: Exchange) -> Response:
    """The page's HTML; it shows nothing until the operator logs in with the admin key."""
    return Response(_asset("index.html"), media_type=ASSET_TYPES["index.html"], headers=PAGE_HEADERS)


@endpoint("ui")
async def asset(request: Request, exchange: Exchange) -> Response:
    """The page's stylesheet and script; any other name is a 404 (no file system walk)."""
    name = request.path_params["name"]
    if name not in ASSET_TYPES:
        raise NotFound(f"no such endpoint: GET {request.url.path}")
    return Response(_asset(name), media_type=ASSET_TYPES[name], headers=PAGE_HEADERS)


def _window(request: Request) -> float | None:
    raw = request.query_params.get("window")
    if raw is None:
        return None
    try:
        window = float(raw)
    except ValueError:
        window = -1.0
    if not 1 <= window <= 86400:
        raise BadRequest("'window' must be a number of seconds between 1 and 86400", param="window")
    return window


@endpoint("admin")
async def traffic(request: Request, exchange: Exchange) -> Response:
    """Recent traffic of this process, per route and per target (`?window=SECONDS`, capped to what is kept)."""
    require_admin(request.headers, os.environ.get(ADMIN_KEY_ENV))
    runtime: Runtime = request.app.state.runtime
    # Each worker of `gateway serve --workers N` keeps its own window: say whose this is.
    return json_response({**runtime.traffic.report(_window(request)), "pid": os.getpid()})


@endpoint("admin")
async def routes(request: Request, exchange: Exchange) -> Response:
    """The running routes with the live state of each target, in the order they are tried."""
    require_admin(request.headers, os.environ.get(ADMIN_KEY_ENV))
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    window = _window(request)
    stats = {(row["route"], row["target"]): row for row in runtime.traffic.targets(window)}
    body = {
        "object": "routes",
        "version": snapshot.version,
        "loaded_at": snapshot.loaded_at,
        "sources": list(snapshot.sources),
        "open": snapshot.open,
        "window_seconds": window if window is not None else runtime.traffic.window,
        "routes": [_route(runtime, route, stats) for route in snapshot.routes.values()],
    }
    return json_response(body, headers={"x-gateway-config": snapshot.version})


# The client endpoints that serve a route of each kind (the page shows them per alias).
ENDPOINTS = {
    "chat": ("/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/completions"),
    "embedding": ("/v1/embeddings",),
}


def _route(runtime: Runtime, route: Route, stats: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    listed = [(rt, False) for rt in route.targets] + [(rt, True) for rt in route.fallback_targets]
    return {
        "alias": route.alias,
        "kind": route.kind,
        "endpoints": list(ENDPOINTS[route.kind]),
        "strategy": route.strategy,
        "equivalent": route.equivalent,
        "fallback_on": sorted(route.fallback_on),
        "timeout": route.timeout,
        "targets": [_target(runtime, route.alias, rt, extra, stats) for rt, extra in listed],
    }


def _target(
    runtime: Runtime, alias: str, entry: RouteTarget, equivalent: bool, stats: dict[tuple[str, str], dict[str, Any]]
) -> dict[str, Any]:
    target = entry.target
    view = runtime.circuits.view(target)
    average = runtime.latency.average(target.id)
    seen = stats.get((alias, target.id), {})
    return {
        "target": target.id,
        "weight": entry.weight,
        "tier": entry.tier,
        "from_equivalents": equivalent,  # appended by `fallback: equivalents`
        # How /v1/responses reaches it: the client's body as sent, or translated to chat.
        "responses": "native" if RESPONSES_API in target.speaks else "translated",
        "circuit": {"state": view.state, "retry_in": round(view.retry_in, 3)},
        "latency_avg_ms": round(average * 1000, 2) if average is not None else None,
        "calls": seen.get("calls", 0),
        "answered": seen.get("answered", 0),
        "failures": seen.get("failures", 0),
        "error_rate": seen.get("error_rate"),
        "share": seen.get("share"),
        "latency_ms": seen.get("latency_ms", {"p50": None, "p90": None, "p99": None}),
    }
