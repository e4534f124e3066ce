"""The cloud packs as compiled from their files: Vertex's model switch, endpoint roots
from `region:` / `location:`, and the URLs of plain and streamed calls."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from gateway.config.load import ConfigError
from gateway.providers.packs.wire import pack_of
from gateway.providers.snapshots import build_snapshot

BODY = {"model": "x", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]}


def _snapshot(tmp_path: Path, providers: dict, targets: list[str]):
    (tmp_path / "providers.yaml").write_text(yaml.safe_dump({"providers": providers}))
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump({"routes": {"a": {"targets": targets}}}))
    return build_snapshot(tmp_path / "routes.yaml", tmp_path / "providers.yaml")


def test_vertex_serves_gemini_and_anthropic_models_through_their_own_packs(tmp_path: Path):
    snapshot = _snapshot(tmp_path, {"gcp": {"api": "vertex", "project": "p1", "location": "us-east5"}},
                         ["gcp/gemini-2.0-flash", "gcp/claude-3-5-haiku@20241022"])
    gemini, claude = snapshot.targets["gcp/gemini-2.0-flash"], snapshot.targets["gcp/claude-3-5-haiku@20241022"]
    assert (pack_of(gemini).name, pack_of(claude).name) == ("vertex-gemini", "vertex-anthropic")
    root = "https://us-east5-aiplatform.googleapis.com/v1/projects/p1/locations/us-east5/publishers"
    plain, streamed = pack_of(gemini).chat_request(gemini, BODY, False), pack_of(gemini).chat_request(gemini, BODY, True)
    assert plain.url == f"{root}/google/models/gemini-2.0-flash:generateContent"
    assert streamed.url == f"{root}/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    assert orjson.loads(plain.body)["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    plain, streamed = pack_of(claude).chat_request(claude, BODY, False), pack_of(claude).chat_request(claude, BODY, True)
    assert plain.url == f"{root}/anthropic/models/claude-3-5-haiku@20241022:rawPredict"
    assert streamed.url == f"{root}/anthropic/models/claude-3-5-haiku@20241022:streamRawPredict"
    sent = orjson.loads(streamed.body)
    assert sent["anthropic_version"] == "vertex-2023-10-16" and "model" not in sent and sent["stream"] is True
    assert sent["system"] == "Be brief."
    # No key is ever attached: the signer authenticates each request as it leaves.
    assert "authorization" not in plain.headers and "x-api-key" not in plain.headers
    assert pack_of(claude).speaks == frozenset()  # an Anthropic client's body is translated, not passed through


def test_the_anthropic_pack_itself_is_unchanged_by_its_vertex_variant(tmp_path: Path):
    snapshot = _snapshot(tmp_path, {"ant": {"api": "anthropic", "base_url": "https://api.anthropic.com", "api_key": "k-0001"}},
                         ["ant/claude-sonnet-4"])
    target = snapshot.targets["ant/claude-sonnet-4"]
    sent = orjson.loads(pack_of(target).chat_request(target, BODY, False).body)
    assert sent["model"] == "claude-sonnet-4" and "anthropic_version" not in sent
    assert pack_of(target).speaks == frozenset({"anthropic"})


def test_bedrock_takes_its_endpoint_from_the_region_and_a_base_url_replaces_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    snapshot = _snapshot(tmp_path, {"aws": {"api": "bedrock"}, "vpc": {"api": "bedrock", "base_url": "https://vpce.example"}},
                         ["aws/amazon.nova-pro-v1:0", "vpc/amazon.nova-pro-v1:0"])
    assert snapshot.targets["aws/amazon.nova-pro-v1:0"].base_url == "https://bedrock-runtime.ap-southeast-2.amazonaws.com"
    target = snapshot.targets["vpc/amazon.nova-pro-v1:0"]
    assert pack_of(target).chat_request(target, BODY, True).url == "https://vpce.example/model/amazon.nova-pro-v1%3A0/converse-stream"


def test_a_bedrock_provider_without_any_region_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ConfigError, match="needs a base_url \\(or the region"):
        _snapshot(tmp_path, {"aws": {"api": "bedrock"}}, ["aws/amazon.nova-pro-v1:0"])
