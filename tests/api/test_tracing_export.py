"""Tracing switched on the standard way: a real `gateway serve` process with
OTEL_EXPORTER_OTLP_ENDPOINT set exports its spans over OTLP/HTTP to a collector."""

from __future__ import annotations

import time

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.configs import ECHO_PROVIDER, write_config
from tests.support.servers import gateway_process, serve_app

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


def collector(received: list[ExportTraceServiceRequest]) -> Starlette:
    async def traces(request: Request) -> Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        received.append(message)
        return Response(ExportTraceServiceRequest().SerializeToString(), media_type="application/x-protobuf")

    return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])


def test_spans_reach_an_otlp_collector_named_by_the_environment(tmp_path):
    received: list[ExportTraceServiceRequest] = []
    routes, providers = write_config(tmp_path, {"routes": {"echo": {"targets": ["echo/echo-1"]}}}, {"echo": ECHO_PROVIDER})
    with serve_app(collector(received)) as collector_url:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector_url, "OTEL_BSP_SCHEDULE_DELAY": "50",
               "OTEL_SERVICE_NAME": "gateway-under-test"}
        with gateway_process(routes, providers, env=env) as (url, _):
            response = httpx.post(f"{url}/v1/chat/completions", headers={"traceparent": TRACEPARENT},
                                  json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
            assert response.status_code == 200
            deadline = time.monotonic() + 10
            while not received and time.monotonic() < deadline:
                time.sleep(0.05)

    spans = [(resource, span) for message in received for resource in message.resource_spans
             for scope in resource.scope_spans for span in scope.spans]
    names = {span.name for _, span in spans}
    assert "chat echo" in names and "upstream echo/echo-1" in names
    for resource, span in spans:
        assert span.trace_id.hex() == TRACE_ID
        service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
        assert service == "gateway-under-test"
    request = next(span for _, span in spans if span.name == "chat echo")
    attributes = {a.key: a.value for a in request.attributes}
    assert attributes["gateway.route"].string_value == "echo"
    assert attributes["http.response.status_code"].int_value == 200
