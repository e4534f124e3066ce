"""Anthropic Messages bodies to OpenAI chat bodies and back: the pure translation
(`anthropic_request` in, `anthropic_shape` out)."""

from __future__ import annotations

import copy

import orjson
import pytest

from gateway.api.anthropic.request import Untranslatable, prompt_to_openai, to_openai
from gateway.api.anthropic.shape import error_body, from_openai
from gateway.errors import (
    AllTargetsFailed,
    BadRequest,
    DeadlineExceeded,
    GatewayError,
    ModelNotFound,
    NoTargetAvailable,
    PayloadTooLarge,
)


def request(**fields):
    return {"model": "chat", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], **fields}


def test_tool_results_come_first_as_tool_messages_then_the_rest_of_the_user_turn():
    body = request(messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "let me check", "signature": "sig"},
            {"type": "text", "text": "Checking. "},
            {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "t2", "name": "weather", "input": {"city": "Rome"}},
        ]},
        {"role": "user", "content": [
            {"type": "text", "text": "here you go"},
            {"type": "tool_result", "tool_use_id": "t1", "content": "rain"},
            {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": "sun"}, {"type": "text", "text": "warm"}]},
        ]},
    ])
    assert to_openai(body)["messages"] == [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Checking. ", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}},
            {"id": "t2", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Rome"}'}},
        ]},
        {"role": "tool", "tool_call_id": "t1", "content": "rain"},
        {"role": "tool", "tool_call_id": "t2", "content": "sun\nwarm"},
        {"role": "user", "content": [{"type": "text", "text": "here you go"}]},
    ]


def test_tool_result_errors_are_marked_and_images_follow_as_a_user_message():
    body = request(messages=[{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "is_error": True, "content": "no such city"},
        {"type": "tool_result", "tool_use_id": "t2", "content": [
            {"type": "text", "text": "a chart"},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/c.png"}},
        ]},
    ]}])
    assert to_openai(body)["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "Error: no such city"},
        {"role": "tool", "tool_call_id": "t2", "content": "a chart"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/c.png"}}]},
    ]


def test_assistant_turn_with_only_tool_calls_has_null_content():
    body = request(messages=[{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {}}]}])
    [message] = to_openai(body)["messages"]
    assert message["content"] is None and message["tool_calls"][0]["function"]["arguments"] == "{}"


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, {"tool_choice": "auto"}),
    ({"type": "any"}, {"tool_choice": "required"}),
    ({"type": "none"}, {"tool_choice": "none"}),
    ({"type": "tool", "name": "w"}, {"tool_choice": {"type": "function", "function": {"name": "w"}}}),
    ({"type": "any", "disable_parallel_tool_use": True}, {"tool_choice": "required", "parallel_tool_calls": False}),
])
def test_tool_choice(choice, expected):
    tools = [{"name": "w", "input_schema": {"type": "object"}}]
    out = to_openai(request(tools=tools, tool_choice=choice))
    assert {k: out[k] for k in ("tool_choice", "parallel_tool_calls") if k in out} == expected


def test_server_tools_have_no_openai_equivalent_and_are_left_out():
    tools = [{"type": "web_search_20250305", "name": "web_search"}, {"name": "w", "input_schema": {"type": "object"}}]
    out = to_openai(request(tools=tools, tool_choice={"type": "auto"}))
    assert [t["function"]["name"] for t in out["tools"]] == ["w"]
    out = to_openai(request(tools=tools[:1], tool_choice={"type": "auto"}))
    assert "tools" not in out and "tool_choice" not in out


