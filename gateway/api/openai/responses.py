"""POST /v1/responses and the stored responses: OpenAI's Responses API on the same routes.

A Responses body is read into the pipeline's request (`response_input`), completed by the
same pipeline as chat (routes, keys, limits, budgets, cache, fallbacks, circuits), and
the answer written back as a Response object (`response_object`) or its event stream
(`response_stream`). With `store` (the API's default) the response and the conversation
it ends are kept for its key: `previous_response_id` continues from them, and
GET/DELETE /v1/responses/{id} and GET /v1/responses/{id}/input_items read them. Another
key's id is a 404, exactly like an id that never existed. POST /v1/responses/compact folds
a conversation into a summary item (see `compaction`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.api.body import read_json
from gateway.api.endpoint import Exchange, JSONAnswer, endpoint, json_response
from gateway.api.openai import compaction
from gateway.api.openai.response_input import (
    ResponsesCall,
    check_body,
    input_items,
    item_id,
    read_responses,
    speaks_responses,
)
from gateway.api.openai.response_object import from_chat, from_native, usage_of
from gateway.api.openai.response_stream import ResponseEvents, responses_sse
from gateway.api.openai.stream import HEADERS as SSE_HEADERS
from gateway.config.snapshot import RESPONSES_API, Key
from gateway.errors import BadRequest, NotFound
from gateway.ids import ordered_id
from gateway.pipeline.complete import Completion, complete
from gateway.pipeline.identify import identify
from gateway.pipeline.plan import MAX_TIER_HEADER
from gateway.pipeline.request import USER_HEADER, ModelRequest, chat_request
from gateway.pipeline.runtime import Runtime

MAX_LIST = 100


def owner_of(key: Key | None) -> str:
    """Whose stored responses a caller reads and writes: its key's, or everyone's on an open gateway."""
    return "open" if key is None else "key:" + key.name


async def _stored(runtime: Runtime, owner: str, response_id: str, param: str | None = None) -> dict[str, Any]:
    raw = await runtime.responses.get(owner, response_id)
    if raw is None:
        raise NotFound(f"no response with id '{response_id}' was found", param=param)
    return orjson.loads(raw)


@endpoint("responses")
async def create_response(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = await identify(snapshot, request.headers, runtime.key_sets)
    body = await read_json(request, snapshot.max_body_bytes)
    owner = owner_of(key)
    context = await _conversation(runtime, owner, body)
    if compaction.triggered(body) and not speaks_responses(snapshot, str(body.get("model"))):
        return await _compacted_response(request, exchange, key, owner, body, context)
    call = read_responses(snapshot, body, request.headers, context)
    done = await complete(runtime, snapshot, key, call.request, exchange)
    response_id = ordered_id("resp")
    if done.outcome.stream is not None:
        writer = ResponseEvents(call, response_id)
        events = _stored_after(runtime, owner, call, writer, responses_sse(done.outcome.stream, writer))
        return StreamingResponse(events, media_type="text/event-stream", headers={**done.headers, **SSE_HEADERS})
    body = orjson.dumps(_answer(call, response_id, done))
    if call.store:
        await _keep(runtime, owner, call, response_id, body)
    return JSONAnswer(body, headers=done.headers)


async def _conversation(runtime: Runtime, owner: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored conversation `previous_response_id` continues: the input and output of
    that response (whose own input holds everything before it). Empty without one."""
    previous = body.get("previous_response_id")
    if previous is None:
        return []
    if not isinstance(previous, str) or not previous:
        raise BadRequest("'previous_response_id' must be a string", param="previous_response_id")
    record = await _stored(runtime, owner, previous, "previous_response_id")
    return record["input"] + record["response"]["output"]


@endpoint("responses")
async def compact_response(request: Request, exchange: Exchange) -> Response:
    """A conversation (its `input`, after the one `previous_response_id` names) folded into
    its user messages and one `compaction` item, summarised by the route's model."""
    runtime: Runtime = request.app.state.runtime
    snapshot = runtime.snapshot
    key = await identify(snapshot, request.headers, runtime.key_sets)
    body = await read_json(request, snapshot.max_body_bytes)
    alias = _compact_alias(body)
    items = await _conversation(runtime, owner_of(key), body)
    if body.get("input") is not None:
        items = items + input_items(body["input"])
    summary = await _summarise(request, exchange, key, alias, body.get("instructions"), items)
    output = [*compaction.kept_items(items), summary.item]
    return json_response({
        "id": item_id("resp"), "object": "response.compaction", "created_at": int(time.time()),
        "output": output, "usage": summary.usage,
    }, headers=summary.headers)


@dataclass(frozen=True, slots=True)
class _Summary:
    """What the route's model wrote when asked to compact, as the answers carry it."""

    item: dict[str, Any]  # the compaction item
    usage: dict[str, Any]  # in the Responses API's terms
    headers: dict[str, str]  # the gateway's response headers (route, target, cost, limits)
    request: ModelRequest  # the summary's own request, for the envelope of a Response


async def _summarise(request: Request, exchange: Exchange, key: Key | None, alias: str, instructions: Any,
                     items: list[dict[str, Any]]) -> _Summary:
    """Ask the route's model, through the whole pipeline, for the summary of `items`."""
    runtime: Runtime = request.app.state.runtime
    headers = request.headers
    chat = compaction.chat_body(alias, instructions if isinstance(instructions, str) else None, items)
    model_request = chat_request(RESPONSES_API, chat, max_tier=headers.get(MAX_TIER_HEADER),
                                 cache_control=headers.get("cache-control"), user=headers.get(USER_HEADER))
    done = await complete(runtime, runtime.snapshot, key, model_request, exchange)
    answer = done.outcome.answer
    assert answer is not None  # the request did not ask for a stream
    choices = answer.body.get("choices") or [{}]
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    summary = message.get("content") if isinstance(message, dict) else None
    usage = usage_of(answer.body.get("usage"), (model_request.prompt_tokens, 0))
    return _Summary(compaction.compaction_item(item_id("cmp"), str(summary or "")), usage, done.headers,
                    model_request)


