"""Reading provider answers and errors: finish reasons, usage arithmetic, blocked prompts,
error status/type/code and fallback class, Retry-After, and unreadable bodies as 502s."""

from __future__ import annotations

import functools
from types import MappingProxyType
from typing import Any

import orjson
import pytest

from gateway.config.snapshot import Limits, Price, Target
from gateway.providers.packs.loader import load_pack
from gateway.providers.packs.wire import UpstreamFailure

BODY = {"model": "a", "messages": [{"role": "user", "content": "hi"}]}


@functools.cache
def target_for(pack_name: str) -> Target:
    """Packs are compiled once per config load; tests share one compiled pack each too."""
    return Target(
        id="p/m", provider="p", model="m", kind="chat", pack=load_pack(pack_name, "."), base_url="http://u",
        api_key="sk-secret-value", headers=MappingProxyType({}), connect_timeout=1.0, read_timeout=1.0, price=Price(),
        context_window=None, supports=None, tier=None, limits=Limits(), params=MappingProxyType({}),
    )


def answer(pack_name: str, data: Any) -> dict[str, Any]:
    target = target_for(pack_name)
    return target.pack.chat_answer(target, BODY, orjson.dumps(data))


def failure(pack_name: str, status: int, data: Any, headers: dict[str, str] | None = None) -> UpstreamFailure:
    target = target_for(pack_name)
    raw = data if isinstance(data, bytes) else orjson.dumps(data)
    return target.pack.error(target, status, raw, headers or {})


def anthropic_message(stop_reason: str, usage: dict[str, int]) -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [{"type": "text", "text": "x"}],
            "stop_reason": stop_reason, "usage": usage}


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("refusal", "content_filter"),
    ("pause_turn", "stop"), ("model_context_window_exceeded", "length"), ("something_new", "stop"),
])
def test_anthropic_stop_reasons(stop_reason, finish):
    assert answer("anthropic", anthropic_message(stop_reason, {"input_tokens": 1, "output_tokens": 1}))["choices"][0]["finish_reason"] == finish


def test_anthropic_cache_tokens_are_added_back_into_prompt_tokens():
    usage = answer("anthropic", anthropic_message("end_turn", {
        "input_tokens": 10, "output_tokens": 4, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000}))["usage"]
    assert usage == {"prompt_tokens": 1110, "completion_tokens": 4, "total_tokens": 1114, "prompt_tokens_details": {"cached_tokens": 1000}}


