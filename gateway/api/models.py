"""GET /v1/models and /v1/models/{alias}: the aliases this caller may use.

Answered in OpenAI's shape, or in Anthropic's when the client sends `anthropic-version`
(every Anthropic SDK does), so both SDKs' `models.list()` and `models.retrieve()` work
against the same gateway.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.endpoint import Exchange, endpoint, json_response
from gateway.config.snapshot import Snapshot
from gateway.errors import ModelNotFound
from gateway.pipeline.identify import identify, may_use
from gateway.pipeline.runtime import Runtime

ANTHROPIC_HEADER = "anthropic-version"


def model_card(snapshot: Snapshot, alias: str) -> dict[str, Any]:
    return {"id": alias, "object": "model", "created": int(snapshot.loaded_at), "owned_by": "gateway"}


def anthropic_card(snapshot: Snapshot, alias: str) -> dict[str, Any]:
    """Anthropic's ModelInfo; `created_at` is when the config that serves the alias loaded."""
    created = datetime.fromtimestamp(int(snapshot.loaded_at), timezone.utc).isoformat().replace("+00:00", "Z")
    return {"type": "model", "id": alias, "display_name": alias, "created_at": created}


def speaks_anthropic(headers: Headers) -> bool:
    return ANTHROPIC_HEADER in headers


@endpoint("models")
async def list_models(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = await identify(snapshot, request.headers, runtime.key_sets)
    aliases = [alias for alias in snapshot.routes if may_use(key, alias)]
    if speaks_anthropic(request.headers):
        data = [anthropic_card(snapshot, alias) for alias in aliases]
        return json_response({
            "data": data, "has_more": False,
            "first_id": aliases[0] if aliases else None, "last_id": aliases[-1] if aliases else None,
        })
    return json_response({"object": "list", "data": [model_card(snapshot, alias) for alias in aliases]})


@endpoint("models")
async def get_model(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = await identify(snapshot, request.headers, runtime.key_sets)
    alias = request.path_params["alias"]
    if alias not in snapshot.routes or not may_use(key, alias):
        raise ModelNotFound(f"the model '{alias}' does not exist", param="model")
    card = anthropic_card if speaks_anthropic(request.headers) else model_card
    return json_response(card(snapshot, alias))
