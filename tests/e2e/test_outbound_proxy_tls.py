"""Upstream calls through a company's proxy (HTTP_PROXY / HTTPS_PROXY / NO_PROXY) and to
providers whose certificates a company authority signed (GATEWAY_CA_BUNDLE, SSL_CERT_FILE),
from a real `gateway serve` process."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.support.configs import openai_provider, write_config
from tests.support.servers import bound_socket, gateway_process

HELLO = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
ANSWER = {"id": "chatcmpl-proxy", "object": "chat.completion", "created": 1, "model": "m",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "via the proxy"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}


@contextmanager
def forward_proxy() -> Iterator[tuple[str, list[str]]]:
    """A plain HTTP proxy that records each request line and answers as the provider would."""
    server = bound_socket()
    server.listen(16)
    seen: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                length = next((int(v) for k, _, v in (x.partition(": ") for x in lines[1:]) if k.lower() == "content-length"), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                seen.append(lines[0])
                payload = json.dumps(ANSWER).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                             b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", seen
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_upstream_calls_go_through_the_proxy_unless_no_proxy_names_the_host(tmp_path, upstream):
    base, fake = upstream
    with forward_proxy() as (proxy, seen):
        routes, providers = write_config(
            tmp_path, {"routes": {"chat": {"targets": ["remote/m"]}, "local": {"targets": ["up/gpt-test"]}}},
            {"remote": openai_provider("http://provider.example", ["m"]), "up": openai_provider(base, ["gpt-test"])},
        )
        env = {"HTTP_PROXY": proxy, "NO_PROXY": "127.0.0.1,localhost"}
        with gateway_process(routes, providers, env=env) as (url, _):
            answer = httpx.post(f"{url}/v1/chat/completions", json=HELLO, timeout=30)
            assert answer.status_code == 200, answer.text
            assert answer.json()["choices"][0]["message"]["content"] == "via the proxy"
            assert seen == ["POST http://provider.example/v1/chat/completions HTTP/1.1"]
            # NO_PROXY: the local upstream is reached directly.
            local = httpx.post(f"{url}/v1/chat/completions", json={**HELLO, "model": "local"}, timeout=30)
            assert local.status_code == 200 and len(seen) == 1 and len(fake.requests) == 1


def _make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A company authority and a certificate it signed for 127.0.0.1."""
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=Example Company Root")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(ext))
    return ca, cert, key


@contextmanager
def https_upstream(app: object, cert: Path, key: Path) -> Iterator[str]:
    sock = bound_socket()
    config = uvicorn.Config(app, log_level="warning", lifespan="off", loop="asyncio", http="h11",
                            ssl_certfile=str(cert), ssl_keyfile=str(key))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.02)
    try:
        yield f"https://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test authority")
@pytest.mark.parametrize("variable", ["GATEWAY_CA_BUNDLE", "SSL_CERT_FILE"])
def test_a_company_authority_is_trusted_when_configured(tmp_path, variable):
    from tests.support.openai_upstream import OpenAIUpstream

    ca, cert, key = _make_certificates(tmp_path)
    fake = OpenAIUpstream()
    with https_upstream(fake.app(), cert, key) as base:
        routes, providers = write_config(
            tmp_path / "config", {"routes": {"chat": {"targets": ["tls/gpt-test"], "retry": {"attempts": 1}}}},
            {"tls": openai_provider(base, ["gpt-test"])},
        )
        with gateway_process(routes, providers) as (url, _):
            refused = httpx.post(f"{url}/v1/chat/completions", json=HELLO, timeout=30)
            assert refused.status_code == 502  # an unknown authority: the certificate is not trusted
        with gateway_process(routes, providers, env={variable: str(ca)}) as (url, _):
            answer = httpx.post(f"{url}/v1/chat/completions", json=HELLO, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "Upstream gpt-test: hi"

