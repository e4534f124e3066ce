"""Optional OpenTelemetry tracing: a span per request, a child span per upstream call.

Tracing is on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set and
the `otel` extra is installed (`pip install 'gateway[otel]'`); spans go out over
OTLP/HTTP in batches, and the standard `OTEL_*` variables (service name, sampler,
headers, batch delays) apply. A client's W3C `traceparent` is continued, and every
upstream call carries the `traceparent` of its own span, so a provider that traces
(or a local model server) joins the same trace.

Off, nothing from OpenTelemetry is imported and the request path pays one boolean
check per hook: callers test `tracing.enabled` before calling anything here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

enabled = False
_tracer: Any = None
_provider: Any = None
_otel: Any = None  # the opentelemetry modules, bound once at enable()


class _Otel:
    def __init__(self) -> None:
        from opentelemetry import context, propagate, trace

        self.context = context
        self.propagate = propagate
        self.trace = trace
        self.server = trace.SpanKind.SERVER
        self.client = trace.SpanKind.CLIENT
        self.error = trace.Status(trace.StatusCode.ERROR)


def configure() -> bool:
    """Turn tracing on when the environment names an OTLP endpoint; say why not otherwise.

    True when this call turned it on (so the caller owns `shutdown`).
    """
    if enabled or not any(os.environ.get(name) for name in ENDPOINT_ENVS):
        return False
    from gateway.observe import log

    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.event("tracing", "OTEL_EXPORTER_OTLP_ENDPOINT is set but the otel extra is not installed: "
                  "tracing stays off (pip install 'gateway[otel]')", "WARNING")
        return False
    enable(BatchSpanProcessor(OTLPSpanExporter()))
    log.event("tracing", "tracing on: spans exported over OTLP/HTTP")
    return True


def enable(processor: Any) -> None:
    """Trace every request into `processor` (tests pass an in-memory exporter's processor)."""
    global enabled, _tracer, _provider, _otel
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    attributes = {}
    if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes["service.name"] = "gateway"
    _provider = TracerProvider(resource=Resource.create(attributes))
    _provider.add_span_processor(processor)
    _tracer = _provider.get_tracer("gateway")
    _otel = _Otel()
    enabled = True


def shutdown() -> None:
    """Flush what is buffered and turn tracing off (at process exit and in tests)."""
    global enabled, _tracer, _provider
    enabled = False
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def start_request(endpoint: str, headers: Mapping[str, str]) -> tuple[Any, Any]:
    """The request's span, continuing the client's trace; made current until `detach`."""
    parent = _otel.propagate.extract(headers)
    span = _tracer.start_span(f"gateway {endpoint}", context=parent, kind=_otel.server)
    return span, _otel.context.attach(_otel.trace.set_span_in_context(span, parent))


def start_attempt(route: str, target: Any) -> tuple[Any, Any]:
    """A child span for one upstream call, current while the call runs so it is forwarded."""
    span = _tracer.start_span(f"upstream {target.id}", kind=_otel.client, attributes={
        "gateway.route": route,
        "gateway.target": target.id,
        "gen_ai.provider.name": target.provider,
        "gen_ai.request.model": target.model,
    })
    return span, _otel.context.attach(_otel.trace.set_span_in_context(span))


def detach(token: Any) -> None:
    _otel.context.detach(token)


def end_attempt(span: Any, outcome: str, status: int | None) -> None:
    span.set_attribute("gateway.outcome", outcome)
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if outcome != "ok":
        span.set_status(_otel.error)
    span.end()


def set_usage(span: Any, prompt: int | None, completion: int | None) -> None:
    if prompt is not None:
        span.set_attribute("gen_ai.usage.input_tokens", prompt)
    if completion is not None:
        span.set_attribute("gen_ai.usage.output_tokens", completion)


def end_request(span: Any, name: str, attributes: dict[str, Any], failed: bool) -> None:
    span.update_name(name)
    span.set_attributes({k: v for k, v in attributes.items() if v is not None and v != ""})
    if failed:
        span.set_status(_otel.error)
    span.end()


def trace_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` plus `traceparent` (and `tracestate`) of the current span."""
    carrier = dict(headers)
    _otel.propagate.inject(carrier)
    return carrier
