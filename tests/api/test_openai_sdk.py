"""The official openai SDK, unchanged, against the gateway on a real port."""

from __future__ import annotations

import openai
import pytest

from tests.support.configs import openai_provider

ECHO_ROUTES = {"routes": {"echo": {"targets": ["echo/echo-1"]}, "embed": {"targets": ["echo/echo-embed"]}}}


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_sync_chat_answers_with_echo_of_last_user_message(gateway):
    url = gateway(ECHO_ROUTES)
    answer = client(url).chat.completions.create(
        model="echo", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello world"}]
    )
    assert answer.choices[0].message.content == "Echo: hello world"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.completion_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_sync_stream_arrives_word_by_word_with_usage(gateway):
    url = gateway(ECHO_ROUTES)
    chunks = list(client(url).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "one two three"}],
        stream=True, stream_options={"include_usage": True},
    ))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == "Echo: one two three"
    assert len(pieces) == 4
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)


async def test_async_chat_and_stream(gateway):
    url = gateway(ECHO_ROUTES)
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as aclient:
        answer = await aclient.chat.completions.create(model="echo", messages=[{"role": "user", "content": "async"}])
        assert answer.choices[0].message.content == "Echo: async"
        stream = await aclient.chat.completions.create(model="echo", messages=[{"role": "user", "content": "a b"}], stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "Echo: a b"


def test_embeddings_are_deterministic(gateway):
    url = gateway(ECHO_ROUTES)
    first = client(url).embeddings.create(model="embed", input=["alpha", "beta"], dimensions=8)
    again = client(url).embeddings.create(model="embed", input="alpha", dimensions=8)
    assert len(first.data) == 2 and len(first.data[0].embedding) == 8
    assert first.data[0].embedding == again.data[0].embedding
    assert first.data[0].embedding != first.data[1].embedding


def test_models_lists_aliases_and_gets_one(gateway):
    url = gateway(ECHO_ROUTES)
    c = client(url)
    assert sorted(m.id for m in c.models.list()) == ["echo", "embed"]
    assert c.models.retrieve("echo").id == "echo"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("missing")


def test_unknown_alias_is_model_not_found(gateway):
    url = gateway(ECHO_ROUTES)
    with pytest.raises(openai.NotFoundError) as caught:
        client(url).chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "model_not_found"


def test_answer_headers_name_route_target_attempts_and_config(gateway):
    url = gateway(ECHO_ROUTES)
    raw = client(url).chat.completions.with_raw_response.create(
        model="echo", messages=[{"role": "user", "content": "x"}], extra_headers={"x-request-id": "req-123"}
    )
    assert raw.headers["x-request-id"] == "req-123"
    assert raw.headers["x-gateway-route"] == "echo"
    assert raw.headers["x-gateway-target"] == "echo/echo-1"
    assert raw.headers["x-gateway-attempts"] == "1"
    assert float(raw.headers["x-gateway-overhead-ms"]) >= 0
    assert len(raw.headers["x-gateway-config"]) == 12


def test_openai_upstream_gets_the_target_model_and_provider_key(gateway, upstream):
    base, fake = upstream
    url = gateway(
        {"routes": {"chat": {"targets": ["up/real-model"]}}},
        {"up": openai_provider(base, ["real-model"], headers={"x-org": "acme"})},
    )
    answer = client(url).chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}], temperature=0.5)
    assert answer.choices[0].message.content == "Upstream real-model: hi"
    seen = fake.requests[-1]
    assert seen.body["model"] == "real-model"
    assert seen.body["temperature"] == 0.5
    assert seen.headers["authorization"] == "Bearer sk-upstream-test-key-0001"
    assert seen.headers["x-org"] == "acme"


def test_openai_upstream_stream_passes_through(gateway, upstream):
    base, fake = upstream
    url = gateway({"routes": {"chat": {"targets": ["up/m1"]}}}, {"up": openai_provider(base, ["m1"])})
    chunks = list(client(url).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "x y"}], stream=True, stream_options={"include_usage": True}
    ))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Upstream m1: x y"
    assert chunks[-1].usage.prompt_tokens == 11


