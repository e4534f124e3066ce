"""Plain upstream calls written directly on aiohttp's pooled connections (providers.origin)
put on the wire exactly what aiohttp's own request path would, read every kind of answer
the same way, share aiohttp's pool, and fail with aiohttp's own exceptions.

The upstream is a raw socket server on 127.0.0.1 that records the bytes it receives and
answers with whatever bytes a test gives it, so both the head and the answer are exact."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from gateway.providers.packs.wire import UpstreamRequest
from gateway.providers.upstream import Upstream

BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
OK = b'{"id":"1","choices":[]}'


def answer(status: str = "200 OK", body: bytes = OK, headers: tuple[str, ...] = ()) -> bytes:
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class RawUpstream:
    """Accepts connections, reads whole requests (head and Content-Length body) and answers
    each with `reply(request_bytes)`: bytes to write, or None to hang up without answering."""

    def __init__(self, reply: Callable[[bytes], bytes | None]) -> None:
        self.reply = reply
        self.requests: list[bytes] = []
        self.connections = 0
        self.closed = 0  # connections the client closed
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                out = self.reply(request)
                if out is None:
                    writer.close()
                    return
                writer.write(out)
                await writer.drain()
                if out.startswith(b"HTTP/1.0"):
                    writer.close()  # an HTTP/1.0 answer ends with its connection
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed += 1
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def client() -> AsyncIterator[Upstream]:
    upstream = Upstream()
    await upstream.start()
    yield upstream
    await upstream.close()


async def serve(reply: Callable[[bytes], bytes | None]) -> tuple[RawUpstream, str]:
    raw = RawUpstream(reply)
    return raw, await raw.start()


def request(base: str, headers: dict[str, str] | None = None, path: str = "/v1/chat/completions",
            encoded: bool = False) -> UpstreamRequest:
    headers = {"content-type": "application/json", "authorization": "Bearer sk-test-0001"} if headers is None else headers
    return UpstreamRequest("POST", base + path, headers, BODY, encoded=encoded)


async def through_aiohttp(client: Upstream, call: UpstreamRequest) -> None:
    response = await client.send(call, 5.0, 5.0)
    await response.read()
    response.release()


@pytest.mark.parametrize("headers", [
    {"content-type": "application/json", "authorization": "Bearer sk-test-0001"},
    {"Content-Type": "application/json", "x-api-key": "k", "anthropic-version": "2023-06-01", "User-Agent": "mine"},
    {"x-goog-api-key": "k", "Accept": "application/json", "Accept-Encoding": "identity"},  # no content-type
])
@pytest.mark.parametrize("path,encoded", [
    ("/v1/chat/completions", False),
    ("/v1beta/models/gemini-2.0-flash:generateContent?alt=json&x=a b", False),
    ("/model/anthropic.claude%3Av1/invoke", True),  # a signed URL: its escapes are sent as they are
])
async def test_the_head_is_the_one_aiohttp_writes(client, headers, path, encoded):
    raw, base = await serve(lambda _request: answer())
    try:
        call = request(base, headers, path, encoded)
        reply = await client.fetch(call, 5.0, 5.0)
        await through_aiohttp(client, call)
    finally:
        await raw.stop()
    assert reply.status == 200 and reply.body == OK
    direct, whole = raw.requests
    assert direct == whole
    assert direct.endswith(b"\r\n\r\n" + BODY)


async def test_calls_share_aiohttps_pool(client):
    raw, base = await serve(lambda _request: answer())
    try:
        for _ in range(3):
            assert (await client.fetch(request(base), 5.0, 5.0)).status == 200
        await through_aiohttp(client, request(base))
        assert (await client.fetch(request(base), 5.0, 5.0)).status == 200
    finally:
        await raw.stop()
    assert len(raw.requests) == 5
    assert raw.connections == 1


async def test_an_answer_that_closes_its_connection_is_not_reused(client):
    raw, base = await serve(lambda _request: answer(headers=("Connection: close",)))
    try:
        for _ in range(2):
            assert (await client.fetch(request(base), 5.0, 5.0)).body == OK
    finally:
        await raw.stop()
    assert raw.connections == 2


async def test_answers_are_read_as_aiohttp_reads_them(client):
    packed = gzip.compress(OK)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"id\"\r\n" + \
        f"{len(OK) - 5:x}".encode() + b"\r\n" + OK[5:] + b"\r\n0\r\n\r\n"
    replies = iter([
        answer(body=packed, headers=("Content-Encoding: gzip",)),
        chunked,
        b"HTTP/1.1 100 Continue\r\n\r\n" + answer(),
        answer("429 Too Many Requests", b'{"error":{"message":"slow down"}}', ("Retry-After: 3", "x-ratelimit-remaining-requests: 0")),
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + OK,  # no length: it ends with its connection
    ])
    raw, base = await serve(lambda _request: next(replies))
    try:
        unpacked = await client.fetch(request(base), 5.0, 5.0)
        joined = await client.fetch(request(base), 5.0, 5.0)
        after_interim = await client.fetch(request(base), 5.0, 5.0)
        refused = await client.fetch(request(base), 5.0, 5.0)
        empty = await client.fetch(request(base), 5.0, 5.0)
        until_closed = await client.fetch(request(base), 5.0, 5.0)
    finally:
        await raw.stop()
    assert unpacked.body == OK
    assert joined.body == OK
    assert (after_interim.status, after_interim.body) == (200, OK)
    assert refused.status == 429 and refused.headers["retry-after"] == "3"
    assert refused.headers["X-RateLimit-Remaining-Requests"] == "0"  # case-insensitive, as aiohttp's
    assert (empty.status, empty.body) == (204, b"")
    assert (until_closed.status, until_closed.body) == (200, OK)
    assert raw.connections == 1  # every one of them came on the one kept-alive connection
    assert raw.closed == 0


async def test_a_line_break_in_a_header_is_refused_before_anything_is_sent(client):
    raw, base = await serve(lambda _request: answer())
    try:
        for bad in ({"x-note": "a\r\nx-injected: 1"}, {"x-note\nx-injected": "1"}, {"x-note": "a\rb"}):
            with pytest.raises(ValueError):
                await client.fetch(request(base, {"content-type": "application/json", **bad}), 5.0, 5.0)
        assert (await client.fetch(request(base), 5.0, 5.0)).status == 200
    finally:
        await raw.stop()
    assert len(raw.requests) == 1 and b"injected" not in raw.requests[0]


async def test_failures_are_aiohttps_own(client):
    hung_up, base = await serve(lambda _request: None)
    try:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.fetch(request(base), 5.0, 5.0)
    finally:
        await hung_up.stop()

    garbage, base = await serve(lambda _request: b"NOT HTTP AT ALL\r\n\r\n")
    try:
        with pytest.raises(aiohttp.ClientResponseError):
            await client.fetch(request(base), 5.0, 5.0)
    finally:
        await garbage.stop()

    silent, base = await serve(lambda _request: b"")
    try:
        with pytest.raises(TimeoutError):
            await client.fetch(request(base), 5.0, 0.2)
    finally:
        await silent.stop()


async def test_a_cancelled_call_closes_its_connection(client):
    silent, base = await serve(lambda _request: b"")
    try:
        call = asyncio.ensure_future(client.fetch(request(base), 5.0, None))
        while not silent.requests:
            await asyncio.sleep(0.01)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        for _ in range(100):
            if silent.closed:
                break
            await asyncio.sleep(0.01)
        assert silent.closed == 1  # its answer can never reach the next call on that connection
    finally:
        await silent.stop()


async def test_a_request_aiohttp_must_shape_goes_its_whole_way(client):
    raw, base = await serve(lambda _request: answer())
    try:
        reserved = await client.fetch(request(base, {"content-type": "application/json", "Connection": "close"}), 5.0, 5.0)
        with_credentials = await client.fetch(
            request(base.replace("http://", "http://user:pw@"), {"content-type": "application/json"}), 5.0, 5.0)
    finally:
        await raw.stop()
    assert reserved.status == with_credentials.status == 200
    closing, authorized = raw.requests
    assert b"Connection: close\r\n" in closing
    assert b"Authorization: Basic dXNlcjpwdw==\r\n" in authorized  # aiohttp's basic auth from the URL
