"""Prometheus metrics: every series the gateway exports, defined in one place.

Label values come only from the compiled config (endpoint names, route aliases,
`provider/model` targets, key names, fallback classes), never from client input, so
the number of series stays bounded however clients behave.

Under `gateway serve --workers N` each worker is its own process. The serve command
then points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory before anything imports
prometheus-client, every worker writes its values to memory-mapped files there, and
`/metrics` (answered by whichever worker the scrape lands on) sums them all. With one
worker the plain in-memory registry is used: it is cheaper and exports process metrics.

Other parts of the gateway call the small functions at the bottom rather than the
metric objects, so label order lives here only.
"""

from __future__ import annotations

import asyncio
import glob
import os
import re
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from gateway.observe import tally

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus-client picks its value storage when it is first imported; mirror that choice.
MULTIPROCESS = bool(os.environ.get(MULTIPROCESS_ENV))

disable_created_metrics()  # `_created` series double the exposition for no use on a dashboard

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
FIRST_BYTE_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)

# --- requests -------------------------------------------------------------------------

REQUESTS = Counter(
    "gateway_requests_total",
    "Requests answered, by endpoint, route alias, target that answered and HTTP status",
    ["endpoint", "route", "target", "status"],
)
REQUEST_SECONDS = Histogram(
    "gateway_request_duration_seconds",
    "Time from request to the last byte of the answer (the end of the stream for streams)",
    ["endpoint", "route"],
    buckets=LATENCY_BUCKETS,
)
OVERHEAD_SECONDS = Histogram(
    "gateway_overhead_seconds",
    "Time spent in the gateway itself until the answer was ready, upstream calls excluded",
    ["endpoint", "route"],
    buckets=OVERHEAD_BUCKETS,
)
IN_FLIGHT = Gauge(
    "gateway_in_flight_requests",
    "Requests being served right now, streams until their last byte",
    ["endpoint"],
    multiprocess_mode="livesum",
)
FIRST_BYTE_SECONDS = Histogram(
    "gateway_stream_first_byte_seconds",
    "Streams: time from request to the first byte sent to the client",
    ["route", "target"],
    buckets=FIRST_BYTE_BUCKETS,
)

# --- upstream calls ---------------------------------------------------------------------