async def _compacted_response(request: Request, exchange: Exchange, key: Key | None, owner: str,
                              body: dict[str, Any], context: list[dict[str, Any]]) -> Response:
    """A /v1/responses call whose input ends with a `compaction_trigger`, on a route with no
    target that takes it as written: a Response whose one output item is the compaction
    (plain, or as a stream of whole items). Stored, its conversation is what the compaction
    keeps, so `previous_response_id` continues from the compacted state."""
    alias = check_body(body)
    items = context + input_items(body["input"][:-1])
    summary = await _summarise(request, exchange, key, alias, body.get("instructions"), items)
    call = ResponsesCall(body, alias, compaction.kept_items(items), body.get("store") is not False, summary.request)
    writer = ResponseEvents(call, ordered_id("resp"))
    frames = writer.whole([summary.item], summary.usage)
    final = writer.final
    assert final is not None
    if call.store:
        await _keep(request.app.state.runtime, owner, call, final["id"], orjson.dumps(final))
    if body.get("stream"):
        return StreamingResponse(_replay(frames, exchange), media_type="text/event-stream",
                                 headers={**summary.headers, **SSE_HEADERS})
    return JSONAnswer(orjson.dumps(final), headers=summary.headers)


async def _replay(frames: list[bytes], exchange: Exchange) -> AsyncIterator[bytes]:
    """Events already made, sent as a stream; the request's log line says it ended whole."""
    for chunk in frames:
        yield chunk
    exchange.stream_end = "done"


def _compact_alias(body: dict[str, Any]) -> str:
    """The route (`model`, required), with the other fields checked as /v1/responses checks them."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a string naming a route", param="model")
    for name in ("instructions", "previous_response_id", "prompt_cache_key"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise BadRequest(f"'{name}' must be a string", param=name, code="invalid_type")
    if body.get("input") is None and body.get("previous_response_id") is None:
        raise BadRequest("'input' is required: a string or a list of input items", param="input")
    return model


def _answer(call: ResponsesCall, response_id: str, done: Completion) -> dict[str, Any]:
    answer = done.outcome.answer
    assert answer is not None
    if answer.raw is not None and answer.wire == RESPONSES_API:
        return from_native(call, response_id, orjson.loads(answer.raw))
    return from_chat(call, response_id, answer.body)


async def _keep(runtime: Runtime, owner: str, call: ResponsesCall, response_id: str, response: bytes) -> None:
    """Store the response (already serialised for the client) with the input it answered."""
    record = b'{"response":' + response + b',"input":' + orjson.dumps(call.input) + b"}"
    await runtime.responses.put(owner, response_id, record)


async def _stored_after(
    runtime: Runtime, owner: str, call: ResponsesCall, writer: ResponseEvents, events: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """The stream's bytes; its final response is stored (when asked) before the event that
    ends the stream goes out, so a client that continues from it at once finds it."""
    kept = False
    try:
        async for chunk in events:
            final = writer.final
            if final is not None and not kept:
                kept = True
                if call.store and final.get("status") in ("completed", "incomplete"):
                    await _keep(runtime, owner, call, final["id"], orjson.dumps(final))
            yield chunk
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


@endpoint("responses")
async def retrieve_response(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    key = await identify(runtime.snapshot, request.headers, runtime.key_sets)
    record = await _stored(runtime, owner_of(key), request.path_params["response_id"])
    return json_response(record["response"])


@endpoint("responses")
async def delete_response(request: Request, exchange: Exchange) -> Response:
    runtime: Runtime = request.app.state.runtime
    key = await identify(runtime.snapshot, request.headers, runtime.key_sets)
    response_id = request.path_params["response_id"]
    if not await runtime.responses.delete(owner_of(key), response_id):
        raise NotFound(f"no response with id '{response_id}' was found")
    return json_response({"id": response_id, "object": "response.deleted", "deleted": True})


@endpoint("responses")
async def cancel_response(request: Request, exchange: Exchange) -> Response:
    """Only a background response can be cancelled, and the gateway makes none (`background`
    is refused): a stored response of the caller's is the API's 400, anything else a 404."""
    runtime: Runtime = request.app.state.runtime
    key = await identify(runtime.snapshot, request.headers, runtime.key_sets)
    response_id = request.path_params["response_id"]
    await _stored(runtime, owner_of(key), response_id)
    raise BadRequest(f"response '{response_id}' was not created with background=true: only background responses "
                     "can be cancelled", param="response_id")


@endpoint("responses")
async def list_input_items(request: Request, exchange: Exchange) -> Response:
    """The input items the response was made from, the stored conversation included;
    `order` (desc by default, as the API), `limit` (1 to 100, default 20) and `after`."""
    runtime: Runtime = request.app.state.runtime
    key = await identify(runtime.snapshot, request.headers, runtime.key_sets)
    record = await _stored(runtime, owner_of(key), request.path_params["response_id"])
    query = request.query_params
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest("'order' must be asc or desc", param="order")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise BadRequest("'limit' must be an integer", param="limit") from None
    if not 1 <= limit <= MAX_LIST:
        raise BadRequest(f"'limit' must be between 1 and {MAX_LIST}", param="limit")
    items: list[dict[str, Any]] = record["input"] if order == "asc" else record["input"][::-1]
    after = query.get("after")
    if after:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise BadRequest(f"no input item with id '{after}' in this response", param="after")
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return json_response({
        "object": "list", "data": page, "has_more": len(items) > limit,
        "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None,
    })
