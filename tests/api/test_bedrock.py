"""AWS Bedrock (api: bedrock): Converse and ConverseStream through the gateway, every
request's SigV4 signature verified on the mock's side by botocore's own signer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from botocore.credentials import Credentials

from tests.support.bedrock_upstream import BedrockUpstream
from tests.support.configs import ECHO_PROVIDER
from tests.support.servers import serve_app

REGION = "eu-west-3"
CREDENTIALS = Credentials("AKIDGATEWAYTEST0001", "bedrock-test-secret-key-0001", "session-token-0001")
CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials from the environment, the first link of the AWS chain; nothing else is read."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS.secret_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", CREDENTIALS.token)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def bedrock() -> Iterator[tuple[str, BedrockUpstream]]:
    fake = BedrockUpstream(CREDENTIALS, REGION)
    with serve_app(fake.app()) as url:
        yield url, fake


def _gateway(gateway: Any, url: str, **provider: Any) -> openai.OpenAI:
    spec = {"api": "bedrock", "base_url": url, **provider}
    base = gateway({"routes": {"claude": {"targets": [f"bedrock/{CLAUDE}"]}}}, {"bedrock": spec, "echo": ECHO_PROVIDER})
    return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)


def test_converse_answers_with_text_and_usage_at_the_catalogue_price(gateway, bedrock):
    url, fake = bedrock
    client = _gateway(gateway, url)
    raw = client.chat.completions.with_raw_response.create(
        model="claude", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        max_tokens=50, temperature=0.2,
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == "Hello from Bedrock."
    assert answer.choices[0].finish_reason == "stop"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (11, 7)
    assert fake.refused == 0
    sent = fake.seen[-1]
    assert sent["path"] == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    assert sent["body"]["system"] == [{"text": "Be brief."}]
    assert sent["body"]["messages"] == [{"role": "user", "content": [{"text": "Hi"}]}]
    assert sent["body"]["inferenceConfig"] == {"maxTokens": 50, "temperature": 0.2}
    assert float(raw.headers["x-gateway-cost-usd"]) == pytest.approx((11 * 3.0 + 7 * 15.0) / 1e6)


def test_converse_tool_use_becomes_a_tool_call(gateway, bedrock):
    url, fake = bedrock
    answer = _gateway(gateway, url).chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL],
    )
    call = answer.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == ("tooluse_1", "get_weather", '{"city":"Paris"}')
    assert answer.choices[0].finish_reason == "tool_calls"
    spec = fake.seen[-1]["body"]["toolConfig"]["tools"][0]["toolSpec"]
    assert spec["name"] == "get_weather" and spec["inputSchema"]["json"]["properties"] == {"city": {"type": "string"}}


def test_converse_stream_is_decoded_from_event_stream_frames(gateway, bedrock):
    url, fake = bedrock
    stream = _gateway(gateway, url).chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL],
        stream=True, stream_options={"include_usage": True},
    )
    text, arguments, finish, usage = "", "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or ():
                arguments += call.function.arguments or ""
            finish = choice.finish_reason or finish
    assert text == "Hello from Bedrock."
    assert arguments == '{"city": "Paris"}'
    assert finish == "tool_calls"
    assert (usage.prompt_tokens, usage.completion_tokens) == (11, 7)
    assert fake.seen[-1]["operation"] == "converse-stream" and fake.refused == 0


@pytest.mark.parametrize("model", [
    "meta.llama3-1-70b-instruct-v1:0", "mistral.mistral-large-2402-v1:0", "amazon.nova-lite-v1:0",
])
def test_llama_mistral_and_amazon_models_speak_the_same_converse(gateway, bedrock, model):
    url, fake = bedrock
    client = _gateway(gateway, url)  # a provider that lists no models serves any: named directly
    answer = client.chat.completions.create(model=f"bedrock/{model}", messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content == "Hello from Bedrock."
    assert fake.seen[-1]["model"] == model.replace(":", "%3A")


def test_a_request_signed_for_another_region_is_refused_by_the_endpoint(gateway, bedrock):
    url, fake = bedrock
    client = _gateway(gateway, url, region="us-east-1")  # `region:` wins over AWS_REGION
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 502
    assert fake.refused >= 1 and not fake.seen


def test_the_bedrock_preset_needs_only_a_region(gateway, bedrock):
    url, fake = bedrock
    base = gateway({"routes": {"echo": {"targets": ["echo/echo-1"]}}},
                   {"bedrock": {"preset": "bedrock", "base_url": url}, "echo": ECHO_PROVIDER})
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model=f"bedrock/{CLAUDE}", messages=[{"role": "user", "content": "Hi"}])
    assert raw.parse().choices[0].message.content == "Hello from Bedrock."
    assert raw.headers["x-gateway-provider"] == "bedrock" and fake.refused == 0
    # AWS_REGION switched the preset on; it is not a key and is never sent as one.
    assert REGION not in str(fake.seen[-1]["body"])


def test_bedrock_throttling_is_classed_as_a_rate_limit(gateway, bedrock):
    url, fake = bedrock
    client = _gateway(gateway, url)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="bedrock/throttle-model", messages=[{"role": "user", "content": "Hi"}])
    attempts = caught.value.body["attempts"]  # type: ignore[index]
    assert [(a["status"], a["class"]) for a in attempts] == [(429, "rate_limit")] * 2
