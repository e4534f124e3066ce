"""Builds the Starlette app: endpoints, lifespan, error pages. Nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api import (
    admin,
    audit,
    caller_usage,
    health,
    keys,
    ledger,
    models,
    tenants,
    ui,
    usage,
)
from gateway.api.anthropic import messages
from gateway.api.anthropic.shape import error_body as anthropic_error_body
from gateway.api.endpoint import Endpoint, error_response, request_id
from gateway.api.openai import chat, completions, embeddings, responses
from gateway.config import reload
from gateway.errors import GatewayError, NotFound
from gateway.observe import log, metrics, tracing
from gateway.pipeline.runtime import Runtime
from gateway.providers.snapshots import build_snapshot
from gateway.server import collector

ROUTES_ENV = "GATEWAY_ROUTES"
MESSAGES_PATH = "/v1/messages"
PROVIDERS_ENV = "GATEWAY_PROVIDERS"
REDIS_URL_ENV = "REDIS_URL"


class GatewayApp(Starlette):
    """Starlette, with the model endpoints' fixed paths found by one dict lookup.

    Starlette's router tries each route's pattern in turn, under two middleware layers
    (server errors, HTTP exceptions) that an `Endpoint` never needs: it already turns
    every error into a body in its client's shape. A request to an endpoint's fixed path
    with one of its methods goes straight to it; anything else (other methods, paths
    with parameters, unknown paths, lifespan) takes Starlette's way.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.state = AppState()
        self.direct: dict[tuple[str, str], ASGIApp] = {}
        for route in self.routes:
            if isinstance(route, Route) and isinstance(route.app, Endpoint) and "{" not in route.path:
                for method in route.methods or ():
                    self.direct[(method, route.path)] = route.app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.direct.get((scope["method"], scope["path"]))
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


class AppState(State):
    """Starlette's `State`, whose values are also plain attributes.

    `State` keeps what is set on it in a dict and hands it out from `__getattr__`, which
    Python calls only once the ordinary lookup has failed: every read of
    `app.state.runtime` (twice a request) first built and dropped an AttributeError with
    its formatted message. Here a value set is kept in both places, so reads find it at
    once and `State`'s own ways (its dict, `state[...]`) see the same values.
    """

    def __setattr__(self, key: str, value: object) -> None:
        super().__setattr__(key, value)
        object.__setattr__(self, key, value)

    def __delattr__(self, key: str) -> None:
        super().__delattr__(key)
        object.__delattr__(self, key)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods still answer in the error shape the client reads."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error: GatewayError = NotFound(f"no such endpoint: {request.method} {request.url.path}")
    else:
        error = GatewayError(str(exc.detail), status=exc.status_code, type="invalid_request_error")
    if request.url.path.startswith(MESSAGES_PATH):  # Anthropic's clients read Anthropic's shape
        return error_response(error, request_id(request), anthropic_error_body)
    return error_response(error, request_id(request))


def served_app() -> Starlette:
    """The app `gateway serve` runs. The process is then the gateway's alone, so it also sets
    the garbage collector for a server (`collector.py`); an app embedded in another program
    (the tests, an ASGI host of one's own) leaves that program's collector as it is."""
    return create_app(own_process=True)


