"""The one HTTP client every upstream call goes through.

One `aiohttp.ClientSession` per process, opened at start-up and closed at shutdown:
pooled keep-alive connections are most of what makes a gateway cheap. aiohttp is
used here (and only here) because it costs a fraction of httpx's CPU per request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import yarl

from gateway.observe import tracing
from gateway.providers.packs.wire import UpstreamRequest

MAX_LINE = 8 * 1024 * 1024  # a single stream event larger than this is a broken upstream


class Upstream:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float, float], aiohttp.ClientTimeout] = {}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60)
        # No cookie jar: a cookie one upstream answer sets must never ride along on another
        # client's request (and the jar is work on every call).
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _timeout(self, connect: float, read: float) -> aiohttp.ClientTimeout:
        key = (connect, read)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)
        return timeout

    async def send(self, request: UpstreamRequest, connect: float, read: float) -> aiohttp.ClientResponse:
        """Send and return the response with its body unread; the caller must release it."""
        if self._session is None:
            raise RuntimeError("upstream client is not started")
        return await self._session.request(
            request.method,
            yarl.URL(request.url, encoded=True) if request.encoded else request.url,
            headers=tracing.trace_headers(request.headers) if tracing.enabled else request.headers,
            data=request.body,
            timeout=self._timeout(connect, read),
            allow_redirects=False,
        )


async def chunks(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The body as it arrives, for binary stream framings (AWS event-stream)."""
    async for data in response.content.iter_any():
        yield data


async def lines(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The body as lines without their line ending, however the bytes arrive in chunks."""
    pending = b""
    async for data in response.content.iter_any():
        pending += data
        if b"\n" not in data:
            if len(pending) > MAX_LINE:
                raise ValueError("stream line too long")
            continue
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.rstrip(b"\r")
    if pending:
        yield pending.rstrip(b"\r")