ATTEMPTS = Counter(
    "gateway_upstream_attempts_total",
    "Upstream calls, by route, target and outcome class (ok, or the failure class)",
    ["route", "target", "class"],
)
UPSTREAM_SECONDS = Histogram(
    "gateway_upstream_duration_seconds",
    "Time of one upstream call until its answer (until the first chunk for streams), by target",
    ["target"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors_total",
    "Failed upstream calls, by target and failure class",
    ["target", "class"],
)
INVALID_OUTPUTS = Counter(
    "gateway_invalid_output_total",
    "Answers to json_schema requests that did not conform to the schema (routes with validate_output), by route and target",
    ["route", "target"],
)
FALLBACKS = Counter(
    "gateway_fallbacks_total",
    "Times a request moved on from a failed target to the next candidate, by route",
    ["route"],
)

# --- usage and spend ----------------------------------------------------------------------

TOKENS = Counter(
    "gateway_tokens_total",
    "Tokens used, by key name, route, target and kind (prompt or completion)",
    ["key", "route", "target", "kind"],
)
COST_USD = Counter(
    "gateway_cost_usd_total",
    "Spend in US dollars at the prices in providers.yaml, by key name, route and target",
    ["key", "route", "target"],
)

# --- admission, cache, circuits -------------------------------------------------------------

LIMIT_REJECTIONS = Counter(
    "gateway_limit_rejections_total",
    "Requests refused with 429 by a limit: scope (key, tenant, user, route, provider), its name (a user's only with metrics.per_user_labels), and kind (rpm, tpm, concurrency, max_tokens)",
    ["scope", "name", "kind"],
)
UNPRICED = Counter(
    "gateway_unpriced_requests_total",
    "Answers from models with no known price (neither providers.yaml nor the catalogue): their cost is unknown",
    ["route", "target"],
)
BUDGET_REJECTIONS = Counter(
    "gateway_budget_rejections_total",
    "Requests refused because the key's budget is spent, by key name",
    ["key"],
)
CACHE_LOOKUPS = Counter(
    "gateway_cache_lookups_total",
    "Response cache lookups on routes that cache, by route and result (hit or miss)",
    ["route", "result"],
)
SEMANTIC_LOOKUPS = Counter(
    "gateway_semantic_lookups_total",
    "Semantic cache lookups (after an exact miss), by route and result: hit (served at or above the threshold) or miss",
    ["route", "result"],
)
SEMANTIC_BYPASSED = Counter(
    "gateway_semantic_bypassed_total",
    "Requests to a semantic-cache route never looked up nor stored, by reason (tools, temperature, choices, "
    "images, no_question)",
    ["route", "reason"],
)
SEMANTIC_SIMILARITY = Histogram(
    "gateway_semantic_similarity",
    "Cosine similarity of the nearest cached question at each semantic lookup that found one",
    ["route"],
    buckets=(0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0),
)
SEMANTIC_EMBEDDING_SECONDS = Histogram(
    "gateway_semantic_embedding_seconds",
    "Time to embed a question for the semantic cache (a call to the route's embeddings route)",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5),
)
SEMANTIC_EMBEDDING_FAILURES = Counter(
    "gateway_semantic_embedding_failures_total",
    "Embeddings for the semantic cache that failed (error) or came too late (timeout): each is a plain miss",
    ["route", "reason"],
)
STORE_UP = Gauge(
    "gateway_store_up",
    "1 while the store answers (always, for the in-process store), 0 while Redis is down (the lowest across workers)",
    multiprocess_mode="livemin",
)
DB_UP = Gauge(
    "gateway_db_up",
    "1 while the database (the request ledger) answers, 0 while it is down (the lowest across workers)",
    multiprocess_mode="livemin",
)
LEDGER_QUEUE = Gauge(
    "gateway_ledger_queue_rows",
    "Ledger rows waiting to be written to the database (they pile up while it is down)",
    multiprocess_mode="livesum",
)
LEDGER_DROPPED = Counter(
    "gateway_ledger_dropped_rows_total",
    "Ledger rows dropped because the queue was full (the requests themselves were served)",
)
STORE_ERRORS = Counter(
    "gateway_store_errors_total",
    "Shared-store (Redis) calls that failed or were skipped while it was down, by concern",
    ["concern"],
)
CIRCUIT_STATE = Gauge(
    "gateway_circuit_state",
    "Circuit breaker state per target: 0 closed, 1 half-open, 2 open (the worst across workers)",
    ["target"],
    multiprocess_mode="livemax",
)
CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}
CIRCUIT_OPENED = Counter(
    "gateway_circuit_opened_total",
    "Times a target's circuit opened: it tripped, or its half-open probe failed",
    ["target"],
)
TARGET_LATENCY = Gauge(
    "gateway_target_latency_seconds",
    "Moving average of a target's latency, what the fastest strategy ranks by (the lowest across workers)",
    ["target"],
    multiprocess_mode="livemin",
)

# --- config ---------------------------------------------------------------------------------

CONFIG_RELOADS = Counter(
    "gateway_config_reloads_total",
    "Config reload attempts, by result: applied, unchanged, refused (invalid config, old one kept)",
    ["result"],
)
CONFIG_INFO = Gauge(
    "gateway_config_info",
    "1 for the config version (hash) being served, 0 for versions served earlier",
    ["version"],
    multiprocess_mode="livemax",
)
CONFIG_LOADED = Gauge(
    "gateway_config_loaded_timestamp_seconds",
    "Unix time the config being served was loaded",
    multiprocess_mode="livemax",
)
CONFIG_LAST_RELOAD_OK = Gauge(
    "gateway_config_last_reload_successful",
    "1 when the last reload attempt was applied or unchanged, 0 when it was refused (the worst across workers)",
    multiprocess_mode="livemin",
)


