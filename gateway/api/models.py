"""GET /v1/models and /v1/models/{alias}: the aliases this caller may use.

Answered in OpenAI's shape, or in Anthropic's when the client sends `anthropic-version`
(every Anthropic SDK does), so both SDKs' `models.list()` and `models.retrieve()` work
against the same gateway: Anthropic's list is paged (`limit`, `after_id`, `before_id`),
and errors come in the shape of the API that asked.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.anthropic.shape import error_body as anthropic_error_body
from gateway.api.endpoint import (
    ErrorBody,
    Exchange,
    endpoint,
    json_response,
    openai_error_body,
)
from gateway.config.snapshot import Snapshot
from gateway.errors import BadRequest, ModelNotFound
from gateway.pipeline.identify import identify, may_use
from gateway.pipeline.runtime import Runtime

ANTHROPIC_HEADER = "anthropic-version"
ANTHROPIC_PAGE = (20, 1000)  # Anthropic's default and largest `limit`


def model_card(snapshot: Snapshot, alias: str) -> dict[str, Any]:
    return {"id": alias, "object": "model", "created": int(snapshot.loaded_at), "owned_by": "gateway"}


def anthropic_card(snapshot: Snapshot, alias: str) -> dict[str, Any]:
    """Anthropic's ModelInfo; `created_at` is when the config that serves the alias loaded."""
    created = datetime.fromtimestamp(int(snapshot.loaded_at), timezone.utc).isoformat().replace("+00:00", "Z")
    return {"type": "model", "id": alias, "display_name": alias, "created_at": created}


def speaks_anthropic(headers: Headers) -> bool:
    return ANTHROPIC_HEADER in headers


def error_shape(request: Request) -> ErrorBody:
    return anthropic_error_body if speaks_anthropic(request.headers) else openai_error_body


@endpoint("models", error_shape=error_shape)
async def list_models(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = await identify(snapshot, request.headers, runtime.key_sets)
    aliases = [alias for alias in snapshot.routes if may_use(key, alias)]
    if speaks_anthropic(request.headers):
        page, more = anthropic_page(aliases, request.query_params)
        return json_response({
            "data": [anthropic_card(snapshot, alias) for alias in page], "has_more": more,
            "first_id": page[0] if page else None, "last_id": page[-1] if page else None,
        })
    return json_response({"object": "list", "data": [model_card(snapshot, alias) for alias in aliases]})


def anthropic_page(aliases: list[str], query: Any) -> tuple[list[str], bool]:
    """One page of Anthropic's list: `limit` (1 to 1000, default 20) aliases after `after_id`
    or before `before_id`, and whether more lie beyond it in that direction."""
    default, most = ANTHROPIC_PAGE
    try:
        limit = int(query.get("limit", default))
    except ValueError:
        raise BadRequest("'limit' must be an integer", param="limit") from None
    if not 1 <= limit <= most:
        raise BadRequest(f"'limit' must be between 1 and {most}", param="limit")
    after, before = query.get("after_id"), query.get("before_id")
    for name, given in (("after_id", after), ("before_id", before)):
        if given is not None and given not in aliases:
            raise BadRequest(f"'{name}' names no model in this list", param=name)
    if before is not None:
        earlier = aliases[:aliases.index(before)]
        return earlier[-limit:], len(earlier) > limit
    rest = aliases[aliases.index(after) + 1:] if after is not None else aliases
    return rest[:limit], len(rest) > limit


@endpoint("models", error_shape=error_shape)
async def get_model(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = await identify(snapshot, request.headers, runtime.key_sets)
    alias = request.path_params["alias"]
    if alias not in snapshot.routes or not may_use(key, alias):
        raise ModelNotFound(f"the model '{alias}' does not exist", param="model")
    card = anthropic_card if speaks_anthropic(request.headers) else model_card
    return json_response(card(snapshot, alias))
