"""Plain upstream calls written straight onto aiohttp's pooled connections.

A plain (not streamed) call is most of a gateway's traffic. aiohttp's general request path
spends about 40 µs of CPU on each beyond the bytes themselves: it builds a `ClientRequest`
(its headers in a case-insensitive multidict, its body as a payload object chosen from a
registry), a `ClientResponse`, timer contexts, and, before Python 3.12, a task of its own
to write the body. Measured against the benchmark's mock, one pooled call cost 64 µs that
way and 25 µs this way, on the same machine and connections.

What the gateway needs from an HTTP client is still aiohttp's, unchanged: the connection
pool (keep-alive, limits, DNS cache, TLS with the gateway's authorities), the C response
parser with decompression, the read timeout, and the exception classes the dispatcher
classifies failures by. An `Origin` only writes the request's head itself, the same bytes
aiohttp would write (its default headers included), and reads the answer from the pooled
connection's own parser.

It is used only where both paths put the same request on the wire: a POST with a body,
no proxy, no credentials in the URL, and none of the headers aiohttp computes itself
(`RESERVED`). Anything else goes the whole way through aiohttp (`Upstream.send`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import yarl
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest, RequestInfo
from aiohttp.helpers import DEFAULT_CHUNK_SIZE
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict, CIMultiDictProxy

# Headers aiohttp writes itself from the URL and body: a request that sets one of them
# goes aiohttp's whole way, so that what it means stays aiohttp's to decide.
RESERVED = frozenset({"host", "content-length", "transfer-encoding", "expect", "connection", "upgrade"})
# aiohttp's own defaults, added when the request has no header of the name (lower-cased).
DEFAULTS = (
    ("accept", "Accept", "*/*"),
    ("accept-encoding", "Accept-Encoding", ClientRequest.DEFAULT_HEADERS["Accept-Encoding"]),
    ("user-agent", "User-Agent", SERVER_SOFTWARE),
)
BYTES_CONTENT_TYPE = "application/octet-stream"  # what aiohttp labels a bytes body that has no content-type
BAD_HEADER = "Newline or carriage return character detected in HTTP status line or headers"
# What this module uses of aiohttp and yarl beyond their documented surface (the connector's
# `connect` and the connection are documented): an aiohttp without them sends every plain
# call its whole way, as before, rather than failing.
SUPPORTED = all(hasattr(ResponseHandler, name) for name in ("set_response_params", "start_timeout", "read")) and \
    hasattr(yarl.URL, "host_port_subcomponent") and hasattr(aiohttp.ClientTimeout, "ceil_threshold")


@dataclass(slots=True)
class Reply:
    """A plain answer, read to its end: what the dispatcher needs of it."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class Origin:
    """One upstream origin (scheme, host, port) that plain calls are written to directly.

    Holds a `ClientRequest` made once, only to name the pool the connections come from: it
    is what aiohttp's connector keys connections by (and connects with, on a miss), so the
    calls made here and those made through the session share one pool."""

    __slots__ = ("_descriptor", "_url")

    def __init__(self, url: yarl.URL, loop: asyncio.AbstractEventLoop) -> None:
        self._url = url
        self._descriptor = ClientRequest("POST", url, loop=loop, ssl=True)

    async def call(self, connector: aiohttp.BaseConnector, head: bytes, body: bytes,
                   timeout: aiohttp.ClientTimeout) -> Reply:
        """Write `head` and `body` on a pooled connection and read the answer to its end.

        The connection goes back to the pool when the answer allows it; on any failure or
        cancellation (the client gone, the route's deadline) it is closed, since an answer
        might still arrive on it."""
        connection = await connector.connect(self._descriptor, [], timeout)
        try:
            protocol, transport = connection.protocol, connection.transport
            if protocol is None or transport is None:
                raise aiohttp.ServerDisconnectedError()
            # The session's own settings for an answer (its defaults, which the gateway keeps):
            # an answer with neither a length nor chunks runs until the connection closes.
            protocol.set_response_params(
                read_until_eof=True,
                read_timeout=timeout.sock_read,
                timeout_ceil_threshold=timeout.ceil_threshold,
                read_bufsize=DEFAULT_CHUNK_SIZE,
            )
            transport.writelines((head, body))
            protocol.start_timeout()
            try:
                message, payload = await protocol.read()
                while 100 <= message.code < 200 and message.code != 101:  # interim answers: the next one
                    message, payload = await protocol.read()
            except HttpProcessingError as exc:  # an answer that is not HTTP: aiohttp's error for it
                raise aiohttp.ClientResponseError(
                    RequestInfo(self._url, "POST", CIMultiDictProxy(CIMultiDict())), (),
                    status=exc.code, message=exc.message, headers=exc.headers,
                ) from exc
            data = await payload.read()
        except BaseException:
            connection.close()
            raise
        connection.release()
        return Reply(message.code, message.headers, data)


def request_line(url: yarl.URL) -> str | None:
    """The start of a head for `url` (request line and Host), or None when a plain call to it
    must go aiohttp's whole way: no host, credentials in it, or a scheme it alone handles."""
    host = url.host_port_subcomponent if url.raw_host else None
    if host is None or url.scheme not in ("http", "https") or url.raw_user or url.raw_password:
        return None
    line = f"POST {url.raw_path_qs} HTTP/1.1\r\nHost: {host}\r\n"
    if line.count("\r") != 2 or line.count("\n") != 2:
        return None  # aiohttp refuses it with its own error
    return line


def added_headers(names: tuple[str, ...]) -> tuple[str, str] | None:
    """aiohttp's default headers a request with these header names gets, as the head lines
    that go before its Content-Length and those that end the head after it; None when one
    of the names is aiohttp's to write (`RESERVED`)."""
    lowered = {name.lower() for name in names}
    if lowered & RESERVED:
        return None
    before = "".join([f"{name}: {value}\r\n" for key, name, value in DEFAULTS if key not in lowered])
    after = "\r\n" if "content-type" in lowered else f"Content-Type: {BYTES_CONTENT_TYPE}\r\n\r\n"
    return before, after


def header_lines(headers: Mapping[str, str]) -> str:
    """The request's own headers as head lines; a name or value holding a line break is
    refused as aiohttp refuses it (ValueError), since it would smuggle a header in."""
    text = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    count = len(headers)
    if text.count("\n") != count or text.count("\r") != count:
        raise ValueError(BAD_HEADER)
    return text
