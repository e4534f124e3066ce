"""A local identity provider for tests: it makes its own signing keys (RSA, EC, Ed25519) with
`cryptography`, publishes them as a JWKS and an OpenID discovery document over real HTTP,
and signs tokens with them. Keys can be rotated and the endpoint taken down."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ALGORITHMS = {"RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        jwk = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def new_key(kid: str, algorithm: str = "RS256") -> SigningKey:
    if algorithm == "RS256":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    return SigningKey(kid, algorithm, private)


@dataclass
class IdentityProvider:
    issuer: str = "https://login.test.example/"
    audience: str = "gateway"
    keys: list[SigningKey] = field(default_factory=list)
    down: bool = False  # the JWKS and discovery answer 503 while set
    fetches: int = 0  # JWKS documents served
    base_url: str = ""

    def app(self) -> Starlette:
        async def jwks(request: Request) -> JSONResponse:
            if self.down:
                return JSONResponse({"error": "down"}, status_code=503)
            self.fetches += 1
            return JSONResponse({"keys": [k.public_jwk() for k in self.keys]})

        async def discovery(request: Request) -> JSONResponse:
            if self.down:
                return JSONResponse({"error": "down"}, status_code=503)
            return JSONResponse({"issuer": self.issuer, "jwks_uri": f"{self.base_url}/jwks.json",
                                 "id_token_signing_alg_values_supported": ["RS256", "ES256"]})

        return Starlette(routes=[Route("/jwks.json", jwks),
                                 Route("/.well-known/openid-configuration", discovery)])

    def claims(self, sub: str = "alice", ttl: float = 600, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.issuer, "aud": self.audience, "sub": sub, "iat": now, "exp": now + int(ttl),
                "jti": f"jti-{sub}-{now}", **extra}

    def token(self, key: SigningKey | None = None, **claims: Any) -> str:
        key = key or self.keys[0]
        payload = {**self.claims(**{k: v for k, v in claims.items() if k in ("sub", "ttl")}),
                   **{k: v for k, v in claims.items() if k not in ("sub", "ttl")}}
        return jwt.encode(payload, key.private, algorithm=key.algorithm, headers={"kid": key.kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any]) -> str:
    """`alg: none`: a token with no signature at all."""
    return f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}."


def hmac_token(claims: dict[str, Any], secret: bytes, kid: str | None = None) -> str:
    """HS256 made by hand, so any bytes (an issuer's public key, too) can be the secret."""
    header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"
