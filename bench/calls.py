"""The requests the benchmark sends, one shape per server kind.

Direct-to-mock and the baseline get the upstream's own path and body (the baseline only
forwards); the gateway gets the OpenAI-shaped body with a route alias as the model. Keeping
the bodies identical in size across servers keeps the comparison about the server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Say one short sentence about foxes."},
]


@dataclass(frozen=True)
class Call:
    """One HTTP request, ready to send many times."""

    url: str
    body: bytes
    stream: bool = False
    headers: dict[str, str] = field(default_factory=dict)

    def all_headers(self) -> dict[str, str]:
        return {"content-type": "application/json", **self.headers}


def _json(payload: dict[str, object]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def openai_body(model: str, stream: bool) -> bytes:
    payload: dict[str, object] = {"model": model, "messages": MESSAGES, "max_tokens": 64}
    if stream:
        payload["stream"] = True
    return _json(payload)


def anthropic_body(model: str, stream: bool) -> bytes:
    payload: dict[str, object] = {
        "model": model, "system": MESSAGES[0]["content"], "messages": MESSAGES[1:],
        "max_tokens": 64,
    }
    if stream:
        payload["stream"] = True
    return _json(payload)


def responses_body(model: str, stream: bool) -> bytes:
    """The same prompt as a Responses API request (instructions + input)."""
    payload: dict[str, object] = {
        "model": model, "instructions": MESSAGES[0]["content"], "input": MESSAGES[1]["content"],
        "max_output_tokens": 64,
    }
    if stream:
        payload["stream"] = True
    return _json(payload)


def upstream_chat(base: str, stream: bool) -> Call:
    """What direct-to-mock and the baseline send: the mock's own OpenAI endpoint."""
    prefix = "/stream" if stream else ""
    return Call(f"{base}{prefix}/v1/chat/completions", openai_body("gpt-4o-mini", stream), stream)


def upstream_messages(base: str, stream: bool) -> Call:
    """Direct to the mock's Anthropic endpoint: the floor for the translation scenario."""
    prefix = "/stream" if stream else ""
    return Call(f"{base}{prefix}/v1/messages", anthropic_body("claude-x", stream), stream)


def gateway_chat(base: str, alias: str, stream: bool, key: str | None = None) -> Call:
    """What a client sends the gateway: OpenAI shape, route alias as the model."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return Call(f"{base}/v1/chat/completions", openai_body(alias, stream), stream, headers)


def gateway_responses(base: str, alias: str, stream: bool) -> Call:
    """A Responses API client calling the gateway: the route's chat target gets a translation."""
    return Call(f"{base}/v1/responses", responses_body(alias, stream), stream)


def gateway_embeddings(base: str, alias: str) -> Call:
    """One embeddings request through the gateway: what a semantic lookup's embedding costs."""
    return Call(f"{base}/v1/embeddings", _json({"model": alias, "input": MESSAGES[1]["content"]}))


def gateway_question(base: str, alias: str, question: str) -> Call:
    """A chat request asking `question` (same system prompt and settings as `openai_body`)."""
    payload = {"model": alias, "messages": [MESSAGES[0], {"role": "user", "content": question}], "max_tokens": 64}
    return Call(f"{base}/v1/chat/completions", _json(payload))