# --- what the rest of the gateway calls -------------------------------------------------------

_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def child(metric: Any, *labels: str) -> Any:
    """The series `metric.labels(*labels)` as a tally (`gateway.observe.tally`), looked up
    once: `labels()` validates and locks on every call, and so does every update.

    Bounded like the series themselves, since label values are config names.
    """
    key = (id(metric), labels)
    found = _children.get(key)
    if found is None:
        series = metric.labels(*labels)
        kind = tally.HistogramTally if isinstance(metric, Histogram) else (
            tally.GaugeTally if isinstance(metric, Gauge) else tally.CounterTally)
        found = _children[key] = kind(series)
    return found


_in_flight: dict[str, Any] = {}


def in_flight(endpoint: str) -> Any:
    """The in-flight gauge's tally of `endpoint`, found by the name alone: every request
    moves it twice."""
    found = _in_flight.get(endpoint)
    if found is None:
        found = _in_flight[endpoint] = child(IN_FLIGHT, endpoint)
    return found


_ended: dict[tuple[str, str, str, int], tuple[Any, Any, Any]] = {}


def request_ended(endpoint: str, route: str, target: str, status: int, seconds: float, overhead: float) -> None:
    """The three series every request updates when it ends, their children found with one
    lookup (they are the same few combinations request after request)."""
    key = (endpoint, route, target, status)
    found = _ended.get(key)
    if found is None:
        found = _ended[key] = (child(REQUESTS, endpoint, route, target, str(status)),
                               child(REQUEST_SECONDS, endpoint, route), child(OVERHEAD_SECONDS, endpoint, route))
    found[0].inc()
    found[1].observe(seconds)
    found[2].observe(overhead)


_usage: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}


def usage_counted(key: str, route: str, target: str, prompt: int, completion: int, cost: float) -> None:
    """A request's tokens and cost, on the series of its key, route and target."""
    labels = (key, route, target)
    found = _usage.get(labels)
    if found is None:
        found = _usage[labels] = (child(TOKENS, key, route, target, "prompt"),
                                  child(TOKENS, key, route, target, "completion"), child(COST_USD, key, route, target))
    if prompt:
        found[0].inc(prompt)
    if completion:
        found[1].inc(completion)
    if cost:
        found[2].inc(cost)


def limit_rejected(scope: str, name: str, kind: str) -> None:
    """A 429 from a limit. `scope` is key, route or provider; `name` its config name."""
    child(LIMIT_REJECTIONS, scope, name, kind).inc()


def unpriced_served(route: str, target: str) -> None:
    child(UNPRICED, route, target).inc()


def budget_rejected(key: str) -> None:
    child(BUDGET_REJECTIONS, key).inc()


def store_failed(concern: str) -> None:
    """A Redis call failed (or was skipped: Redis is known to be down); `concern` is what it served."""
    child(STORE_ERRORS, concern).inc()


def store_up(up: bool) -> None:
    STORE_UP.set(1 if up else 0)


def db_up(up: bool) -> None:
    DB_UP.set(1 if up else 0)


def ledger_queued(rows: int) -> None:
    LEDGER_QUEUE.set(rows)


def ledger_dropped(rows: int = 1) -> None:
    LEDGER_DROPPED.inc(rows)


def cache_lookup(route: str, hit: bool) -> None:
    child(CACHE_LOOKUPS, route, "hit" if hit else "miss").inc()


def semantic_lookup(route: str, hit: bool, similarity: float | None) -> None:
    child(SEMANTIC_LOOKUPS, route, "hit" if hit else "miss").inc()
    if similarity is not None:
        child(SEMANTIC_SIMILARITY, route).observe(similarity)