@pytest.mark.parametrize("failing", ["fail-500", "fail-429", "fail-503", "garbage"])
def test_failing_first_target_falls_through_to_second(gateway, upstream, failing):
    base, fake = upstream
    url = gateway(
        {"routes": {"chat": {"targets": [f"up/{failing}", "up/good"], "retry": {"attempts": 1}}}},
        {"up": openai_provider(base, [failing, "good"])},
    )
    raw = client(url).chat.completions.with_raw_response.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert raw.parse().choices[0].message.content == "Upstream good: hi"
    assert raw.headers["x-gateway-target"] == "up/good"
    assert raw.headers["x-gateway-attempts"] == "2"
    assert fake.models_called()[-2:] == [failing, "good"]


def test_connection_refused_falls_through(gateway, upstream):
    base, _ = upstream
    url = gateway(
        {"routes": {"chat": {"targets": ["dead/m", "up/good"]}}},
        {"dead": openai_provider("http://127.0.0.1:9", ["m"]), "up": openai_provider(base, ["good"])},
    )
    answer = client(url).chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Upstream good: hi"


def test_stream_falls_through_before_first_byte(gateway, upstream):
    base, _ = upstream
    url = gateway(
        {"routes": {"chat": {"targets": ["up/fail-500", "up/good"]}}},
        {"up": openai_provider(base, ["fail-500", "good"])},
    )
    chunks = list(client(url).chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Upstream good: hi"


def test_all_targets_failing_is_502_listing_attempts(gateway, upstream):
    base, _ = upstream
    url = gateway(
        {"routes": {"chat": {"targets": ["up/fail-500", "up/fail-429"], "retry": {"attempts": 1}}}},
        {"up": openai_provider(base, ["fail-500", "fail-429"])},
    )
    with pytest.raises(openai.APIStatusError) as caught:
        client(url).chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502
    attempts = caught.value.body["attempts"]
    assert [(a["target"], a["status"], a["class"]) for a in attempts] == [
        ("up/fail-500", 500, "server_error"), ("up/fail-429", 429, "rate_limit")
    ]


def test_client_error_from_upstream_does_not_fall_back(gateway, upstream):
    base, fake = upstream
    url = gateway(
        {"routes": {"chat": {"targets": ["up/bad-request", "up/good"]}}},
        {"up": openai_provider(base, ["bad-request", "good"])},
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client(url).chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "invalid_value"
    assert fake.models_called() == ["bad-request"]


def test_hanging_upstream_hits_read_timeout_then_falls_back(gateway, upstream):
    base, _ = upstream
    url = gateway(
        {"routes": {"chat": {"targets": ["slow/hang", "up/good"]}}},
        {"slow": openai_provider(base, ["hang"], timeout={"connect": 1, "read": 0.3}), "up": openai_provider(base, ["good"])},
    )
    answer = client(url).chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Upstream good: hi"


def test_route_deadline_is_504(gateway, upstream):
    base, _ = upstream
    url = gateway(
        {"routes": {"chat": {"targets": ["slow/hang"], "timeout": 0.4}}},
        {"slow": openai_provider(base, ["hang"])},
    )
    with pytest.raises(openai.APIStatusError) as caught:
        client(url).chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 504
    assert caught.value.code == "deadline_exceeded"


def test_cut_stream_ends_with_error_event_not_done(gateway, upstream):
    base, _ = upstream
    url = gateway({"routes": {"chat": {"targets": ["up/cut"]}}}, {"up": openai_provider(base, ["cut"])})
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client(url).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "a b c d e f"}], stream=True
        ):
            received.append(chunk)
    assert received, "content was streamed before the cut"


def test_upstream_echoing_the_provider_key_never_reaches_the_client(gateway, upstream):
    base, _ = upstream
    secret = "sk-upstream-secret-9f8e7d6c5b4a3928"
    url = gateway(
        # The providers' messages are shown to clients here, so their redaction shows too.
        {"defaults": {"expose_upstream_errors": True},
         "routes": {"chat": {"targets": ["up/echo-key"], "fallback_on": ["rate_limit"]}}},
        {"up": openai_provider(base, ["echo-key"], api_key=secret)},
    )
    with pytest.raises(openai.APIStatusError) as caught:
        client(url).chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert secret not in caught.value.response.text
    assert "[redacted]" in caught.value.response.text
