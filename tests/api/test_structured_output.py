"""response_format on Anthropic targets, through the openai SDK against the gateway.

A model with structured_output (or no supports list) gets Anthropic's own
`output_config.format`; a model whose supports list lacks it gets a single forced tool
whose input comes back as the answer's content. Both plain and streamed, and both must
give an answer the SDK's `parse` validates against the requested model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import orjson
import pytest
from pydantic import BaseModel

from tests.support.servers import serve_app
from tests.support.structured_upstream import StructuredUpstream


class City(BaseModel):
    name: str
    population: int
    coastal: bool


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["name", "population"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}}


@pytest.fixture
def claude() -> Iterator[tuple[str, StructuredUpstream]]:
    fake = StructuredUpstream()
    with serve_app(fake.app()) as url:
        yield url, fake


def anthropic_provider(url: str) -> dict:
    return {"api": "anthropic", "base_url": url, "api_key": "sk-ant-test-0001", "models": {
        "claude-new": {},  # no supports list: assumed to support everything
        "claude-so": {"supports": ["tools", "json", "structured_output"]},
        "claude-old": {"supports": ["tools", "vision", "json"]},  # no structured_output: the forced tool
    }}


@pytest.fixture
def client(gateway: Callable[..., str], claude: tuple[str, StructuredUpstream]) -> openai.OpenAI:
    url, _ = claude
    routes = {"routes": {
        "new": {"targets": ["claude/claude-new"]},
        "so": {"targets": ["claude/claude-so"]},
        "old": {"targets": ["claude/claude-old"]},
    }}
    base = gateway(routes, {"claude": anthropic_provider(url)})
    return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)


ASK = [{"role": "user", "content": "A city, please."}]


@pytest.mark.parametrize("alias", ["new", "so"])
def test_json_schema_is_sent_as_output_config_and_parses(client: openai.OpenAI, claude, alias: str) -> None:
    _, fake = claude
    done = client.chat.completions.parse(model=alias, messages=ASK, response_format=City)
    sent = fake.requests[-1]
    assert sent["output_config"]["format"]["type"] == "json_schema"
    assert sent["output_config"]["format"]["schema"]["properties"].keys() == {"name", "population", "coastal"}
    assert "tools" not in sent and "tool_choice" not in sent
    choice = done.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(choice.message.parsed, City)


def test_model_without_structured_output_gets_a_forced_tool(client: openai.OpenAI, claude) -> None:
    _, fake = claude
    done = client.chat.completions.parse(model="old", messages=ASK, response_format=City)
    sent = fake.requests[-1]
    assert "output_config" not in sent
    assert len(sent["tools"]) == 1
    tool = sent["tools"][0]
    assert tool["input_schema"]["properties"].keys() == {"name", "population", "coastal"}
    assert sent["tool_choice"] == {"type": "tool", "name": tool["name"]}
    choice = done.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    assert isinstance(choice.message.parsed, City)


def test_json_object_is_a_forced_object_tool_everywhere(client: openai.OpenAI, claude) -> None:
    _, fake = claude
    done = client.chat.completions.create(model="new", messages=ASK, response_format={"type": "json_object"})
    sent = fake.requests[-1]
    assert sent["tools"][0]["input_schema"] == {"type": "object"}
    assert sent["tool_choice"]["type"] == "tool"
    assert "output_config" not in sent
    assert isinstance(orjson.loads(done.choices[0].message.content), dict)
    assert done.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("alias", ["new", "old"])
def test_streamed_structured_output_is_content(client: openai.OpenAI, claude, alias: str) -> None:
    _, fake = claude
    stream = client.chat.completions.create(model=alias, messages=ASK, response_format=JSON_SCHEMA, stream=True)
    text, finish, calls = "", None, 0
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            calls += len(choice.delta.tool_calls or [])
            finish = choice.finish_reason or finish
    assert calls == 0
    assert finish == "stop"
    assert orjson.loads(text) == {"name": "text", "population": 1}
    sent = fake.requests[-1]
    assert ("output_config" in sent) == (alias == "new")


def test_streamed_parse_helper_validates(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(model="old", messages=ASK, response_format=City) as stream:
        final = stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, City)


def test_forced_tool_and_tools_together_are_refused(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="old", messages=ASK, response_format=JSON_SCHEMA, tools=tools)
    assert "response_format" in caught.value.message


# ------------------------------------------------------------------ validate_output


@pytest.fixture
def checking(gateway: Callable[..., str], claude: tuple[str, StructuredUpstream]) -> Callable[..., openai.OpenAI]:
    url, _ = claude

    def start(**route: object) -> openai.OpenAI:
        provider = anthropic_provider(url)
        provider["models"]["nonconforming-1"] = {}
        routes = {"defaults": {"retry": {"attempts": 1, "backoff": 0}}, "routes": {
            "checked": {"targets": ["claude/nonconforming-1", "claude/claude-new"], "validate_output": True, **route},
        }}
        base = gateway(routes, {"claude": provider})
        return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)

    return start


def scrape_invalid(client: openai.OpenAI) -> str:
    import httpx

    text = httpx.get(str(client.base_url).removesuffix("/v1/") + "/metrics").text
    return "\n".join(line for line in text.splitlines() if line.startswith("gateway_invalid_output_total"))


def test_a_nonconforming_answer_falls_back_to_the_next_target(checking, claude) -> None:
    _, fake = claude
    client = checking(fallback_on=["invalid_output", "server_error"])
    raw = client.chat.completions.with_raw_response.create(model="checked", messages=ASK, response_format=JSON_SCHEMA)
    assert raw.headers["x-gateway-target"] == "claude/claude-new"
    assert raw.headers["x-gateway-attempts"] == "2"
    assert orjson.loads(raw.parse().choices[0].message.content) == {"name": "text", "population": 1}
    assert [r["model"] for r in fake.requests] == ["nonconforming-1", "claude-new"]
    assert 'route="checked",target="claude/nonconforming-1"} 1.0' in scrape_invalid(client)


def test_a_nonconforming_answer_without_that_fallback_is_a_502(checking) -> None:
    client = checking()  # the default fallback_on does not list invalid_output
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="checked", messages=ASK, response_format=JSON_SCHEMA)
    assert caught.value.status_code == 502
    assert caught.value.body["attempts"][0]["class"] == "invalid_output"


def test_answers_without_a_schema_are_not_checked(checking) -> None:
    client = checking()
    answer = client.chat.completions.create(model="checked", messages=ASK, response_format={"type": "json_object"})
    assert orjson.loads(answer.choices[0].message.content) == {"unexpected": True}


def test_a_nonconforming_stream_ends_with_an_error_event(checking) -> None:
    client = checking(fallback_on=["invalid_output"])
    stream = client.chat.completions.create(model="checked", messages=ASK, response_format=JSON_SCHEMA, stream=True)
    text = ""
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            for choice in chunk.choices:
                text += choice.delta.content or ""
    assert "does not conform" in caught.value.message
    assert orjson.loads(text) == {"unexpected": True}  # the content went out before the check
    assert 'target="claude/nonconforming-1"} 1.0' in scrape_invalid(client)


def test_a_conforming_stream_ends_with_done(gateway, claude) -> None:
    url, _ = claude
    base = gateway({"routes": {"r": {"targets": ["claude/claude-old"], "validate_output": True}}},
                   {"claude": anthropic_provider(url)})
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
    with client.chat.completions.stream(model="r", messages=ASK, response_format=City) as stream:
        final = stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, City)


def test_an_invalid_schema_is_the_clients_400(checking) -> None:
    client = checking()
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="checked", messages=ASK, response_format=bad)
    assert caught.value.body["param"] == "response_format"