def semantic_bypassed(route: str, reason: str) -> None:
    child(SEMANTIC_BYPASSED, route, reason).inc()


def semantic_embedded(route: str, seconds: float) -> None:
    child(SEMANTIC_EMBEDDING_SECONDS, route).observe(seconds)


def semantic_embedding_failed(route: str, reason: str) -> None:
    """`reason` is timeout or error."""
    child(SEMANTIC_EMBEDDING_FAILURES, route, reason).inc()


def circuit_changed(target: str, state: str) -> None:
    """`state` is closed, half_open or open."""
    CIRCUIT_STATE.labels(target).set(CIRCUIT_STATES[state])


def circuit_opened(target: str) -> None:
    CIRCUIT_OPENED.labels(target).inc()


_called: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def upstream_called(route: str, target: str, result: str, seconds: float) -> None:
    """One upstream call; `result` is ok, client_error, or the failure class."""
    labels = (route, target, result)
    found = _called.get(labels)
    if found is None:
        found = _called[labels] = (child(ATTEMPTS, route, target, result), child(UPSTREAM_SECONDS, target))
    found[0].inc()
    found[1].observe(seconds)  # failures too: a timeout's length matters
    if result != "ok":
        child(UPSTREAM_ERRORS, target, result).inc()


def stream_cut(target: str) -> None:
    """A committed stream that broke off (error event instead of [DONE])."""
    child(UPSTREAM_ERRORS, target, "stream_cut").inc()


def invalid_output(route: str, target: str) -> None:
    """An answer that failed its route's validate_output check."""
    child(INVALID_OUTPUTS, route, target).inc()


def fell_back(route: str) -> None:
    child(FALLBACKS, route).inc()


def target_latency(target: str, seconds: float) -> None:
    child(TARGET_LATENCY, target).set(seconds)


def config_reloaded(result: str) -> None:
    """`result` is applied, unchanged or refused."""
    CONFIG_RELOADS.labels(result).inc()


def config_served(version: str, previous: str | None, loaded_at: float) -> None:
    """Mark `version` as the config being served (at start-up and after each applied reload)."""
    if previous and previous != version:
        CONFIG_INFO.labels(previous).set(0)
    CONFIG_INFO.labels(version).set(1)
    CONFIG_LOADED.set(loaded_at)


def clear() -> None:
    """Drop every labelled series. A gateway process never needs this; the test suite
    runs hundreds of configs in one process, and without it each scrape grows with
    every config any earlier test used."""
    tally.forget()
    _children.clear()
    _in_flight.clear()
    _ended.clear()
    _usage.clear()
    _called.clear()
    for value in list(globals().values()):
        if isinstance(value, (Counter, Gauge, Histogram)) and value._labelnames:
            value.clear()


# --- exposition -------------------------------------------------------------------------------

_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def _forget_dead_workers(path: str) -> None:
    """Drop live gauges of workers that died (a crashed worker is replaced by a new pid)."""
    from prometheus_client import multiprocess

    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = _LIVE_FILE.search(name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)
        except PermissionError:
            pass  # alive, owned by someone else


FLUSH_SECONDS = 1.0  # how far another worker's series may lag behind in a scrape


async def keep_flushing(interval: float = FLUSH_SECONDS) -> None:
    """Each worker's background task: hand its tallies to prometheus-client every `interval`
    (in multiprocess mode, another worker may be the one a scrape lands on)."""
    try:
        while True:
            await asyncio.sleep(interval)
            tally.flush()
    finally:
        tally.flush()


def exposition() -> tuple[bytes, str]:
    """The text exposition; summed over every worker in multiprocess mode."""
    tally.flush()
    if not MULTIPROCESS:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    from prometheus_client import multiprocess

    path = os.environ[MULTIPROCESS_ENV]
    _forget_dead_workers(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path)
    return generate_latest(registry), CONTENT_TYPE_LATEST
