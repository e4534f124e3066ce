"""The `openai` pack: any OpenAI-compatible server, with the body passed through.

The client already speaks the upstream's language, so the only change is the model
name; no template runs. Answers are decoded once (the dispatcher needs usage) and
stream lines are read as SSE `data:` payloads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from gateway.packs.engine import (
    UpstreamFailure,
    UpstreamRequest,
    bad_upstream_body,
    classify_status,
    retry_after_seconds,
)
from gateway.snapshot import Target


def bearer_headers(target: Target) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if target.api_key:
        headers["authorization"] = f"Bearer {target.api_key}"
    headers.update(target.headers)
    return headers


class OpenAIPack:
    name = "openai"
    local = False

    def chat_request(self, target: Target, body: dict[str, Any], stream: bool) -> UpstreamRequest:
        out = dict(body)
        out["model"] = target.model
        return UpstreamRequest("POST", f"{target.base_url}/chat/completions", bearer_headers(target), orjson.dumps(out))

    def embeddings_request(self, target: Target, body: dict[str, Any]) -> UpstreamRequest:
        out = dict(body)
        out["model"] = target.model
        return UpstreamRequest("POST", f"{target.base_url}/embeddings", bearer_headers(target), orjson.dumps(out))

    def chat_answer(self, target: Target, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        return _json_object(target, raw, "choices")

    def embeddings_answer(self, target: Target, body: dict[str, Any], raw: bytes) -> dict[str, Any]:
        return _json_object(target, raw, "data")

    async def chat_stream(
        self, target: Target, body: dict[str, Any], lines: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        async for line in lines:
            if not line.startswith(b"data:"):
                continue  # blank separators, `event:` lines and `: keep-alive` comments
            payload = line[5:].strip()
            if payload == b"[DONE]":
                return
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise bad_upstream_body(target, "a stream event that is not JSON") from None
            if isinstance(chunk, dict) and "error" in chunk:
                raise _failure_from_error(chunk, 502)
            yield chunk
        raise bad_upstream_body(target, "a stream that ended without [DONE]")

    def error(self, target: Target, status: int, raw: bytes, headers: Mapping[str, str]) -> UpstreamFailure:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        failure = _failure_from_error(data, status) if isinstance(data, dict) else None
        if failure is None:
            failure = UpstreamFailure(
                status,
                {"message": f"{target.id} answered HTTP {status}", "type": "upstream_error", "param": None, "code": None},
                classify_status(status),
            )
        failure.retry_after = retry_after_seconds(headers)
        return failure


def _json_object(target: Target, raw: bytes, required: str) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_upstream_body(target, "a body that is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get(required), list):
        raise bad_upstream_body(target, f"an answer without '{required}'")
    return data


def _failure_from_error(data: dict[str, Any], status: int) -> UpstreamFailure:
    """Read OpenAI's `{"error": {...}}` (or Mistral's unwrapped form) into a failure."""
    error = data.get("error", data)
    if not isinstance(error, dict):
        error = {"message": str(error)}
    code = error.get("code")
    code = str(code) if code is not None else None
    clean = {
        "message": str(error.get("message") or f"upstream answered HTTP {status}"),
        "type": str(error.get("type") or "upstream_error"),
        "param": error.get("param"),
        "code": code,
    }
    return UpstreamFailure(status, clean, classify_status(status, code))
