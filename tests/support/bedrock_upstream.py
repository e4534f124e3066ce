"""A Bedrock Converse endpoint for tests that checks every request's SigV4 signature
with botocore's own signer, and answers in Converse JSON or AWS event-stream frames.

A request whose signature does not verify gets Bedrock's 403 (an unusable target for
the gateway); so does one signed for another region or service. Answers: text, or a
tool call when the request offers tools, with usage; streams are the same answer cut
into ConverseStream events, each frame written with its own CRCs here.
"""

from __future__ import annotations

import binascii
import hmac
import struct
from dataclasses import dataclass, field
from typing import Any

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude (lengths and CRC), string headers, payload, CRC."""
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack("!B", len(raw_name)) + raw_name + b"\x07" + struct.pack("!H", len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack("!I", binascii.crc32(message))


def event(name: str, data: dict[str, Any]) -> bytes:
    return frame({":event-type": name, ":content-type": "application/json", ":message-type": "event"}, orjson.dumps(data))


def signature_ok(request_line: tuple[str, str, str], headers: dict[str, str], body: bytes,
                 credentials: Credentials, region: str, service: str = "bedrock") -> bool:
    """Recompute the request's SigV4 signature with botocore and compare it with the one sent."""
    method, raw_path, query = request_line
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return False
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    scope = fields.get("Credential", "").split("/")
    if len(scope) != 5 or scope[0] != credentials.access_key or scope[2:4] != [region, service]:
        return False
    signed = fields.get("SignedHeaders", "").split(";")
    url = f"http://{headers['host']}{raw_path}" + (f"?{query}" if query else "")
    again = AWSRequest(method=method, url=url, data=body, headers={name: headers.get(name, "") for name in signed if name != "host"})
    again.context["timestamp"] = headers.get("x-amz-date", "")
    signer = SigV4Auth(credentials, service, region)
    expected = signer.signature(signer.string_to_sign(again, signer.canonical_request(again)), again)
    return hmac.compare_digest(expected, fields.get("Signature", ""))


@dataclass
class BedrockUpstream:
    credentials: Credentials
    region: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/model/{model:path}", self.call, methods=["POST"])])

    async def call(self, request: Request) -> Response:
        body = await request.body()
        raw_path = request.scope["raw_path"].decode()
        line = (request.method, raw_path, request.url.query)
        if not signature_ok(line, dict(request.headers), body, self.credentials, self.region):
            self.refused += 1
            return Response(orjson.dumps({"message": "The request signature we calculated does not match"}), 403,
                            headers={"x-amzn-ErrorType": "InvalidSignatureException"}, media_type="application/json")
        data = orjson.loads(body)
        model, _, operation = raw_path.removeprefix("/model/").rpartition("/")
        self.seen.append({"path": raw_path, "model": model, "operation": operation, "body": data})
        if "throttle" in model:
            return Response(orjson.dumps({"message": "Too many requests"}), 429,
                            headers={"x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/"},
                            media_type="application/json")
        tool = (data.get("toolConfig") or {}).get("tools", [{}])[0].get("toolSpec")
        if operation == "converse-stream":
            return StreamingResponse(_stream(tool), media_type="application/vnd.amazon.eventstream")
        content: list[dict[str, Any]] = [{"text": "Hello from Bedrock."}]
        if tool:
            content.append({"toolUse": {"toolUseId": "tooluse_1", "name": tool["name"], "input": {"city": "Paris"}}})
        return Response(orjson.dumps({
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": "tool_use" if tool else "end_turn",
            "usage": {"inputTokens": 11, "outputTokens": 7, "totalTokens": 18},
            "metrics": {"latencyMs": 5},
        }), media_type="application/json")


async def _stream(tool: dict[str, Any] | None):
    yield event("messageStart", {"role": "assistant"})
    yield event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello "}})
    # One frame split across two writes: the decoder must wait for the rest.
    split = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "from Bedrock."}})
    yield split[:9]
    yield split[9:]
    yield event("contentBlockStop", {"contentBlockIndex": 0})
    if tool:
        yield event("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": tool["name"]}}})
        yield event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city": '}}})
        yield event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '"Paris"}'}}})
        yield event("contentBlockStop", {"contentBlockIndex": 1})
    yield event("messageStop", {"stopReason": "tool_use" if tool else "end_turn"})
    yield event("metadata", {"usage": {"inputTokens": 11, "outputTokens": 7, "totalTokens": 18}, "metrics": {"latencyMs": 5}})
