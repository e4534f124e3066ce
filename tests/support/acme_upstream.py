"""A real server for Acme Chat, the imaginary provider of docs/packs.md's example pack.

Its format is deliberately unlike any real one (`conversation` of speakers, `reply`,
`meter`, NDJSON `piece` lines, `problem` errors), so a test through it proves that a
pack file alone teaches the gateway a new provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


@dataclass
class AcmeUpstream:
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v3/{call}", self.generate, methods=["POST"])])

    async def generate(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        self.paths.append(request.url.path)
        if request.headers.get("x-acme-key") != "acme-secret-0001":
            return _json({"problem": {"kind": "bad_key", "detail": "unknown key"}}, 401)
        engine = body["engine"]
        if engine.startswith("busy"):
            return _json({"problem": {"kind": "slow_down", "detail": "too many requests"}}, 429)
        human = [t["text"] for t in body["conversation"] if t["speaker"] == "human"]
        text = f"Acme {engine} heard: {human[-1]}"
        if body["stream"]:
            return StreamingResponse(_stream(engine, text), media_type="application/x-ndjson")
        return _json({"reply": {"text": text, "ended_because": "done"}, "meter": {"in": 5, "out": 4}})


async def _stream(engine: str, text: str):
    for i, word in enumerate(text.split(" ")):
        if engine.startswith("flaky") and i == 2:
            yield orjson.dumps({"problem": "the engine stalled"}) + b"\n"
            return
        yield orjson.dumps({"piece": word if i == 0 else " " + word}) + b"\n"
    yield orjson.dumps({"ended_because": "done", "meter": {"in": 5, "out": 4}}) + b"\n"
