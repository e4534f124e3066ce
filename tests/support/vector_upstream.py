"""A real OpenAI-compatible embeddings server whose vectors the test chooses.

`vectors` maps an input text to the vector returned for it; any other text gets a
vector of its own that is orthogonal to every chosen one (so it never matches). Setting
`delay` makes every answer that late; `failing` makes every call a 500. Every input
received is recorded in `inputs`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DIMENSION = 8


@dataclass
class VectorUpstream:
    vectors: dict[str, list[float]] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    delay: float = 0.0
    failing: bool = False

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/embeddings", self.embeddings, methods=["POST"])])

    def vector(self, text: str) -> list[float]:
        if text in self.vectors:
            return self.vectors[text]
        return [0.0] * (DIMENSION - 1) + [1.0]  # the last axis: chosen vectors leave it at 0

    async def embeddings(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        self.inputs.extend(inputs)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failing:
            error = {"error": {"message": "embeddings are down", "type": "server_error", "param": None, "code": None}}
            return Response(orjson.dumps(error), status_code=500, media_type="application/json")
        data: list[dict[str, Any]] = [
            {"object": "embedding", "index": i, "embedding": self.vector(text)} for i, text in enumerate(inputs)
        ]
        usage = {"prompt_tokens": 4 * len(inputs), "total_tokens": 4 * len(inputs)}
        return Response(orjson.dumps({"object": "list", "data": data, "model": body["model"], "usage": usage}),
                        media_type="application/json")


def at_similarity(similarity: float) -> list[float]:
    """A vector whose cosine with `BASE` is exactly `similarity` (both on the first two axes)."""
    return [similarity, (1 - similarity * similarity) ** 0.5] + [0.0] * (DIMENSION - 2)


BASE = at_similarity(1.0)
