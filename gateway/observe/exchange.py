"""What is known about one request as it goes down the path, for its log line, metrics,
trace and the operator's traffic view.

Every step writes what it learns into the request's `Exchange`, passed down by the
caller, and `telemetry.finish` reads it once, when the request has ended. It holds
plain values only (names, counts, seconds), so this bottom layer needs nothing from
the layers that fill it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.errors import GatewayError


class LedgerSink(Protocol):
    """Where an ended request becomes a ledger row (`store.database.ledger.Ledger`): no I/O."""

    def add(self, exchange: Exchange, status: int, duration: float) -> None: ...


class TrafficSink(Protocol):
    """Where an ended request is counted for the operator's page (`observe.traffic.Traffic`)."""

    def request_ended(self, exchange: Exchange, status: int, seconds: float) -> None: ...


@dataclass(slots=True)
class Exchange:
    request_id: str
    started: float  # perf_counter when the request arrived
    endpoint: str
    route: str = ""
    target: str = ""  # provider/model that answered ("" when none did)
    key: str = ""  # the client key's name; "" on an open gateway
    tenant: str = ""  # the key's tenant, when it has one
    user: str = ""  # the end user: a token's subject, else the request's x-gateway-user or `user` field
    plan: str = ""  # the plan whose limits bind that user
    cache: str = ""  # hit | miss | bypass on a route that caches
    config: str = ""  # version of the config serving the request
    traffic: TrafficSink | None = None  # the process's traffic window, fed when the request ends
    ledger: LedgerSink | None = None  # the process's request ledger, when a database is configured
    admitted: bool = False  # past limits and budget: only admitted requests are ledger rows
    usage_name: str = ""  # who the usage totals and ledger count it for (the key's name, or "anonymous")
    error: GatewayError | None = None
    # Upstream calls, counted once, by dispatch:
    attempts: int = 0
    fallbacks: int = 0
    failed: list[tuple[str, bool]] = field(default_factory=list)  # (target, the target's fault) per failed call
    upstream_seconds: float = 0.0
    # What the answer used, once it is settled (None: not reported by the provider):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    cached_tokens: int = 0  # prompt tokens the provider served from its own prompt cache
    unpriced: bool = False  # answered by a model with no known price: its cost is unknown, not zero
    # What the request was charged once settled (prompt, completion, USD): reported figures,
    # or the estimates that stood in for missing ones.
    charged: tuple[int, int, float] | None = None
    # Times (perf_counter) and how a stream ended:
    ready: float = 0.0  # when the answer (a stream's head) was ready
    first_byte: float = 0.0
    stream_end: str = ""  # done | error | disconnected, for streams
    span: Any = None  # the request's OpenTelemetry span when tracing is on
    attempt_span: Any = None  # the answering call's span, ended with the request's token counts
    per_key_metrics: bool = False  # the config lets metrics carry the key's name (else the label is empty)

    def overhead(self, now: float) -> float:
        """Seconds spent in the gateway itself up to `now`, upstream time excluded."""
        return max(now - self.started - self.upstream_seconds, 0.0)
