"""The keyless `echo` target keeps what a request asks of a model, so clients' own checks
pass against the shipped config: `n` answers, JSON matching a `json_schema` response format,
and the call a `tool_choice` forces. Real clients: the openai and anthropic SDKs, whose
`parse` helpers validate the answer with the caller's pydantic models."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Literal, Optional

import anthropic
import jsonschema
import openai
import pytest
from pydantic import BaseModel

from tests.api.test_openai_sdk import ECHO_ROUTES, client

HI = [{"role": "user", "content": "hi there"}]


class Stop(BaseModel):
    name: str
    arrives: datetime.datetime
    platform: Literal["north", "south"]
    ticket: uuid.UUID
    delay_minutes: Optional[int]


class Trip(BaseModel):
    title: str
    first: Stop
    stops: list[Stop]


@pytest.fixture
def url(gateway):
    return gateway(ECHO_ROUTES)


def test_parse_with_a_nested_pydantic_model_gets_a_valid_instance_plain_and_streamed(url):
    parsed = client(url).chat.completions.parse(model="echo", messages=HI, response_format=Trip)
    trip = parsed.choices[0].message.parsed
    assert isinstance(trip, Trip) and trip.title == "hi there" and trip.first.platform == "north"
    with client(url).chat.completions.stream(model="echo", messages=HI, response_format=Trip) as stream:
        assert stream.get_final_completion().choices[0].message.parsed == trip


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"n": {"type": "integer", "minimum": 5, "maximum": 9},
                                      "r": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                                      "code": {"type": "string", "minLength": 12, "maxLength": 12},
                                      "short": {"type": "string", "maxLength": 2},
                                      "tags": {"type": "array", "items": {"type": "string", "format": "email"}, "minItems": 2},
                                      "pair": {"type": "array", "prefixItems": [{"type": "boolean"}, {"const": 7}]},
                                      "kind": {"enum": ["x", "y"]},
                                      "either": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/Leaf"}]}},
     "required": ["n", "r", "code", "short", "tags", "pair", "kind", "either"], "additionalProperties": False,
     "$defs": {"Leaf": {"type": "object", "properties": {"at": {"type": "string", "format": "date"}}, "required": ["at"]}}},
    {"type": "object", "properties": {"child": {"$ref": "#"}}},  # recursive: ends in an empty object
    {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
               {"properties": {"b": {"type": ["integer", "null"]}}, "required": ["b"]}]},
])
def test_a_json_schema_answer_conforms_to_the_schema(url, schema):
    answer = client(url).chat.completions.create(model="echo", messages=HI, response_format={
        "type": "json_schema", "json_schema": {"name": "thing", "schema": schema, "strict": True}})
    value = json.loads(answer.choices[0].message.content)
    jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())


def test_json_object_is_an_object_and_plain_requests_still_echo(url):
    answer = client(url).chat.completions.create(model="echo", messages=HI, response_format={"type": "json_object"})
    assert json.loads(answer.choices[0].message.content) == {"echo": "hi there"}
    assert client(url).chat.completions.create(model="echo", messages=HI).choices[0].message.content == "Echo: hi there"


def test_n_answers_plain_and_streamed_with_their_usage(url):
    one = client(url).chat.completions.create(model="echo", messages=HI)
    three = client(url).chat.completions.create(model="echo", messages=HI, n=3)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert {c.message.content for c in three.choices} == {"Echo: hi there"}
    assert three.usage.completion_tokens == 3 * one.usage.completion_tokens
    chunks = list(client(url).chat.completions.create(model="echo", messages=HI, n=2, stream=True))
    texts: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    assert texts == {0: "Echo: hi there", 1: "Echo: hi there"}


def test_a_forced_tool_is_called_with_arguments_its_parameters_accept(url):
    tool = openai.pydantic_function_tool(Stop)
    other = {"type": "function", "function": {"name": "other", "strict": True, "parameters": {
        "type": "object", "properties": {}, "required": [], "additionalProperties": False}}}
    required = client(url).chat.completions.parse(model="echo", messages=HI, tools=[tool, other], tool_choice="required")
    choice = required.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert isinstance(choice.message.tool_calls[0].function.parsed_arguments, Stop)
    named = {"type": "function", "function": {"name": "other"}}
    with client(url).chat.completions.stream(model="echo", messages=HI, tools=[tool, other], tool_choice=named) as stream:
        final = stream.get_final_completion().choices[0]
    assert final.finish_reason == "tool_calls"
    assert final.message.tool_calls[0].function.name == "other"
    assert json.loads(final.message.tool_calls[0].function.arguments) == {}
    none = client(url).chat.completions.create(model="echo", messages=HI, tools=[tool], tool_choice="none")
    assert none.choices[0].message.content == "Echo: hi there" and not none.choices[0].message.tool_calls


def test_left_to_itself_echo_runs_one_round_of_an_agents_tool_loop(url):
    """`auto` (or no tool_choice): a tool the user's message mentions is called on the
    user's turn; once its result is back, echo answers in words, so the loop ends as it
    would with a model. A message that mentions no tool gets words."""
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
    messages: list[dict] = [{"role": "user", "content": "weather in Paris?"}]
    first = client(url).chat.completions.create(model="echo", messages=messages, tools=[weather])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "weather in Paris?"}
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = client(url).chat.completions.create(model="echo", messages=messages, tools=[weather], tool_choice="auto")
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "Echo: weather in Paris?"
    toolbox = [weather, {"type": "function", "function": {"name": "WebFetch", "parameters": {"type": "object"}}},
               {"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}}]
    chatting = client(url).chat.completions.create(model="echo", messages=HI, tools=toolbox)
    assert chatting.choices[0].message.content == "Echo: hi there" and not chatting.choices[0].message.tool_calls
    for said, name in (("please fetch it", "WebFetch"), ("use bash", "Bash"), ("what's the WEATHER", "get_weather")):
        called = client(url).chat.completions.create(model="echo", messages=[{"role": "user", "content": said}],
                                                     tools=toolbox)
        assert called.choices[0].message.tool_calls[0].function.name == name


def test_responses_parse_and_anthropic_forced_tools_work_on_echo(url):
    parsed = client(url).responses.parse(model="echo", input="hi there", text_format=Stop)
    assert isinstance(parsed.output_parsed, Stop)
    claude = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    schema = {"type": "object", "properties": {"q": {"type": "string"}, "k": {"type": "integer", "minimum": 1}},
              "required": ["q", "k"]}
    message = claude.messages.create(model="echo", max_tokens=64, messages=HI, tools=[
        {"name": "search", "input_schema": schema}], tool_choice={"type": "any"})
    assert message.stop_reason == "tool_use"
    assert message.content[0].type == "tool_use" and message.content[0].input == {"q": "hi there", "k": 1}


def test_tool_arguments_are_an_object_whatever_the_parameters_say(url):
    odd = {"type": "function", "function": {"name": "odd", "parameters": {"type": "string", "enum": [3]}}}
    answer = client(url).chat.completions.create(model="echo", messages=HI, tools=[odd], tool_choice="required")
    assert json.loads(answer.choices[0].message.tool_calls[0].function.arguments) == {}
    claude = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    message = claude.messages.create(model="echo", max_tokens=64, messages=HI, tools=[
        {"name": "odd", "input_schema": {"type": "x", "properties": {"q": 0}}}], tool_choice={"type": "any"})
    assert message.content[0].type == "tool_use" and message.content[0].input == {}

