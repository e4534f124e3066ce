"""Generation parameters are checked before anything is dispatched: a 400 in the client
API's own shape that names the field, and no upstream call. Unknown fields pass through."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from tests.support.configs import ECHO_PROVIDER, openai_provider

HELLO = [{"role": "user", "content": "hello"}]
FUNCTION = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


@pytest.fixture
def served(gateway, upstream):
    base, fake = upstream
    url = gateway(
        {"routes": {"chat": {"targets": ["up/gpt-test"]}, "priced": {"targets": ["echo/echo-1"]}}},
        {"up": openai_provider(base, ["gpt-test"]),
         "echo": {**ECHO_PROVIDER, "models": {"echo-1": {"input_per_1m": 0, "output_per_1m": 1_000_000}}}},
    )
    return url, fake


@pytest.mark.parametrize(("extra", "param"), [
    ({"n": 1000}, "n"),
    ({"n": -1}, "n"),
    ({"n": 0}, "n"),
    ({"n": 1.5}, "n"),
    ({"max_tokens": -5}, "max_tokens"),
    ({"max_completion_tokens": 0}, "max_completion_tokens"),
    ({"temperature": 2.5}, "temperature"),
    ({"temperature": -0.1}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"frequency_penalty": 3}, "frequency_penalty"),
    ({"messages": [{"role": "user", "content": [{"type": "junk", "x": 1}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": ["just a string"]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages[0].content[0].text"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"tools": [{"type": "function"}]}, "tools[0].function"),
    ({"tools": [{"type": "function", "function": {"parameters": {}}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "x", "parameters": "none"}}]}, "tools[0].function.parameters"),
    ({"tools": [{"type": "browser"}]}, "tools[0].type"),
    ({"tools": ["lookup"]}, "tools[0]"),
    ({"tools": {"lookup": {}}}, "tools"),
    ({"messages": [*HELLO, {"role": "assistant", "content": None, "tool_calls": 5}]}, "messages[1].tool_calls"),
    ({"messages": [*HELLO, {"role": "assistant", "content": None, "tool_calls": {"id": "c1"}}]}, "messages[1].tool_calls"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": {"user": 1}, "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "system", "content": None}, *HELLO]}, "messages[0].content"),
    ({"messages": [*HELLO, {"role": "assistant"}]}, "messages[1].content"),
    ({"messages": [*HELLO, {"role": "assistant", "content": None, "tool_calls": []}]}, "messages[1].content"),
    ({"messages": [*HELLO, {"role": "tool", "content": "42"}]}, "messages[1].tool_call_id"),
    ({"messages": [*HELLO, {"role": "tool", "tool_call_id": "c1"}]}, "messages[1].content"),
])
def test_a_bad_parameter_is_a_400_naming_it_and_no_upstream_call(served, extra, param):
    url, fake = served
    body = {"model": "chat", "messages": HELLO, **extra}
    answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert fake.requests == []


def test_a_message_without_content_is_openais_missing_parameter_error_and_turns_that_carry_more_pass(served):
    url, fake = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="chat", messages=[{"role": "user"}])  # type: ignore[typeddict-item]
    assert caught.value.code == "missing_required_parameter"
    assert caught.value.body["param"] == "messages[0].content"
    assert "messages[0].content" in caught.value.message
    assert fake.requests == []
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    turns = [
        *HELLO,
        {"role": "assistant", "tool_calls": [call]},  # content left out: the tool call stands for it
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {"role": "assistant", "content": None, "refusal": "I can't help with that."},
        {"role": "user", "content": "and now?"},
    ]
    client.chat.completions.create(model="chat", messages=turns, tools=[FUNCTION])
    assert fake.requests[-1].body["messages"] == turns


def test_the_sdk_raises_bad_request_and_good_values_and_unknown_fields_pass_through(served):
    url, fake = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="chat", messages=HELLO, n=129)
    assert caught.value.body["param"] == "n"
    client.chat.completions.create(
        model="chat", n=128, max_tokens=1, temperature=2, top_p=0, tools=[FUNCTION],
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"},
                                               {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}],
        extra_body={"a_field_from_next_year": {"on": True}},
    )
    assert fake.requests[-1].body["a_field_from_next_year"] == {"on": True}
    assert fake.requests[-1].body["n"] == 128


def test_n_is_counted_in_the_cost_estimate(served):
    url, _ = served
    costs = []
    for n in (1, 3):
        with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=10, json={
            "model": "priced", "messages": HELLO, "max_tokens": 10, "n": n, "stream": True,
        }) as answer:
            assert answer.status_code == 200
            costs.append(float(answer.headers["x-gateway-cost-usd"]))
            answer.read()
    assert costs == [10.0, 30.0]  # a dollar per output token, max_tokens for each of n answers


@pytest.mark.parametrize(("extra", "param"), [
    ({"temperature": 1.5}, "temperature"),
    ({"top_p": -1}, "top_p"),
    ({"top_k": -3}, "top_k"),
    ({"max_tokens": -5}, "max_tokens"),
])
def test_messages_refuses_out_of_range_values_in_anthropics_shape(served, extra, param):
    url, fake = served
    body = {"model": "chat", "max_tokens": 10, "messages": HELLO, **extra}
    answer = httpx.post(f"{url}/v1/messages", json=body, timeout=10)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert f"'{param}'" in error["error"]["message"]
    assert fake.requests == []
    client = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="chat", max_tokens=10, messages=HELLO, extra_body=extra)
