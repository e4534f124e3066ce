"""Liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.endpoint import json_response
from gateway.observe import metrics


async def health(request: Request) -> Response:
    return json_response({"status": "ok"})


async def ready(request: Request) -> Response:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None or runtime.snapshot is None:
        return json_response({"status": "not ready", "config": None}, status=503)
    store = {"kind": runtime.store.kind, "up": await runtime.store.ping()}
    if not store["up"]:
        return json_response({"status": "not ready", "config": runtime.snapshot.version, "store": store}, status=503)
    body = {"status": "ready", "config": runtime.snapshot.version, "store": store}
    if runtime.database is not None:
        # Reported, not required: requests are served while it is down (ledger rows wait in
        # the queue), so a database outage must not take every replica out of the balancer.
        await runtime.database.ping()
        body["database"] = runtime.database.status()
    return json_response(body)


async def prometheus(request: Request) -> Response:
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
