"""An operator's own pack: the example pack from docs/packs.md, loaded from a file next
to providers.yaml, serving an imaginary provider to the openai SDK; and a provider's
`templates:` override changing one template for that provider only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from gateway.providers.snapshots import build_snapshot
from gateway.server.app import create_app
from tests.support.acme_upstream import AcmeUpstream
from tests.support.servers import serve_app

ROOT = Path(__file__).resolve().parents[2]

SHOUTING = """\
{{ {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer.reply.text | upper},
                 "finish_reason": "stop"}], "usage": usage(answer.meter['in'], answer.meter.out)} }}
"""


def example_pack() -> str:
    """The pack exactly as docs/packs.md shows it."""
    text = (ROOT / "docs" / "packs.md").read_text()
    match = re.search(r"```yaml\n# packs/acme\.yaml\n(.*?)```", text, re.DOTALL)
    assert match, "docs/packs.md must show the complete Acme example pack"
    return match.group(1)


@pytest.fixture(scope="module")
def acme(tmp_path_factory) -> Iterator[tuple[str, AcmeUpstream, Path]]:
    fake = AcmeUpstream()
    directory = tmp_path_factory.mktemp("acme")
    (directory / "packs").mkdir()
    (directory / "packs" / "acme.yaml").write_text(example_pack())
    with serve_app(fake.app()) as url:
        provider: dict[str, Any] = {"api": "./packs/acme.yaml", "base_url": url, "api_key": "acme-secret-0001",
                                    "params": {"client_tag": "test"}, "models": {"large": {}, "busy": {}, "flaky": {}}}
        shouting = {**provider, "templates": {"chat.answer": SHOUTING}, "models": {"large": {}}}
        providers = {"providers": {"acme": provider, "loud": shouting}}
        # The providers' messages are shown to clients, so the pack's error mapping shows too.
        routes = {"defaults": {"retry": {"attempts": 1, "backoff": 0}, "expose_upstream_errors": True},
                  "routes": {"acme": {"targets": ["acme/large"]}, "busy": {"targets": ["acme/busy"]},
                             "flaky": {"targets": ["acme/flaky"]}, "loud": {"targets": ["loud/large"]}}}
        (directory / "routes.yaml").write_text(yaml.safe_dump(routes))
        (directory / "providers.yaml").write_text(yaml.safe_dump(providers))
        with serve_app(create_app(str(directory / "routes.yaml"), str(directory / "providers.yaml"))) as gateway_url:
            yield gateway_url, fake, directory


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_a_pack_file_serves_a_provider_the_gateway_has_never_seen(acme):
    url, fake, _ = acme
    answer = client(url).chat.completions.create(
        model="acme", messages=[{"role": "system", "content": "be kind"}, {"role": "user", "content": "hello there"}], max_tokens=30
    )
    assert answer.choices[0].message.content == "Acme large heard: hello there"
    assert answer.usage.prompt_tokens == 5 and answer.usage.completion_tokens == 4
    sent = fake.requests[-1]
    assert sent == {"engine": "large", "conversation": [{"speaker": "narrator", "text": "be kind"},
                                                       {"speaker": "human", "text": "hello there"}],
                    "limits": {"max_words": 30}, "stream": False}
    assert fake.headers[-1]["x-acme-client"] == "gateway/test"


def test_a_pack_file_streams(acme):
    url, _, _ = acme
    chunks = list(client(url).chat.completions.create(
        model="acme", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Acme large heard: hi"
    assert chunks[-1].usage.total_tokens == 9


def test_a_pack_file_maps_errors(acme):
    url, _, _ = acme
    with pytest.raises(openai.APIStatusError) as caught:
        client(url).chat.completions.create(model="busy", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 429  # every target (the one) was rate limited
    assert caught.value.body["attempts"][0]["class"] == "rate_limit"
    assert caught.value.body["attempts"][0]["message"] == "too many requests"


def test_a_pack_file_fails_a_stream_on_its_problem_line(acme):
    url, _, _ = acme
    received = []
    with pytest.raises(openai.APIError) as caught:
        for c in client(url).chat.completions.create(model="flaky", messages=[{"role": "user", "content": "hi"}], stream=True):
            received.append(c)
    assert received
    assert "stalled" in str(caught.value)


def test_a_template_override_changes_one_provider_only(acme):
    url, _, _ = acme
    loud = client(url).chat.completions.create(model="loud", messages=[{"role": "user", "content": "hi"}])
    assert loud.choices[0].message.content == "ACME LARGE HEARD: HI"
    plain = client(url).chat.completions.create(model="acme", messages=[{"role": "user", "content": "hi"}])
    assert plain.choices[0].message.content == "Acme large heard: hi"


def test_a_request_the_pack_refuses_is_a_400(acme):
    url, _, _ = acme
    messages = [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "c", "content": "r"}]
    with pytest.raises(openai.BadRequestError) as caught:
        client(url).chat.completions.create(model="acme", messages=messages)
    assert "acme has no tools" in caught.value.message


def test_pack_files_are_part_of_the_config(acme):
    _, _, directory = acme
    snapshot = build_snapshot(directory / "routes.yaml", directory / "providers.yaml", env={})
    assert str(directory / "packs" / "acme.yaml") in snapshot.sources
    pack_file = directory / "packs" / "acme.yaml"
    original = pack_file.read_text()
    try:
        pack_file.write_text(original.replace("Acme Chat v3", "Acme Chat v3.1"))
        changed = build_snapshot(directory / "routes.yaml", directory / "providers.yaml", env={})
    finally:
        pack_file.write_text(original)
    assert changed.version != snapshot.version
