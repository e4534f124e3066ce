"""The delicate parts of Bedrock: the SigV4 signature and the event-stream decoding each
fail on a one-byte change (checked by botocore's own signer and by the frames' CRCs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from botocore.credentials import Credentials

from gateway.providers.packs._framing import aws_eventstream_events
from gateway.providers.packs.wire import UpstreamRequest, pack_of
from gateway.providers.snapshots import build_snapshot
from tests.support.bedrock_upstream import event, signature_ok

CREDENTIALS = Credentials("AKIDUNITTEST0001", "unit-test-secret-0001")


@pytest.fixture
def signed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> UpstreamRequest:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS.secret_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    providers = {"providers": {"aws": {"api": "bedrock", "region": "us-west-2", "models": {"amazon.nova-lite-v1:0": {}}}}}
    (tmp_path / "providers.yaml").write_text(yaml.safe_dump(providers))
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump({"routes": {"a": {"targets": ["aws/amazon.nova-lite-v1:0"]}}}))
    snapshot = build_snapshot(tmp_path / "routes.yaml", tmp_path / "providers.yaml")
    target = snapshot.targets["aws/amazon.nova-lite-v1:0"]
    assert target.base_url == "https://bedrock-runtime.us-west-2.amazonaws.com"  # from `region:`
    pack = pack_of(target)
    rendered = pack.chat_request(target, {"model": "a", "messages": [{"role": "user", "content": "hi"}]}, False)
    assert pack.signer is not None
    return asyncio.run(pack.signer.sign(target, rendered))


def _verify(request: UpstreamRequest, credentials: Credentials = CREDENTIALS) -> bool:
    path, _, query = request.url.split("amazonaws.com", 1)[1].partition("?")
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = "bedrock-runtime.us-west-2.amazonaws.com"
    return signature_ok((request.method, path, query), headers, request.body, credentials, "us-west-2")


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def test_the_signature_verifies_and_fails_on_any_one_byte_change(signed: UpstreamRequest):
    assert signed.url.endswith("/model/amazon.nova-lite-v1%3A0/converse") and signed.encoded
    assert _verify(signed)
    for at in (0, len(signed.body) // 2, len(signed.body) - 1):
        tampered = UpstreamRequest(signed.method, signed.url, signed.headers, _flip(signed.body, at))
        assert not _verify(tampered), f"body byte {at}"
    url = signed.url.replace("nova-lite", "nova-lita")
    assert not _verify(UpstreamRequest(signed.method, url, signed.headers, signed.body))
    date = signed.headers["x-amz-date"]
    later = date[:-2] + str((int(date[-2]) + 1) % 10) + "Z"  # one second later
    assert not _verify(UpstreamRequest(signed.method, signed.url, {**signed.headers, "x-amz-date": later}, signed.body))
    other = Credentials(CREDENTIALS.access_key, CREDENTIALS.secret_key[:-1] + "2")
    assert not _verify(signed, other)


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def _decode(data: bytes, size: int = 7) -> list[tuple[str | None, bytes]]:
    return [item async for item in aws_eventstream_events(_chunks(data, size))]


STREAM = event("messageStart", {"role": "assistant"}) + event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})


def test_event_stream_frames_decode_however_the_bytes_arrive():
    expected = [("messageStart", b'{"role":"assistant"}'), ("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"Hi"}}')]
    for size in (1, 7, 64, len(STREAM)):
        assert asyncio.run(_decode(STREAM, size)) == expected


def test_every_one_byte_change_in_a_frame_is_refused():
    for at in range(len(STREAM)):
        with pytest.raises(ValueError):
            asyncio.run(_decode(_flip(STREAM, at), 4096))


def test_a_stream_that_stops_inside_a_frame_is_refused():
    with pytest.raises(ValueError, match="inside a frame"):
        asyncio.run(_decode(STREAM[:-3]))


def test_an_exception_frame_is_the_error_event():
    from tests.support.bedrock_upstream import frame

    raw = frame({":message-type": "exception", ":exception-type": "ThrottlingException"}, b'{"message":"slow down"}')
    assert asyncio.run(_decode(raw)) == [("error", b'{"message": "slow down", "type": "ThrottlingException"}')]