def test_anthropic_usage_without_cache_fields_or_with_nulls():
    usage = answer("anthropic", anthropic_message("end_turn", {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": None}))["usage"]
    assert usage["prompt_tokens"] == 10 and usage["prompt_tokens_details"] == {"cached_tokens": 0}


@pytest.mark.parametrize(("reason", "finish"), [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
                                                ("RECITATION", "content_filter"), ("OTHER", "stop")])
def test_gemini_finish_reasons(reason, finish):
    data = {"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]}, "finishReason": reason}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "thoughtsTokenCount": 5}}
    result = answer("gemini", data)
    assert result["choices"][0]["finish_reason"] == finish
    assert result["usage"]["completion_tokens"] == 7, "thinking tokens count as completion tokens, as OpenAI counts them"
    assert result["usage"]["completion_tokens_details"] == {"reasoning_tokens": 5}


def test_gemini_blocked_prompt_is_content_filter():
    result = answer("gemini", {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}})
    assert result["choices"][0]["finish_reason"] == "content_filter"
    assert result["choices"][0]["message"]["content"] == ""


def test_gemini_thought_parts_are_not_content():
    data = {"candidates": [{"content": {"parts": [{"text": "thinking...", "thought": True}, {"text": "answer"}]}, "finishReason": "STOP"}]}
    assert answer("gemini", data)["choices"][0]["message"]["content"] == "answer"


def test_ollama_tool_calls_get_ids_and_tool_calls_finish():
    data = {"model": "m", "message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "f", "arguments": {"a": 1}}}, {"function": {"name": "g", "arguments": {}}}]},
        "done": True, "done_reason": "stop", "prompt_eval_count": 5, "eval_count": 2}
    result = answer("ollama", data)
    calls = result["choices"][0]["message"]["tool_calls"]
    assert result["choices"][0]["finish_reason"] == "tool_calls"
    assert [c["function"] for c in calls] == [{"name": "f", "arguments": '{"a":1}'}, {"name": "g", "arguments": "{}"}]
    assert calls[0]["id"] != calls[1]["id"] and all(c["id"].startswith("call_") for c in calls)
    assert result["choices"][0]["message"]["content"] is None


@pytest.mark.parametrize(("pack_name", "status", "body", "expected"), [
    ("anthropic", 529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
     (529, "overloaded_error", "overloaded", "server_error")),
    ("anthropic", 429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}},
     (429, "rate_limit_error", "rate_limit_exceeded", "rate_limit")),
    ("anthropic", 400, {"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 9 tokens > 5 maximum"}},
     (400, "invalid_request_error", "context_length_exceeded", "context_length")),
    ("anthropic", 400, {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: too big"}},
     (400, "invalid_request_error", "invalid_request_error", None)),
    ("gemini", 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "The input token count (9) exceeds the maximum number of tokens allowed (5)."}},
     (400, "invalid_request_error", "context_length_exceeded", "context_length")),
    ("gemini", 503, {"error": {"code": 503, "status": "UNAVAILABLE", "message": "overloaded"}},
     (503, "upstream_error", "service_unavailable", "server_error")),
    ("cohere", 429, {"id": "1", "message": "trial key limit"}, (429, "rate_limit_error", "rate_limit_exceeded", "rate_limit")),
    ("cohere", 400, {"id": "1", "message": "too many tokens: size limit"}, (400, "invalid_request_error", "context_length_exceeded", "context_length")),
    ("ollama", 404, {"error": "model 'x' not found"}, (404, "invalid_request_error", "model_not_found", None)),
    ("ollama", 500, {"error": "runner crashed"}, (500, "upstream_error", None, "server_error")),
    ("azure-openai", 400, {"error": {"message": "filtered", "type": None, "param": "prompt", "code": "content_filter"}},
     (400, "upstream_error", "content_filter", "content_filter")),
    ("azure-openai", 429, {"error": {"code": "429", "message": "exceeded"}}, (429, "upstream_error", "429", "rate_limit")),
])
def test_upstream_errors_map_to_openai_errors(pack_name, status, body, expected):
    result = failure(pack_name, status, body)
    assert (result.status, result.error["type"], result.error["code"], result.fallback_class) == expected
    assert result.error["message"]


def test_gemini_retry_info_becomes_retry_after():
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
                      "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}}
    result = failure("gemini", 429, body)
    assert result.retry_after == 37.0 and result.fallback_class == "rate_limit"


def test_retry_after_header_is_used_when_the_body_has_none():
    assert failure("anthropic", 429, {"type": "error", "error": {"type": "rate_limit_error", "message": "x"}}, {"retry-after": "4"}).retry_after == 4.0


@pytest.mark.parametrize("pack_name", ["anthropic", "gemini", "ollama", "cohere", "openai"])
def test_an_error_body_the_pack_cannot_read_still_fails_cleanly(pack_name):
    result = failure(pack_name, 502, b"<html>Bad Gateway</html>")
    assert result.status == 502 and result.fallback_class == "server_error" and result.error["message"]


@pytest.mark.parametrize(("pack_name", "raw"), [
    ("anthropic", b"not json"), ("anthropic", b'{"id": "x"}'), ("anthropic", b"[1, 2]"),
    ("gemini", b'{"candidates": "nope"}'), ("gemini", b"{}"), ("ollama", b'{"done": true}'), ("cohere", b'{"id": "c"}'),
    ("openai", b'{"id": "x"}'), ("azure-openai", b"<html>"),
])
def test_unreadable_answers_are_502_upstream_failures(pack_name, raw):
    target = target_for(pack_name)
    with pytest.raises(UpstreamFailure) as caught:
        target.pack.chat_answer(target, BODY, raw)
    assert caught.value.status == 502 and caught.value.fallback_class == "server_error"
    assert caught.value.error["code"] == "bad_upstream_response"
    assert "p/m" in caught.value.error["message"]
