"""A signing key and its JWKS for the `jwt` scenario: an RSA key made for the run, its public
half served over HTTP on 127.0.0.1 (as an identity provider would publish it), and a token
signed with it that every request of the scenario presents."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://login.bench.invalid/"
AUDIENCE = "gateway"
KID = "bench-rsa-1"


class Signer:
    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> bytes:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return json.dumps({"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]}).encode()

    def token(self, sub: str = "bench-user", ttl: float = 86400) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + int(ttl), "tier": "bench"}
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": KID})


@contextmanager
def serve(signer: Signer) -> Iterator[str]:
    """The JWKS at http://127.0.0.1:PORT/jwks.json while the with-block runs; yields that URL."""
    body = signer.jwks()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
