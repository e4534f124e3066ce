"""A real OpenAI-compatible server for tests, with faults chosen by the model name.

The gateway replaces `model` with the target's upstream name, so a providers.yaml
model called `fail-500` makes this server fail for exactly the targets that name it:

  fail-500*  500 with an OpenAI error body      fail-429*  429 with Retry-After
  fail-503*  503 plain text                      hang*      never answers (read timeout)
  garbage*   200 with a body that is not JSON   context*   400 context_length_exceeded
  bad-request*  400 invalid_request_error       echo-key*  401 quoting the key it was sent
  cut*       a stream that breaks after 3 chunks   anything else: a normal answer
  tool-call* calls the request's first tool with {"query": <last user text>} (its
             arguments streamed in two pieces); after a tool result, answers with it
  overload*  529 with Anthropic's overloaded_error   refuse*   400 content_filter
  stall*     a stream that sends 3 chunks, then nothing (a plain request hangs)
  think*     reasons first (`reasoning_content`: "Thinking about <last user text>"), as
             DeepSeek and vLLM do, then answers normally
  slow-MS*   answers after MS milliseconds (slow-80: 80 ms); streams wait 0.3 s between chunks
  flaky-N-STATUS[-raSECONDS]*   the first N calls with this exact model name fail with
             STATUS (500, 503, 429 or 529; -ra adds Retry-After), later calls answer

A hang ends as soon as the caller disconnects, so a test's teardown never waits on it.
Every request is recorded with its arrival time (`Seen.at`, monotonic seconds).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class OpenAIUpstream:
    requests: list[Seen] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)  # by model name, for flaky-N faults
    closed: list[str] = field(default_factory=list)  # models of hanging calls whose caller hung up

    def models_called(self) -> list[str]:
        return [r.body.get("model") for r in self.requests]

    def answer_id(self) -> str:
        """A new id per call, so a test can tell which call wrote an answer it was served."""
        return f"chatcmpl-upstream-{len(self.requests)}"

    def times_called(self, model: str) -> list[float]:
        return [r.at for r in self.requests if r.body.get("model") == model]

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
        ])

    async def _record(self, request: Request) -> dict[str, Any]:
        body = orjson.loads(await request.body())
        self.requests.append(Seen(request.url.path, dict(request.headers), body))
        model = str(body.get("model"))
        self.calls[model] = self.calls.get(model, 0) + 1
        return body

    def flaky(self, model: str) -> Response | None:
        """`flaky-N-STATUS[-raSECONDS]`: fail the first N calls, then answer."""
        if not model.startswith("flaky-"):
            return None
        parts = model.split("-")
        failures, status = int(parts[1]), int(parts[2])
        if self.calls.get(model, 0) > failures:
            return None
        headers = {}
        if len(parts) > 3 and parts[3].startswith("ra"):
            headers["retry-after"] = parts[3][2:]
        if status == 429:
            return error(429, "slow down", "rate_limit_error", "rate_limit_exceeded", headers)
        if status == 529:
            return overloaded(headers)
        return error(status, f"flaky failure {self.calls[model]} of {failures}", "server_error", None, headers)

    async def chat(self, request: Request) -> Response:
        body = await self._record(request)
        model = body["model"]
        fault = fault_response(model, request) or self.flaky(model)
        if fault is not None:
            return fault
        if model.startswith("hang") or (model.startswith("stall") and not body.get("stream")):
            await hang(request)
            if await request.is_disconnected():
                self.closed.append(model)
        if model.startswith("slow-"):
            await asyncio.sleep(int(model.split("-")[1]) / 1000)
        text = f"Upstream {model}: {last_user_text(body)}"
        if model.startswith("tool-call"):
            return tool_call_answer(model, body)
        if body.get("stream"):
            return StreamingResponse(stream(model, text, body, request, self.answer_id()),
                                     media_type="text/event-stream", headers=RATE_LIMITS)
        message = {"role": "assistant", "content": text}
        if model.startswith("think"):
            message["reasoning_content"] = thought(body)
        return json({
            "id": self.answer_id(), "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }, headers={**RATE_LIMITS, "set-cookie": f"upstream_session={len(self.requests)}; Path=/"})  # a gateway must not keep the cookie

    async def completions(self, request: Request) -> Response:
        """The legacy text completions: `Upstream <model>: <prompt>[<suffix>]`, plain or streamed."""
        body = await self._record(request)
        model = body["model"]
        fault = fault_response(model, request)
        if fault is not None:
            return fault
        prompt = body["prompt"] if isinstance(body["prompt"], str) else " | ".join(map(str, body["prompt"]))
        text = f"Upstream {model}: {prompt}{body.get('suffix') or ''}"
        base = {"id": "cmpl-upstream", "object": "text_completion", "created": int(time.time()), "model": model}
        usage = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
        if not body.get("stream"):
            choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}
            return json({**base, "choices": [choice], "usage": usage}, headers=RATE_LIMITS)
        frames = [frame({**base, "choices": [{"text": w if i == 0 else " " + w, "index": 0, "logprobs": None, "finish_reason": None}]})
                  for i, w in enumerate(text.split(" "))]
        frames.append(frame({**base, "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            frames.append(frame({**base, "choices": [], "usage": usage}))
        frames.append(b"data: [DONE]\n\n")
        return StreamingResponse(iter(frames), media_type="text/event-stream")

    async def embeddings(self, request: Request) -> Response:
        body = await self._record(request)
        fault = fault_response(body["model"], request)
        if fault is not None:
            return fault
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": [0.5, float(i)]} for i in range(len(inputs))]
        return json({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 3, "total_tokens": 3}})


# What OpenAI states on every answer; the gateway passes these on when it has no limits of its own.
RATE_LIMITS = {
    "x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499", "x-ratelimit-reset-requests": "120ms",
    "x-ratelimit-limit-tokens": "30000", "x-ratelimit-remaining-tokens": "29950", "x-ratelimit-reset-tokens": "100ms",
}


def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, headers=headers, media_type="application/json")


def error(status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None) -> Response:
    return json({"error": {"message": message, "type": type_, "param": None, "code": code}}, status, headers)


def fault_response(model: str, request: Request) -> Response | None:
    if model.startswith("fail-500"):
        return error(500, "upstream exploded", "server_error", None)
    if model.startswith("fail-429"):
        return error(429, "slow down", "rate_limit_error", "rate_limit_exceeded", {"retry-after": "0"})
    if model.startswith("fail-503"):
        return Response("service unavailable", status_code=503)
    if model.startswith("garbage"):
        return Response("<html>not json</html>", media_type="application/json")
    if model.startswith("context"):
        return error(400, "This model's maximum context length is 10 tokens", "invalid_request_error", "context_length_exceeded")
    if model.startswith("overload"):
        return overloaded({})
    if model.startswith("refuse"):
        return error(400, "the prompt was flagged by the content filter", "invalid_request_error", "content_filter")
    if model.startswith("bad-request"):
        return error(400, "temperature is out of range", "invalid_request_error", "invalid_value")
    if model.startswith("echo-key"):
        sent = request.headers.get("authorization", "")
        return error(401, f"Incorrect API key provided: {sent.removeprefix('Bearer ')}", "invalid_request_error", "invalid_api_key")
    return None


def overloaded(headers: dict[str, str]) -> Response:
    """Anthropic's 529 shape: what an overloaded provider says."""
    return json({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, 529, headers)


async def hang(request: Request, longest: float = 60) -> None:
    """Never answer, but stop as soon as the caller has gone."""
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline and not await request.is_disconnected():
        await asyncio.sleep(0.05)


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def tool_call_answer(model: str, body: dict[str, Any]) -> Response:
    base = {"id": "chatcmpl-upstream", "created": int(time.time()), "model": model}
    usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    last = body["messages"][-1]
    if last.get("role") == "tool" or not body.get("tools"):
        message = {"role": "assistant", "content": f"Upstream {model}: the tool said {last.get('content')}"}
        if body.get("stream"):
            return StreamingResponse(stream(model, message["content"], body), media_type="text/event-stream")
        return json({**base, "object": "chat.completion", "usage": usage,
                     "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
    name = body["tools"][0]["function"]["name"]
    arguments = orjson.dumps({"query": last_user_text(body)}).decode()
    call = {"id": "call_upstream_1", "type": "function", "function": {"name": name, "arguments": arguments}}
    if not body.get("stream"):
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return json({**base, "object": "chat.completion", "usage": usage,
                     "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]})
    half = len(arguments) // 2
    chunk = {**base, "object": "chat.completion.chunk"}
    deltas = [
        {"role": "assistant", "content": None,
         "tool_calls": [{"index": 0, "id": call["id"], "type": "function", "function": {"name": name, "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": arguments[:half]}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]},
    ]
    frames = [frame({**chunk, "choices": [{"index": 0, "delta": d, "finish_reason": None}]}) for d in deltas]
    frames.append(frame({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}))
    if (body.get("stream_options") or {}).get("include_usage"):
        frames.append(frame({**chunk, "choices": [], "usage": usage}))
    frames.append(b"data: [DONE]\n\n")
    return StreamingResponse(iter(frames), media_type="text/event-stream")


async def stream(
    model: str, text: str, body: dict[str, Any], request: Request | None = None, answer_id: str = "chatcmpl-upstream"
):
    base = {"id": answer_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    words = text.split(" ")
    yield frame({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
    if model.startswith("think"):
        for i, word in enumerate(thought(body).split(" ")):
            piece = word if i == 0 else " " + word
            yield frame({**base, "choices": [{"index": 0, "delta": {"reasoning_content": piece}, "finish_reason": None}]})
    for i, word in enumerate(words):
        if model.startswith("cut") and i == 3:
            raise ConnectionResetError("the upstream stream is cut on purpose")
        if model.startswith("stall") and i == 3 and request is not None:
            await hang(request)
            return
        piece = word if i == 0 else " " + word
        yield frame({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        await asyncio.sleep(0.3 if model.startswith("slow") else 0)
    yield frame({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        yield frame({**base, "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": len(words), "total_tokens": 11 + len(words)}})
    yield b"data: [DONE]\n\n"


def thought(body: dict[str, Any]) -> str:
    return f"Thinking about {last_user_text(body)}"


def frame(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"
