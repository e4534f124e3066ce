"""The bare pass-through floor: Starlette + aiohttp + uvicorn doing nothing but forwarding.

Every gateway figure is reported as a ratio to this app, measured back to back on the same
core against the same mock, so the ratio shows what the gateway's own work costs and not
what the machine or the framework costs. It deliberately has no routing, no auth and no
parsing: anything it did would hide gateway overhead.

Run: python bench/baseline.py --port 8081 --upstream http://127.0.0.1:9000 [--workers N]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

UPSTREAM_ENV = "BENCH_BASELINE_UPSTREAM"
SESSION: dict[str, aiohttp.ClientSession] = {}


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    """One pooled session per process, as a real gateway would keep."""
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
    SESSION["s"] = aiohttp.ClientSession(os.environ[UPSTREAM_ENV], connector=connector)
    yield
    await SESSION["s"].close()


async def health(_request: Request) -> Response:
    return PlainTextResponse("ok")


async def _relay(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """Pass stream chunks on as they arrive, then give the connection back to the pool."""
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
    finally:
        upstream.release()


async def forward(request: Request) -> Response:
    """Read the body, send it to the same path upstream, answer with what comes back."""
    body = await request.body()
    upstream = await SESSION["s"].post(
        request.url.path, data=body, headers={"content-type": "application/json"}
    )
    content_type = upstream.headers.get("content-type", "application/json")
    if content_type.startswith("text/event-stream"):
        return StreamingResponse(_relay(upstream), upstream.status, media_type=content_type)
    payload = await upstream.read()
    upstream.release()
    return Response(payload, upstream.status, media_type=content_type)


app = Starlette(
    routes=[Route("/health", health), Route("/{path:path}", forward, methods=["POST"])],
    lifespan=lifespan,
)


def main() -> None:
    """Serve with the same uvicorn settings the gateway uses (uvloop, httptools, no access log,
    no proxy-headers layer)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    os.environ[UPSTREAM_ENV] = args.upstream
    uvicorn.run(
        "baseline:app",
        app_dir=os.path.dirname(os.path.abspath(__file__)),
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        proxy_headers=False,  # as `gateway serve` runs: the same server settings on both sides
        log_level="warning",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
