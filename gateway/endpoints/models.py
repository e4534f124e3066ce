"""GET /v1/models and /v1/models/{alias}: the aliases this caller may use."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import identify, may_use
from gateway.endpoints.handler import Exchange, endpoint, json_response
from gateway.errors import ModelNotFound
from gateway.runtime import Runtime
from gateway.snapshot import Snapshot


def model_card(snapshot: Snapshot, alias: str) -> dict[str, Any]:
    return {"id": alias, "object": "model", "created": int(snapshot.loaded_at), "owned_by": "gateway"}


@endpoint("models")
async def list_models(request: Request, exchange: Exchange) -> Response:
    snapshot = request.app.state.runtime.snapshot
    key = identify(snapshot, request.headers)
    data = [model_card(snapshot, alias) for alias in snapshot.routes if may_use(key, alias)]
    return json_response({"object": "list", "data": data})


@endpoint("models")
async def get_model(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = identify(snapshot, request.headers)
    alias = request.path_params["alias"]
    if alias not in snapshot.routes or not may_use(key, alias):
        raise ModelNotFound(f"the model '{alias}' does not exist", param="model")
    return json_response(model_card(snapshot, alias))
