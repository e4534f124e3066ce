"""The request ledger's writer: one row per admitted request, written off the request path.

The request path only builds a dict from values it already holds and appends it to a
list (`Ledger.add`: no await, no I/O). One background task (`Database.run`) writes
whatever has piled up every `flush_interval` seconds, in one multi-row INSERT, and
sooner when a batch is full. The list is bounded by `queue_size`: when the database is
slow or down rows wait there, and past the bound new rows are dropped, counted
(`gateway_ledger_dropped_rows_total`) and logged; a request is never slowed or failed.

Rows leave the list only once written, so an outage loses nothing up to the bound. A
graceful stop writes everything left; a hard kill loses at most one flush interval.
"""

from __future__ import annotations

import time
from typing import Any

from loguru import logger

from gateway.observe import metrics
from gateway.observe.exchange import Exchange

BOOLEAN_FLAGS = (False, True)  # how a row's flags are written: false, true (see `Ledger.flags`)
INTEGER_FLAGS = (0, 1)  # the same for SQLite, which stores them as integers anyway
BATCH_ROWS = 512  # rows per batch (two INSERTs on SQLite); a fuller list wakes the writer before its interval


class Ledger:
    """The rows waiting for the database, in arrival order."""

    def __init__(self, bound: int, flags: tuple[Any, Any] = BOOLEAN_FLAGS) -> None:
        self.bound = bound
        # How the row's two flags are written: booleans, or (for SQLite) the integers the
        # file stores anyway, which the driver binds as they are. A bool it first looks up
        # in its adapter registry, which cost its writing thread more than the value.
        self.flags = flags
        self.rows: list[tuple[Any, ...]] = []
        self.dropped = 0  # since the last report in the log
        self.wake: Any = None  # the writer's asyncio.Event, set once it runs

    def add(self, exchange: Exchange, status: int, duration: float) -> None:
        """Queue the row of a request that has ended. Runs on the request path: keep it cheap."""
        if not exchange.admitted:
            return  # never admitted (bad body, unknown key, a limit): not a ledger row
        rows = self.rows
        if len(rows) >= self.bound:
            self._drop()
            return
        rows.append(row_of(exchange, status, duration, self.flags))
        if len(rows) >= BATCH_ROWS and self.wake is not None:
            self.wake.set()

    def _drop(self) -> None:
        metrics.ledger_dropped()
        if not self.dropped:
            logger.bind(event="ledger_full").warning(
                "ledger queue full ({} rows): dropping rows until the database catches up", self.bound)
        self.dropped += 1

    def written(self, count: int) -> None:
        del self.rows[:count]
        if self.dropped:
            logger.bind(event="ledger_dropped", rows=self.dropped).warning(
                "{} ledger rows were dropped while the queue was full", self.dropped)
            self.dropped = 0


# The ledger's columns in the order a queued row holds them (a tuple: cheaper to build than a dict).
COLUMNS = (
    "ts", "request_id", "key_name", "tenant", "route", "provider", "model", "endpoint", "status", "error_type",
    "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd", "latency_ms", "attempts", "cache_hit", "stream",
    "user",
)


def row_of(exchange: Exchange, status: int, duration: float, flags: tuple[Any, Any]) -> tuple[Any, ...]:
    """The ledger row of one request (in `COLUMNS` order), from what the request path already
    knows; `flags` is what false and true are written as (`Ledger.flags`)."""
    provider, _, model = exchange.target.partition("/")
    used = exchange.charged
    if used is None:  # not settled yet (a stream whose end was never read): the upstream's own figures
        used = (exchange.prompt_tokens or 0, exchange.completion_tokens or 0, exchange.cost_usd or 0.0)
    error = exchange.error
    return (
        int((time.time() - duration) * 1000),
        exchange.request_id,
        exchange.usage_name,
        exchange.tenant or None,
        exchange.route,
        provider or None,
        model or None,
        exchange.endpoint,
        status,
        (error.code or error.type) if error is not None else None,
        used[0],
        used[1],
        exchange.cached_tokens,
        used[2],
        int(duration * 1_000_000.0 + 0.5) / 1000,  # ms to three decimals (round() is slower)
        exchange.attempts,
        flags[exchange.cache in ("hit", "semantic-hit")],
        flags[exchange.stream_end != ""],
        exchange.user or None,
    )
