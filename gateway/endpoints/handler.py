"""The wrapper every endpoint runs in: request id, the one place errors become bodies,
response headers and request metrics.

A plain function wrapper rather than Starlette's BaseHTTPMiddleware, which costs a
task and a queue per request.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from loguru import logger
from starlette.requests import Request
from starlette.responses import Response

from gateway import metrics
from gateway.errors import GatewayError, InternalError

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


@dataclass(slots=True)
class Exchange:
    """What is known about one request as it goes down the path."""

    request_id: str
    started: float
    endpoint: str
    route: str = ""
    target: str = ""


def request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    return given if given and _SAFE_ID.match(given) else uuid.uuid4().hex


def json_response(data: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, headers=headers, media_type="application/json")


def error_response(exc: GatewayError, request_id: str) -> Response:
    headers = {"x-request-id": request_id, **exc.headers}
    return Response(exc.json(), status_code=exc.status, headers=headers, media_type="application/json")


Handler = Callable[[Request, Exchange], Awaitable[Response]]


def endpoint(name: str) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            exchange = Exchange(request_id(request), time.perf_counter(), name)
            try:
                response = await handler(request, exchange)
                response.headers["x-request-id"] = exchange.request_id
            except GatewayError as exc:
                response = error_response(exc, exchange.request_id)
            except Exception:
                # A bug. The client gets a plain 500 without internals; the log gets the trace.
                logger.exception("unhandled error in {} (request {})", name, exchange.request_id)
                response = error_response(InternalError("internal error in the gateway"), exchange.request_id)
            metrics.REQUESTS.labels(name, exchange.route, exchange.target, str(response.status_code)).inc()
            metrics.REQUEST_SECONDS.labels(name, exchange.route).observe(time.perf_counter() - exchange.started)
            return response

        run.__name__ = handler.__name__
        run.__doc__ = handler.__doc__
        return run

    return wrap
