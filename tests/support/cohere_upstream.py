"""A real server speaking Cohere's v2 API (/v2/chat with named SSE events, /v2/embed).

Like Cohere it refuses a `developer` role, OpenAI-only fields (`top_p`, `stop`), and
a lower-case tool_choice. Text comes back as a list of parts, a stream opens with
message-start, carries tool-call-start/delta/end, and closes with message-end (no [DONE]).
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


def _error(status: int, message: str) -> Response:
    return _json({"id": "err-1", "message": message}, status)


@dataclass
class CohereUpstream:
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v2/chat", self.chat, methods=["POST"]), Route("/v2/embed", self.embed, methods=["POST"])])

    async def embed(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        vectors = [[0.75, float(i)] for i in range(len(body["texts"]))]
        return _json({"id": "e1", "embeddings": {"float": vectors}, "texts": body["texts"], "meta": {"billed_units": {"input_tokens": 5}}})

    async def chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return _error(401, "no api key supplied")
        for bad in ("top_p", "stop", "max_completion_tokens", "stream_options"):
            if bad in body:
                return _error(400, f"invalid request: unknown field {bad}")
        if any(m["role"] not in ("system", "user", "assistant", "tool") for m in body["messages"]):
            return _error(400, "invalid request: invalid role")
        if body.get("tool_choice") not in (None, "REQUIRED", "NONE"):
            return _error(400, "invalid request: tool_choice must be REQUIRED or NONE")
        model = body["model"]
        fault = _fault(model)
        if fault is not None:
            return fault
        script = _script(body)
        if body.get("stream"):
            return StreamingResponse(_stream(model, script), media_type="text/event-stream")
        if model.startswith("missing"):
            return _json({"id": "c1", "finish_reason": "COMPLETE"})
        message: dict[str, Any] = {"role": "assistant", "content": [{"type": "text", "text": script.text}]}
        if script.calls:
            message["tool_plan"] = script.text
            message["content"] = []
            message["tool_calls"] = _calls(script)
        return _json({"id": "c1", "finish_reason": "TOOL_CALL" if script.calls else "COMPLETE", "message": message,
                      "usage": {"billed_units": {"input_tokens": 11, "output_tokens": 7}, "tokens": {"input_tokens": 11, "output_tokens": 7}}})


def _fault(model: str) -> Response | None:
    if model.startswith("fail-429"):
        return _error(429, "You are using a Trial key, which is limited to 10 API calls / minute.")
    if model.startswith("fail-500"):
        return _error(500, "internal server error, this has been reported to our developers")
    if model.startswith("overloaded"):
        return _error(503, "service unavailable")
    if model.startswith("context"):
        return _error(400, "too many tokens: total number of tokens in the prompt cannot exceed 128000 - received 200000")
    if model.startswith("garbage"):
        return Response("<html>not json</html>", media_type="application/json")
    return None


def _script(body: dict[str, Any]) -> Script:
    last = body["messages"][-1]
    content = last.get("content")
    if last["role"] == "tool":
        return script_for("Cohere", body["model"], "", [], content if isinstance(content, str) else str(content))
    question = content if isinstance(content, str) else "".join(p.get("text", "") for p in content if p["type"] == "text")
    return script_for("Cohere", body["model"], question, [t["function"]["name"] for t in body.get("tools") or []], None)


def _calls(script: Script) -> list[dict[str, Any]]:
    return [{"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": orjson.dumps(a).decode()}}
            for i, (n, a) in enumerate(script.calls)]


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


async def _stream(model: str, script: Script):
    yield _event("message-start", {"id": "c1", "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": []}}})
    if script.calls:
        yield _event("tool-plan-delta", {"delta": {"message": {"tool_plan": script.text}}})
        for i, call in enumerate(_calls(script)):
            arguments = call["function"]["arguments"]
            start = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
            yield _event("tool-call-start", {"index": i, "delta": {"message": {"tool_calls": start}}})
            for part in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2:]):
                yield _event("tool-call-delta", {"index": i, "delta": {"message": {"tool_calls": {"function": {"arguments": part}}}}})
            yield _event("tool-call-end", {"index": i})
    else:
        yield _event("content-start", {"index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}})
        for i, piece in enumerate(words(script.text)):
            if (model.startswith("midstream") or model.startswith("cut")) and i == 1:
                return  # Cohere has no error event: a failing stream just stops
            yield _event("content-delta", {"index": 0, "delta": {"message": {"content": {"text": piece}}}})
            await asyncio.sleep(0)
        yield _event("content-end", {"index": 0})
    usage = {"billed_units": {"input_tokens": 11, "output_tokens": 7}, "tokens": {"input_tokens": 11, "output_tokens": 7}}
    yield _event("message-end", {"delta": {"finish_reason": "TOOL_CALL" if script.calls else "COMPLETE", "usage": usage}})
