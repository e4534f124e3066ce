"""Liveness, readiness and the Prometheus exposition.

`/healthz`, `/livez` and `/readyz` answer as `/health`, `/health` and `/ready` do, for
probes and load balancers that expect those names. Each answer echoes the caller's
`x-request-id` (or a new one), like every other endpoint.
"""

from __future__ import annotations

import hmac
import os

from starlette.requests import Request
from starlette.responses import Response

from gateway import __version__
from gateway.api.endpoint import error_response, json_response, request_id
from gateway.errors import Unauthorized
from gateway.observe import metrics


def _answer(request: Request, body: dict[str, object], status: int = 200) -> Response:
    return json_response(body, status, headers={"x-request-id": request_id(request)})


async def health(request: Request) -> Response:
    return _answer(request, {"status": "ok", "version": __version__})


async def ready(request: Request) -> Response:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None or runtime.snapshot is None:
        return _answer(request, {"status": "not ready", "config": None}, status=503)
    store = {"kind": runtime.store.kind, "up": await runtime.store.ping()}
    if not store["up"]:
        return _answer(request, {"status": "not ready", "config": runtime.snapshot.version, "store": store}, status=503)
    body = {"status": "ready", "config": runtime.snapshot.version, "store": store}
    if runtime.database is not None:
        # Reported, not required: requests are served while it is down (ledger rows wait in
        # the queue), so a database outage must not take every replica out of the balancer.
        await runtime.database.ping()
        body["database"] = runtime.database.status()
    return _answer(request, body)


METRICS_TOKEN_ENV = "GATEWAY_METRICS_TOKEN"


def metrics_token() -> bytes | None:
    """The bearer token /metrics asks for (GATEWAY_METRICS_TOKEN), read once at start-up."""
    token = os.environ.get(METRICS_TOKEN_ENV, "")
    return token.encode() if token else None


def _may_scrape(request: Request) -> bool:
    expected: bytes | None = getattr(request.app.state, "metrics_token", None)
    if expected is None:
        return True
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected)


async def prometheus(request: Request) -> Response:
    if not _may_scrape(request):
        error = Unauthorized("/metrics needs 'Authorization: Bearer <GATEWAY_METRICS_TOKEN>'", code="invalid_metrics_token")
        return error_response(error, request_id(request))
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type, headers={"x-request-id": request_id(request)})
