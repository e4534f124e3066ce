"""The one HTTP client every upstream call goes through.

One `aiohttp.ClientSession` per process, opened at start-up and closed at shutdown:
pooled keep-alive connections are most of what makes a gateway cheap. aiohttp is
used here (and only here) because it costs a fraction of httpx's CPU per request. Plain
calls (`fetch`) are written straight onto the session's pooled connections where that puts
the same bytes on the wire (gateway.providers.origin); streams take aiohttp's whole path.

Many companies reach providers only through a proxy, and inspect TLS with their own
certificate authority: `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` are honoured (aiohttp's
rules, read once at start-up), `SSL_CERT_FILE` / `SSL_CERT_DIR` replace the trusted authorities as
OpenSSL defines them, and `GATEWAY_CA_BUNDLE` adds a PEM file of authorities to the
system's own (docs/security.md).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit
from urllib.request import proxy_bypass

import aiohttp
import yarl
from aiohttp.helpers import ProxyInfo, proxies_from_env

from gateway.observe import tracing
from gateway.providers.origin import (
    SUPPORTED,
    Origin,
    Reply,
    added_headers,
    header_lines,
    request_line,
)
from gateway.providers.packs.wire import UpstreamRequest

MAX_LINE = 8 * 1024 * 1024  # a single stream event larger than this is a broken upstream
PLAIN_KEPT = 4096  # upstream URLs and header-name sets remembered for plain calls (config-made; bounded anyway)
CA_BUNDLE_ENV = "GATEWAY_CA_BUNDLE"


def tls_context() -> ssl.SSLContext:
    """The authorities upstream certificates are checked against: the system's (or
    SSL_CERT_FILE/SSL_CERT_DIR, which OpenSSL reads here), plus GATEWAY_CA_BUNDLE's."""
    context = ssl.create_default_context()
    extra = os.environ.get(CA_BUNDLE_ENV)
    if extra:
        context.load_verify_locations(cafile=extra)
    return context


class Upstream:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._call: Callable[..., Awaitable[aiohttp.ClientResponse]] | None = None
        self._timeouts: dict[tuple[float, float | None], aiohttp.ClientTimeout] = {}
        self._proxies: dict[str, ProxyInfo] = {}  # by URL scheme, from HTTP(S)_PROXY
        self._routes: dict[str, ProxyInfo | None] = {}  # by upstream URL: its proxy, or None (direct)
        # Plain calls written directly (gateway.providers.origin), by URL: its origin and the
        # head's first lines, or None when calls to it go aiohttp's whole way.
        self._origins: dict[tuple[str, bool], tuple[Origin, str] | None] = {}
        self._origin_by_key: dict[tuple[str, str, int | None], Origin] = {}
        self._added: dict[tuple[str, ...], tuple[str, str] | None | bool] = {}  # by a request's header names: aiohttp's defaults to add

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60, ssl=tls_context()
        )
        # No cookie jar: a cookie one upstream answer sets must never ride along on another
        # client's request (and the jar is work on every call). The proxy variables are
        # read here, once, rather than by aiohttp's trust_env on every request.
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
        )
        # `session.request` returns the call wrapped in a context manager whose class is
        # a subscripted generic over a class with slots: making one raises and drops an
        # AttributeError (it cannot take `__orig_class__`) on every call, 0.4% of a
        # pass-through request. The gateway only awaits the call and releases the answer
        # itself, so it takes the coroutine that wrapper would hold; an aiohttp without
        # the method still gets the wrapper, which is awaited the same way.
        self._call = getattr(self._session, "_request", self._session.request)
        self._proxies = proxies_from_env()
        self._routes.clear()
        self._origins.clear()
        self._origin_by_key.clear()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            self._call = None

    def _timeout(self, connect: float, read: float | None) -> aiohttp.ClientTimeout:
        key = (connect, read)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)
        return timeout

    def _proxy(self, url: str) -> ProxyInfo | None:
        """The proxy for `url` (None: connect directly), decided once per URL: the URLs are
        the config's targets, a small set, and NO_PROXY matching is not free."""
        if not self._proxies:
            return None
        if url in self._routes:
            return self._routes[url]
        parts = urlsplit(url)
        found = None if parts.hostname and proxy_bypass(parts.hostname) else self._proxies.get(parts.scheme)
        if len(self._routes) > 4096:  # URLs are config-made; bound it anyway
            self._routes.clear()
        self._routes[url] = found
        return found

    def send(self, request: UpstreamRequest, connect: float, read: float | None) -> Awaitable[aiohttp.ClientResponse]:
        """Send; awaited, the response with its body unread, which the caller must release.
        A plain method returning aiohttp's own awaitable: no coroutine layer of its own.
        `read` None: no read timeout (a caller whose own deadline comes first)."""
        if self._call is None:
            raise RuntimeError("upstream client is not started")
        proxy = self._proxy(request.url)
        return self._call(
            request.method,
            yarl.URL(request.url, encoded=True) if request.encoded else request.url,
            headers=tracing.trace_headers(request.headers) if tracing.enabled else request.headers,
            data=request.body,
            timeout=self._timeout(connect, read),
            allow_redirects=False,
            proxy=proxy.proxy if proxy is not None else None,
            proxy_auth=proxy.proxy_auth if proxy is not None else None,
        )

    async def fetch(self, request: UpstreamRequest, connect: float, read: float | None) -> Reply:
        """A plain call, read to its end. Written directly on a pooled connection where that
        puts the same request on the wire as aiohttp would (gateway.providers.origin: about 40%
        of the CPU of aiohttp's whole path), else sent through the session."""
        session = self._session
        if session is None:
            raise RuntimeError("upstream client is not started")
        plain = self._plain(request) if SUPPORTED and request.method == "POST" and request.body else None
        if plain is not None:
            # The trace headers are added here only for the direct path: `send` adds its own.
            headers = tracing.trace_headers(request.headers) if tracing.enabled else request.headers
            names = tuple(headers)
            added = self._added.get(names, False)
            if added is False:
                added = self._remember_names(names)
            if added is not None:
                origin, line = plain
                before, after = added  # type: ignore[misc]
                head = f"{line}{header_lines(headers)}{before}Content-Length: {len(request.body)}\r\n{after}".encode()
                return await origin.call(session.connector, head, request.body, self._timeout(connect, read))  # type: ignore[arg-type]
        response = await self.send(request, connect, read)
        try:
            body = await response.read()
        finally:
            if not response.closed:  # read to its end, it is already back in the pool
                response.release()
        return Reply(response.status, response.headers, body)

    def _plain(self, request: UpstreamRequest) -> tuple[Origin, str] | None:
        """The origin and head start for plain calls to this request's URL, decided once per URL."""
        key = (request.url, request.encoded)
        found = self._origins.get(key, False)
        if found is not False:
            return found  # type: ignore[return-value]
        url = yarl.URL(request.url, encoded=request.encoded)
        line = request_line(url) if self._proxy(request.url) is None else None
        found = None
        if line is not None:
            origin_key = (url.scheme, url.raw_host or "", url.port)
            origin = self._origin_by_key.get(origin_key)
            if origin is None:
                origin = self._origin_by_key[origin_key] = Origin(url, asyncio.get_running_loop())
            found = (origin, line)
        if len(self._origins) > PLAIN_KEPT:
            self._origins.clear()
            self._origin_by_key.clear()
        self._origins[key] = found
        return found

    def _remember_names(self, names: tuple[str, ...]) -> tuple[str, str] | None:
        added = added_headers(names)
        if len(self._added) > PLAIN_KEPT:
            self._added.clear()
        self._added[names] = added
        return added


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
