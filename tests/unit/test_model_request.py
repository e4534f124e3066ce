"""A chat body read once into a `ModelRequest`: its needs, its meaningful fields and its
prompt estimate come from one walk over the messages and agree with each one alone."""

from __future__ import annotations

import pytest

from gateway.pipeline.mapping import used_fields
from gateway.pipeline.request import chat_request, required_capabilities
from gateway.providers.tokens import IMAGE_TOKENS, estimate_prompt_tokens, survey_prompt

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
BODIES = {
    "text": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say one thing."}],
    "image": [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]}],
    "image later": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": [IMAGE]}],
    "tool history": [{"role": "user", "content": "weather?"},
                     {"role": "assistant", "content": None, "tool_calls": [
                         {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
                     {"role": "tool", "tool_call_id": "c1", "content": "sunny"}],
    "odd parts": [{"role": "user", "content": ["not a part", {"type": "text"}, IMAGE]}, "not a message"],
}


@pytest.mark.parametrize("name", list(BODIES))
def test_one_walk_agrees_with_each_question_asked_alone(name):
    body = {"model": "m", "messages": BODIES[name]}
    request = chat_request("openai", body)
    assert request.prompt_tokens == estimate_prompt_tokens(body)
    assert request.needs == required_capabilities(body)
    assert request.fields == used_fields(body)
    images = "image" in name or name == "odd parts"
    assert ("vision" in request.needs) is images
    assert ("images" in request.fields) is images


def test_an_image_counts_toward_the_prompt_estimate():
    plain, _ = survey_prompt({"messages": [{"role": "user", "content": [{"type": "text", "text": "abcd"}]}]})
    with_image, images = survey_prompt({"messages": [{"role": "user", "content": [{"type": "text", "text": "abcd"}, IMAGE]}]})
    assert images and with_image == plain + IMAGE_TOKENS


def test_tool_calls_that_are_not_a_list_do_not_break_the_estimate():
    body = {"model": "m", "messages": [{"role": "assistant", "content": "x", "tool_calls": 5}]}
    assert chat_request("openai", body).prompt_tokens > 0


def test_every_field_lands_where_it_belongs():
    """`chat_request` builds the record by position: each value must reach its own field."""
    body = {"model": "m", "messages": BODIES["text"], "stream": True, "stream_options": {"include_usage": True},
            "max_completion_tokens": 77, "n": 3, "tools": [{"type": "function", "function": {"name": "f"}}],
            "response_format": {"type": "json_object"}}
    request = chat_request("openai", body, max_tier="standard", cache_control="no-cache", provider="p", user="u")
    assert (request.api, request.kind, request.alias, request.body) == ("openai", "chat", "m", body)
    assert request.stream is True and request.include_usage is True
    assert request.needs == frozenset({"tools", "json"})
    assert request.fields == frozenset({"tools", "response_format", "n"})
    assert request.prompt_tokens == estimate_prompt_tokens(body)
    assert (request.output_tokens, request.output_field, request.choices) == (77, "max_completion_tokens", 3)
    assert (request.max_tier, request.cache_control, request.provider, request.user) == ("standard", "no-cache", "p", "u")
    assert request.native_body is None and request.native_only == ()
