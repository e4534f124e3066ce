"""An Anthropic-shaped server that honours structured output, for response_format tests.

It records every body it receives and answers the way Anthropic does:
- `output_config.format` (`json_schema`): the text block is a JSON instance of the schema;
- a forced single tool (`tool_choice: {type: tool, name}`): one `tool_use` block whose
  input is an instance of that tool's `input_schema`, `stop_reason: tool_use`;
- anything else: a plain text answer.
Streams send the same as Anthropic's named events (text in `text_delta` pieces, tool
input in `input_json_delta` pieces). A model named `nonconforming*` answers JSON that
matches no schema (`{"unexpected": true}`), for output-validation tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

NONCONFORMING = {"unexpected": True}


def instance_of(schema: Any, root: Any = None) -> Any:
    """A small value that conforms to `schema` (the subset pydantic and clients write)."""
    root = root if root is not None else schema
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        return instance_of(node, root)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return instance_of(schema[key][0], root)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object":
        return {name: instance_of(sub, root) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [instance_of(schema.get("items") or {}, root)]
    return {"string": "text", "integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@dataclass
class StructuredUpstream:
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"])])

    async def messages(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        model = body["model"]
        bad = model.startswith("nonconforming")
        fmt = (body.get("output_config") or {}).get("format")
        choice = body.get("tool_choice") or {}
        tool = None
        if choice.get("type") == "tool":
            tool = next(t for t in body["tools"] if t["name"] == choice["name"])
        if tool is not None:
            value = NONCONFORMING if bad else instance_of(tool["input_schema"])
            block = {"type": "tool_use", "id": "toolu_1", "name": tool["name"], "input": value}
            stop = "tool_use"
        else:
            if fmt is not None:
                text = orjson.dumps(NONCONFORMING if bad else instance_of(fmt["schema"])).decode()
            else:
                text = f"Structured {model}: plain"
            block = {"type": "text", "text": text}
            stop = "end_turn"
        if body.get("stream"):
            return StreamingResponse(_stream(model, block, stop), media_type="text/event-stream")
        return Response(orjson.dumps({
            "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [block],
            "stop_reason": stop, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5},
        }), media_type="application/json")


async def _stream(model: str, block: dict[str, Any], stop: str):
    yield _event("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 1}}})
    if block["type"] == "tool_use":
        text = orjson.dumps(block["input"]).decode()
        start = {**block, "input": {}}
        pieces = [{"type": "input_json_delta", "partial_json": part} for part in (text[: len(text) // 2], text[len(text) // 2:])]
    else:
        text = block["text"]
        start = {"type": "text", "text": ""}
        pieces = [{"type": "text_delta", "text": part} for part in (text[: len(text) // 2], text[len(text) // 2:])]
    yield _event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start})
    for delta in pieces:
        yield _event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
    yield _event("content_block_stop", {"type": "content_block_stop", "index": 0})
    yield _event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                   "usage": {"output_tokens": 5}})
    yield _event("message_stop", {"type": "message_stop"})
