"""A real server speaking Ollama's native API (/api/chat NDJSON, /api/embed).

Like Ollama it streams unless `stream: false` is sent, wants images as bare base64,
tool-call arguments as objects and tool results named by `tool_name`; tool calls carry
no ids and end with done_reason "stop". A mid-stream failure is an `{"error"}` line.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.support.scripted import Script, script_for, words


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


@dataclass
class OllamaUpstream:
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/chat", self.chat, methods=["POST"]), Route("/api/embed", self.embed, methods=["POST"])])

    async def embed(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return _json({"model": body["model"], "embeddings": [[0.125, float(i)] for i in range(len(inputs))], "prompt_eval_count": 4})

    async def chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        model = body["model"]
        for message in body["messages"]:
            for image in message.get("images") or []:
                if image.startswith("data:"):
                    return _json({"error": "illegal base64 data at input byte 4"}, 400)
            for call in message.get("tool_calls") or []:
                if not isinstance(call["function"]["arguments"], dict):
                    return _json({"error": "json: cannot unmarshal string into Go struct field .arguments"}, 400)
        fault = _fault(model)
        if fault is not None:
            return fault
        script = _script(body)
        if body.get("stream", True):
            return StreamingResponse(_stream(model, script), media_type="application/x-ndjson")
        if model.startswith("missing"):
            return _json({"model": model, "done": True})
        return _json({**_final(model, script), "message": _message(script.text, script)})


def _fault(model: str) -> Response | None:
    if model.startswith("fail-429"):
        return _json({"error": "too many requests"}, 429)
    if model.startswith("fail-500"):
        return _json({"error": "llama runner process has terminated"}, 500)
    if model.startswith("overloaded"):
        return _json({"error": "server busy, please try again.  maximum pending requests exceeded"}, 503)
    if model.startswith("context"):
        return _json({"error": "the input length exceeds the context length"}, 400)
    if model.startswith("garbage"):
        return Response("<html>not json</html>", media_type="application/json")
    return None


def _script(body: dict[str, Any]) -> Script:
    last = body["messages"][-1]
    result = last["content"] if last["role"] == "tool" and last.get("tool_name") else None
    names = [t["function"]["name"] for t in body.get("tools") or []]
    return script_for("Ollama", body["model"], last["content"] if result is None else "", names, result)


def _message(text: str, script: Script | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if script is not None and script.calls:
        message["tool_calls"] = [{"function": {"name": name, "arguments": args}} for name, args in script.calls]
    return message


def _final(model: str, script: Script) -> dict[str, Any]:
    return {"model": model, "created_at": "2026-01-01T00:00:00Z", "done": True, "done_reason": "stop",
            "prompt_eval_count": 11, "eval_count": 7, "total_duration": 1000}


async def _stream(model: str, script: Script):
    for i, piece in enumerate(words(script.text)):
        if model.startswith("midstream") and i == 1:
            yield orjson.dumps({"error": "an error was encountered while running the model"}) + b"\n"
            return
        if model.startswith("cut") and i == 1:
            return
        yield orjson.dumps({"model": model, "message": _message(piece, None), "done": False}) + b"\n"
        await asyncio.sleep(0)
    if script.calls:
        yield orjson.dumps({"model": model, "message": _message("", script), "done": False}) + b"\n"
    yield orjson.dumps({**_final(model, script), "message": {"role": "assistant", "content": ""}}) + b"\n"
