"""response_format reaches every pack that can carry it, and nothing is dropped silently.

For each translating pack the openai SDK sends a json_schema (and a json_object) request
through the gateway to a local server speaking the provider's protocol, and the test
reads what that server received. A request using a field that no target of its route
can carry is a 400 naming the field; a route with a target that can carry it skips the
others and answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.api.test_pack_roundtrips import NATIVES
from tests.support.configs import openai_provider
from tests.support.servers import serve_app

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA}}
ASK = [{"role": "user", "content": "Where?"}]


def received_format(pack: str, sent: dict[str, Any]) -> Any:
    """Where each provider's body carries the requested output format."""
    if pack == "gemini":
        config = sent["generationConfig"]
        return config["responseMimeType"], config.get("responseSchema")
    if pack == "ollama":
        return sent["format"]
    if pack == "anthropic":
        return sent.get("output_config"), sent.get("tool_choice")
    return sent["response_format"]  # cohere's own field; azure passes OpenAI's through


EXPECTED_SCHEMA = {
    "gemini": ("application/json", SCHEMA),
    "ollama": SCHEMA,
    "cohere": {"type": "json_object", "json_schema": SCHEMA},
    "azure-openai": JSON_SCHEMA,
    "anthropic": ({"format": {"type": "json_schema", "schema": SCHEMA}}, None),
}
EXPECTED_OBJECT = {
    "gemini": ("application/json", None),
    "ollama": "json",
    "cohere": {"type": "json_object"},
    "azure-openai": {"type": "json_object"},
    "anthropic": (None, {"type": "tool", "name": "json_answer"}),
}


@pytest.fixture
def served(gateway: Callable[..., str]):
    stack = []

    def start(pack: str) -> tuple[openai.OpenAI, Any]:
        spec = NATIVES[pack]
        fake = spec.make()
        context = serve_app(fake.app())
        url = context.__enter__()
        stack.append(context)
        base = gateway({"routes": {"m": {"targets": ["p/m"]}}}, {"p": spec.provider(url, ["m"])})
        return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0), fake

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


@pytest.mark.parametrize("pack", sorted(EXPECTED_SCHEMA))
@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_reaches_the_provider(served, pack: str, stream: bool) -> None:
    client, fake = served(pack)
    answer = client.chat.completions.create(model="m", messages=ASK, response_format=JSON_SCHEMA, stream=stream)
    if stream:
        list(answer)
    assert received_format(pack, fake.requests[-1]) == EXPECTED_SCHEMA[pack]


@pytest.mark.parametrize("pack", sorted(EXPECTED_OBJECT))
def test_json_object_reaches_the_provider(served, pack: str) -> None:
    client, fake = served(pack)
    client.chat.completions.create(model="m", messages=ASK, response_format={"type": "json_object"})
    assert received_format(pack, fake.requests[-1]) == EXPECTED_OBJECT[pack]


@pytest.mark.parametrize("pack, extra, param", [
    ("anthropic", {"logprobs": True}, "logprobs"),
    ("anthropic", {"n": 2}, "n"),
    ("gemini", {"logprobs": True, "top_logprobs": 2}, "logprobs"),
    ("ollama", {"tool_choice": "required",
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tool_choice"),
    ("cohere", {"logit_bias": {"50256": -100}}, "logit_bias"),
    # Cohere can force a call (required) but not name the function to call.
    ("cohere", {"tool_choice": {"type": "function", "function": {"name": "f"}},
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tool_choice"),
])
def test_a_field_no_target_carries_is_a_400_naming_it(served, pack: str, extra: dict[str, Any], param: str) -> None:
    client, fake = served(pack)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=ASK, **extra)
    assert caught.value.body["param"] == param
    assert param in caught.value.body["message"]
    assert caught.value.body["code"] == "unsupported_parameter"
    assert fake.requests == []  # never sent anywhere


def test_a_target_that_carries_the_field_is_chosen(gateway: Callable[..., str], upstream) -> None:
    """The Anthropic target is skipped for logprobs; the OpenAI-compatible one answers."""
    base, fake = upstream
    spec = NATIVES["anthropic"]
    claude = spec.make()
    with serve_app(claude.app()) as url:
        routes = {"routes": {"r": {"targets": ["claude/m", "up/good"]}}}
        gw = gateway(routes, {"claude": spec.provider(url, ["m"]), "up": openai_provider(base, ["good"])})
        client = openai.OpenAI(base_url=f"{gw}/v1", api_key="unused", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="r", messages=ASK, logprobs=True)
        assert raw.headers["x-gateway-target"] == "up/good"
        assert fake.requests[-1].body["logprobs"] is True
        assert claude.requests == []
        # Without the field, the first target answers as usual.
        raw = client.chat.completions.with_raw_response.create(model="r", messages=ASK)
        assert raw.headers["x-gateway-target"] == "claude/m"
