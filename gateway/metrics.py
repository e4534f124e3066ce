"""Prometheus metrics. Label values come only from config names, never from client input."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

REQUESTS = Counter(
    "gateway_requests_total", "Requests answered, by endpoint, route alias, target and HTTP status",
    ["endpoint", "route", "target", "status"],
)
REQUEST_SECONDS = Histogram(
    "gateway_request_duration_seconds", "Time from request to response headers, by endpoint and route",
    ["endpoint", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
