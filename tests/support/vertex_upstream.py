"""Google's OAuth token endpoint and Vertex AI's model endpoints, for tests.

The token endpoint takes a service account's signed JWT (the JWT-bearer grant), checks
its signature against the public half of a key made in the test, and hands out numbered
access tokens with a chosen lifetime. The Vertex side accepts only tokens handed out
and not revoked, records the path and token of every call, and answers Gemini's
generateContent and Anthropic's rawPredict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.any_upstream import _answer_for

KEY_ID = "test-key-0001"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # what google-auth puts in the assertion


def service_account_file(directory: Path, token_uri: str, project: str = "proj-test") -> tuple[Path, bytes]:
    """A new RSA key as a service-account JSON file; returns the file and the public key (PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    info = {
        "type": "service_account", "project_id": project, "private_key_id": KEY_ID, "private_key": private.decode(),
        "client_email": f"gateway@{project}.iam.gserviceaccount.com", "client_id": "1", "token_uri": token_uri,
    }
    path = directory / "service-account.json"
    path.write_text(json.dumps(info))
    return path, public


@dataclass
class VertexUpstream:
    public_key: bytes = b""
    token_uri: str = ""
    lifetime: int = 3600  # seconds each new token is valid for
    issued: list[str] = field(default_factory=list)
    assertions: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/token", self.token, methods=["POST"]),
            Route("/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{action:path}", self.model, methods=["POST"]),
        ])

    async def token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        assertion = form.get("assertion", "")
        self.assertions.append(assertion)
        try:
            claims = jwt.decode(assertion, certs={KEY_ID: self.public_key.decode()}, audience=[self.token_uri, GOOGLE_TOKEN_AUDIENCE])
        except ValueError as exc:
            return Response(orjson.dumps({"error": "invalid_grant", "error_description": str(exc)}), 400,
                            media_type="application/json")
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or "cloud-platform" not in claims.get("scope", ""):
            return Response(orjson.dumps({"error": "invalid_request"}), 400, media_type="application/json")
        token = f"ya29.token-{len(self.issued) + 1}"
        self.issued.append(token)
        return Response(orjson.dumps({"access_token": token, "expires_in": self.lifetime, "token_type": "Bearer"}),
                        media_type="application/json")

    async def model(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        body = orjson.loads(await request.body())
        self.calls.append({"path": request.url.path, "token": token, "body": body})
        if token not in self.issued or token in self.revoked:
            return Response(orjson.dumps({"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                                                    "status": "UNAUTHENTICATED"}}), 401, media_type="application/json")
        return Response(orjson.dumps(_answer_for(request.url.path, body)), media_type="application/json")
