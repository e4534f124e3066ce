"""A real server speaking the Gemini API (generateContent, streamGenerateContent with
alt=sse, batchEmbedContents), answering with the shared script.

Like Gemini it refuses a missing `x-goog-api-key`, a `system` or `assistant` role in
`contents`, turns that do not alternate, and a functionResponse without a name.
Function calls carry no ids; the stream has no [DONE] and separates events with CRLF.
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


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, headers=headers, media_type="application/json")


def _error(status: int, code: str, message: str, details: list[Any] | None = None) -> Response:
    return _json({"error": {"code": status, "message": message, "status": code, "details": details or []}}, status)


@dataclass
class GeminiUpstream:
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1beta/models/{call:path}", self.call, methods=["POST"])])

    async def call(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        self.paths.append(request.url.path + ("?" + request.url.query if request.url.query else ""))
        if not request.headers.get("x-goog-api-key"):
            return _error(401, "UNAUTHENTICATED", "API key not valid")
        model, _, method = request.path_params["call"].partition(":")
        if method == "batchEmbedContents":
            return _json({"embeddings": [{"values": [0.25, float(i)]} for i, _ in enumerate(body["requests"])]})
        problem = _check(body)
        if problem:
            return _error(400, "INVALID_ARGUMENT", problem)
        fault = _fault(model)
        if fault is not None:
            return fault
        script = _script(body, model)
        if method == "streamGenerateContent":
            if request.query_params.get("alt") != "sse":
                return _error(400, "INVALID_ARGUMENT", "this fake only streams with alt=sse")
            return StreamingResponse(_stream(model, script), media_type="text/event-stream")
        if model.startswith("missing"):
            return _json({"modelVersion": model})
        return _json(_response(script, [{"text": script.text}] + _calls(script), final=True))


def _check(body: dict[str, Any]) -> str | None:
    roles = [c["role"] for c in body["contents"]]
    if any(r not in ("user", "model") for r in roles):
        return "Please use a valid role: user, model."
    if any(a == b for a, b in zip(roles, roles[1:])):
        return "Please ensure that multiturn requests alternate between user and model."
    for content in body["contents"]:
        for part in content["parts"]:
            if "functionResponse" in part and not part["functionResponse"].get("name"):
                return "functionResponse.name is required"
    return None


def _fault(model: str) -> Response | None:
    if model.startswith("fail-429"):
        retry = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0s"}]
        return _error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", retry)
    if model.startswith("fail-500"):
        return _error(500, "INTERNAL", "An internal error has occurred.")
    if model.startswith("overloaded"):
        return _error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
    if model.startswith("context"):
        return _error(400, "INVALID_ARGUMENT", "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).")
    if model.startswith("garbage"):
        return Response("<html>not json</html>", media_type="application/json")
    return None


def _script(body: dict[str, Any], model: str) -> Script:
    question, result = "", None
    for part in body["contents"][-1]["parts"]:
        if "text" in part:
            question = part["text"]
        elif "functionResponse" in part:
            result = part["functionResponse"]["response"]["output"]
    names = [d["name"] for t in body.get("tools") or [] for d in t["functionDeclarations"]]
    return script_for("Gemini", model, question, names, result)


def _calls(script: Script) -> list[dict[str, Any]]:
    return [{"functionCall": {"name": name, "args": args}} for name, args in script.calls]


def _response(script: Script, parts: list[dict[str, Any]], final: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if final:
        candidate["finishReason"] = "STOP"  # Gemini says STOP for tool calls too
    usage = {"promptTokenCount": 11, "candidatesTokenCount": 7 if final else 1, "totalTokenCount": 18 if final else 12}
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-test"}


async def _stream(model: str, script: Script):
    pieces = words(script.text)
    for i, piece in enumerate(pieces):
        if model.startswith("midstream") and i == 1:
            yield b"data: " + orjson.dumps({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}) + b"\r\n\r\n"
            return
        if model.startswith("cut") and i == 1:
            return
        last = i == len(pieces) - 1
        parts = [{"text": piece}] + (_calls(script) if last else [])
        yield b"data: " + orjson.dumps(_response(script, parts, final=last)) + b"\r\n\r\n"
        await asyncio.sleep(0)