def create_app(routes_path: str | None = None, providers_path: str | None = None, *, own_process: bool = False) -> Starlette:
    """The app for one process; the config is compiled here so a bad one fails start-up."""
    routes_path = routes_path or os.environ.get(ROUTES_ENV, "routes.yaml")
    providers_path = providers_path or os.environ.get(PROVIDERS_ENV, "providers.yaml")
    runtime = Runtime(build_snapshot(routes_path, providers_path), routes_path, providers_path)
    log.setup(log.provider_secrets(lambda: runtime.snapshot))
    owns_tracing = tracing.configure()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.upstream.start()
        await runtime.key_sets.start()
        runtime.reloader = await reload.start(runtime, build_snapshot)
        await runtime.open_shared_store(os.environ.get(REDIS_URL_ENV))
        if runtime.store.kind == "memory":
            metrics.store_up(True)  # the in-process store cannot be down; 0 would read as an outage
        await runtime.open_database()
        snapshot = runtime.snapshot
        metrics.config_served(snapshot.version, None, snapshot.loaded_at)
        log.event("ready", f"gateway ready: config {snapshot.version} with {len(snapshot.routes)} routes",
                  config=snapshot.version, routes=len(snapshot.routes), store=runtime.store.kind,
                  database=runtime.database.kind if runtime.database else "off", pid=os.getpid())
        if snapshot.open:
            log.event("open", "NO CLIENT KEYS CONFIGURED: the gateway is open to anyone who can reach it", "WARNING")
        flusher = asyncio.get_running_loop().create_task(metrics.keep_flushing())
        freezer = None
        if own_process:
            collector.settle()
            freezer = asyncio.get_running_loop().create_task(collector.keep_frozen(lambda: runtime.snapshot))
        try:
            yield
        finally:
            if freezer is not None:
                freezer.cancel()
            flusher.cancel()
            await runtime.reloader.stop()
            await runtime.upstream.close()
            await runtime.key_sets.stop()
            await runtime.close_database()
            await runtime.close_store()
            log.event("stopped", "gateway stopped", pid=os.getpid())
            log.stop_gathering()
            if owns_tracing:
                tracing.shutdown()

    app = GatewayApp(
        routes=[
            Route("/v1/chat/completions", chat.chat_completions, methods=["POST"]),
            Route("/v1/completions", completions.create_completion, methods=["POST"]),
            Route("/v1/messages", messages.create_message, methods=["POST"]),
            Route("/v1/messages/count_tokens", messages.count_tokens, methods=["POST"]),
            Route("/v1/embeddings", embeddings.embeddings, methods=["POST"]),
            Route("/v1/responses", responses.create_response, methods=["POST"]),
            Route("/v1/responses/compact", responses.compact_response, methods=["POST"]),
            Route("/v1/responses/{response_id}", responses.retrieve_response, methods=["GET"]),
            Route("/v1/responses/{response_id}", responses.delete_response, methods=["DELETE"]),
            Route("/v1/responses/{response_id}/input_items", responses.list_input_items, methods=["GET"]),
            Route("/v1/responses/{response_id}/cancel", responses.cancel_response, methods=["POST"]),
            Route("/v1/models", models.list_models, methods=["GET"]),
            Route("/v1/models/{alias:path}", models.get_model, methods=["GET"]),
            Route("/health", health.health, methods=["GET"]),
            Route("/ready", health.ready, methods=["GET"]),
            Route("/healthz", health.health, methods=["GET"]),
            Route("/livez", health.health, methods=["GET"]),
            Route("/readyz", health.ready, methods=["GET"]),
            Route("/metrics", health.prometheus, methods=["GET"]),
            Route("/admin/routes", ui.routes, methods=["GET"]),
            Route("/admin/traffic", ui.traffic, methods=["GET"]),
            Route("/ui", ui.page, methods=["GET"]),
            Route("/ui/{name}", ui.asset, methods=["GET"]),
            Route("/admin/reload", admin.reload_config, methods=["POST"]),
            Route("/admin/config", admin.show_config, methods=["GET"]),
            Route("/admin/usage", usage.usage, methods=["GET"]),
            Route("/admin/requests", ledger.list_requests, methods=["GET"]),
            Route("/v1/usage", caller_usage.caller_usage, methods=["GET"]),
            Route("/admin/tenants", tenants.create_tenant, methods=["POST"]),
            Route("/admin/tenants", tenants.list_tenants, methods=["GET"]),
            Route("/admin/tenants/{id}", tenants.get_tenant, methods=["GET"]),
            Route("/admin/tenants/{id}", tenants.update_tenant, methods=["PATCH"]),
            Route("/admin/tenants/{id}", tenants.delete_tenant, methods=["DELETE"]),
            Route("/admin/tenants/{id}/usage", tenants.tenant_usage, methods=["GET"]),
            Route("/admin/keys", keys.create_key, methods=["POST"]),
            Route("/admin/keys", keys.list_keys, methods=["GET"]),
            Route("/admin/keys/{id}", keys.get_key, methods=["GET"]),
            Route("/admin/keys/{id}", keys.update_key, methods=["PATCH"]),
            Route("/admin/keys/{id}", keys.revoke_key, methods=["DELETE"]),
            Route("/admin/keys/{id}/rotate", keys.rotate_key, methods=["POST"]),
            Route("/admin/audit", audit.list_audit, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.metrics_token = health.metrics_token()
    return app