def test_stream_asks_for_usage_and_structured_output_becomes_json_schema():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    out = to_openai(request(stream=True, output_config={"format": {"type": "json_schema", "schema": schema}}))
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert out["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}


def test_translation_leaves_the_clients_body_untouched():
    body = request(system=[{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}], messages=[
        {"role": "user", "content": [{"type": "text", "text": "q"}, {"type": "tool_result", "tool_use_id": "t", "content": "r"}]},
    ])
    before = copy.deepcopy(body)
    to_openai(body)
    assert body == before


def test_document_blocks_become_text_or_file_parts():
    body = request(messages=[{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}},
        {"type": "document", "title": "r.pdf", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
    ]}])
    assert to_openai(body)["messages"][0]["content"] == [
        {"type": "text", "text": "plain words"},
        {"type": "file", "file": {"filename": "r.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
    ]


def test_count_tokens_prompt_needs_no_max_tokens():
    out = prompt_to_openai({"model": "chat", "messages": [{"role": "user", "content": "x"}]})
    assert out == {"model": "chat", "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(BadRequest):
        to_openai({"model": "chat", "messages": [{"role": "user", "content": "x"}]})


# ---------------------------------------------------------------- answers


def answer(message, finish_reason="stop", usage=None):
    return {"id": "c", "model": "up-model", "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": usage or {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}


@pytest.mark.parametrize(("finish", "reason"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal"), ("tool_calls", "tool_use"), (None, "end_turn"),
])
def test_finish_reasons_become_stop_reasons(finish, reason):
    assert from_openai(answer({"role": "assistant", "content": "x"}, finish), "m")["stop_reason"] == reason


def test_tool_calls_become_tool_use_blocks_after_the_text():
    message = from_openai(answer({"role": "assistant", "content": "Let me look.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": '{"city": "Oslo"}'}},
    ]}, "stop"), "m")
    assert message["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "call_1", "name": "w", "input": {"city": "Oslo"}},
    ]
    assert message["stop_reason"] == "tool_use", "tool calls decide the stop reason whatever the provider said"
    assert message["model"] == "up-model"


def test_broken_tool_arguments_are_the_upstreams_fault():
    broken = answer({"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "w", "arguments": "{oops"}}]})
    with pytest.raises(GatewayError) as caught:
        from_openai(broken, "m")
    assert caught.value.status == 502


def test_cached_tokens_are_split_out_of_input_tokens():
    usage = {"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 60}}
    assert from_openai(answer({"role": "assistant", "content": "x"}, usage=usage), "m")["usage"] == {
        "input_tokens": 40, "output_tokens": 5, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 0,
    }


def test_a_refusal_is_a_text_block_with_stop_reason_refusal():
    message = from_openai(answer({"role": "assistant", "content": None, "refusal": "I can't help with that."}), "m")
    assert message["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert message["stop_reason"] == "refusal"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(("error", "status", "kind"), [
    (BadRequest("x"), 400, "invalid_request_error"),
    (GatewayError("x", status=401), 401, "authentication_error"),
    (GatewayError("x", status=403), 403, "permission_error"),
    (ModelNotFound("x"), 404, "not_found_error"),
    (PayloadTooLarge("x"), 413, "request_too_large"),
    (GatewayError("x", status=429), 429, "rate_limit_error"),
    (GatewayError("x"), 500, "api_error"),
    (AllTargetsFailed("x", extra={"attempts": []}), 502, "api_error"),
    (NoTargetAvailable("x"), 503, "overloaded_error"),
    (DeadlineExceeded("x"), 504, "timeout_error"),
    (GatewayError("x", status=422), 422, "invalid_request_error"),
])
def test_gateway_errors_render_as_anthropic_errors(error, status, kind):
    body = orjson.loads(error_body(error, "rid"))
    assert error.status == status
    assert body["type"] == "error" and body["request_id"] == "rid"
    assert body["error"]["type"] == kind and body["error"]["message"] == "x"


def test_blocks_without_an_openai_equivalent_are_refused_unless_lenient():
    body = request(messages=[
        {"role": "user", "content": "search the web"},
        {"role": "assistant", "content": [
            {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {"query": "x"}},
            {"type": "web_search_tool_result", "tool_use_id": "srv_1", "content": []},
            {"type": "text", "text": "found it"},
        ]},
        {"role": "user", "content": [{"type": "text", "text": "thanks"}, {"type": "search_result", "source": "s", "title": "t", "content": []}]},
    ])
    with pytest.raises(Untranslatable) as caught:
        to_openai(body)
    assert caught.value.param == "messages[1].content[0]"
    assert to_openai(body, lenient=True)["messages"] == [
        {"role": "user", "content": "search the web"},
        {"role": "assistant", "content": "found it"},
        {"role": "user", "content": [{"type": "text", "text": "thanks"}]},
    ]
